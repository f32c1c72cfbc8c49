#include "pipeline/graph.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/error.h"

namespace bitbyte::pipeline {
namespace {

TEST(Graph, ErrorInANodeNamesTheNodeAndStopsTheGraph) {
  Graph g("t");
  int next = 0;
  std::atomic<int> after{0};
  auto& src = g.Source<int>("numbers", [&](int& v) {
    if (next >= 10000) return false;
    v = next++;
    return true;
  });
  auto& work = g.Function<int, int>(
      "explode", 0,
      [](const int& v) {
        if (v == 17) throw DataError("input 17 is bad");
        return v;
      },
      [](const int&) { return uint64_t{1}; });
  auto& sink = g.Function<int, tbb::flow::continue_msg>(
      "sink", 1,
      [&](const int&) {
        ++after;
        return tbb::flow::continue_msg();
      },
      [](const tbb::flow::continue_msg&) { return uint64_t{0}; });
  g.Connect(src, work);
  g.Connect(work, sink);
  try {
    g.Run();
    FAIL() << "no error";
  } catch (const NodeError& e) {
    EXPECT_EQ(e.node(), "explode");
    EXPECT_NE(std::string(e.what()).find("input 17 is bad"), std::string::npos);
    EXPECT_THROW(std::rethrow_exception(e.cause()), DataError);  // the type survives for exit codes
  }
  EXPECT_LT(after.load(), 10000);  // cancelled: not everything went through
}

// An error of each kind means the same inside a graph as on the main thread: the NodeError that
// Run() throws carries the node's error's code, hence its exit code.
TEST(Graph, ANodesErrorKeepsItsKind) {
  const std::vector<std::pair<std::function<void()>, ErrorCode>> kinds = {
      {[] { throw Error("cannot write 'x': No space left on device"); }, ErrorCode::kIo},
      {[] { throw UsageError("--threads must be in [0, 1024]"); }, ErrorCode::kUsage},
      {[] { throw DataError("x: checksum mismatch"); }, ErrorCode::kData},
      {[] { throw InternalError("a broken contract"); }, ErrorCode::kInternal},
      {[] { throw InterruptedError("interrupted by a signal"); }, ErrorCode::kInterrupted},
      {[] { throw std::runtime_error("from a library"); }, ErrorCode::kIo},
  };
  for (const auto& kind : kinds) {
    const std::function<void()>& fail = kind.first;  // (a structured binding: not capturable in C++17)
    const ErrorCode code = kind.second;
    try {
      fail();
    } catch (...) {
      EXPECT_EQ(CodeOf(std::current_exception()), code);  // on the main thread
    }
    Graph g("t");
    int next = 0;
    auto& src = g.Source<int>("numbers", [&](int& v) {
      if (next >= 100) return false;
      v = next++;
      return true;
    });
    auto& work = g.Function<int, tbb::flow::continue_msg>(
        "work", 0,
        [&](const int& v) {
          if (v == 7) fail();
          return tbb::flow::continue_msg();
        },
        [](const tbb::flow::continue_msg&) { return uint64_t{0}; });
    g.Connect(src, work);
    try {
      g.Run();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_EQ(ExitCode(e.code()), ExitCode(CodeOf(std::current_exception())));
    }
  }
}

// Behind a sequencer, a serial node gets every message in order, and each node counts what it
// was handed (the counting must not reorder: two counting-node designs did, issue 15's notes).
TEST(Graph, SequencedMessagesArriveInOrderAndAreCounted) {
  for (int rep = 0; rep < 20; ++rep) {
    Graph g("t");
    int next = 0;
    constexpr int kItems = 3000;
    auto& src = g.Source<int>("numbers", [&](int& v) {
      if (next >= kItems) return false;
      v = next++;
      return true;
    });
    auto& limit = g.Limiter<int>("tokens", 16);
    auto& work = g.Function<int, int>(
        "work", 0, [](const int& v) { return v; }, [](const int&) { return uint64_t{1}; });
    auto& order = g.Add<tbb::flow::sequencer_node<int>>("order", "sequencer", 1,
                                                        [](const int& v) { return static_cast<size_t>(v); });
    std::vector<int> seen;
    auto& sink = g.Function<int, int>(
        "sink", 1,
        [&](const int& v) {
          seen.push_back(v);
          return v;
        },
        [](const int&) { return uint64_t{0}; });
    g.Connect(src, limit);
    g.Connect(limit, work);
    g.Connect(work, order);
    g.Connect(order, sink);
    g.ReturnTokens(sink, limit);
    g.Run();
    ASSERT_EQ(seen.size(), static_cast<size_t>(kItems));
    for (int i = 0; i < kItems; ++i) ASSERT_EQ(seen[i], i) << "rep " << rep;
    const GraphSample s = g.Sample();
    for (const NodeSample& n : s.nodes) EXPECT_EQ(n.in, static_cast<uint64_t>(kItems)) << "rep " << rep;
  }
}

TEST(Graph, CountsItemsBytesAndRecordsEdges) {
  Graph g("t");
  int next = 0;
  auto& src = g.Source<int>("numbers", [&](int& v) {
    if (next >= 100) return false;
    v = next++;
    return true;
  });
  std::atomic<long> sum{0};
  auto& work = g.Function<int, tbb::flow::continue_msg>(
      "add", 0,
      [&](const int& v) {
        sum += v;
        return tbb::flow::continue_msg();
      },
      [](const tbb::flow::continue_msg&) { return uint64_t{3}; });
  g.Connect(src, work, "ints");
  g.Run();
  EXPECT_EQ(sum.load(), 4950);
  ASSERT_EQ(g.stats().size(), 2u);
  EXPECT_EQ(g.stats()[0].Items(), 100u);
  EXPECT_EQ(g.stats()[1].Items(), 100u);
  EXPECT_EQ(g.stats()[1].bytes.load(), 300u);
  EXPECT_EQ(g.stats()[1].in.load(), 100u);  // accepted
  EXPECT_EQ(g.Sample().nodes[1].started, 100u);
  ASSERT_EQ(g.edges().size(), 1u);
  EXPECT_EQ(g.edges()[0].from, "numbers");
  EXPECT_EQ(g.edges()[0].to, "add");
  EXPECT_EQ(g.edges()[0].label, "ints");
  EXPECT_EQ(g.edges()[0].kind, "data");
  EXPECT_NE(g.StatsTable(1.0, 2).find("add"), std::string::npos);
}

// A graph given `threads` slots runs that many bodies at once, even more than the cores (TBB's
// default arena is no wider than the machine): nodes that only wait on threads of their own
// must not leave the others without a slot.
TEST(Graph, AGraphWithItsOwnSlotsRunsThatManyBodiesBeyondTheCores) {
  const int wide = DefaultThreads() + 2;
  ScopedParallelism par(wide);
  Graph g("wide", wide);
  std::atomic<int> active{0}, peak{0};
  bool sent = false;
  auto& src = g.Source<int>("one", [&](int& v) {
    v = 1;
    return !std::exchange(sent, true);
  });
  auto& fan = g.Add<tbb::flow::broadcast_node<int>>("fan", "broadcast", 1);
  g.Connect(src, fan);
  for (int i = 0; i < wide; ++i) {
    auto& wait = g.Function<int, int>(
        "wait" + std::to_string(i), 1,
        [&](const int& v) {
          const int now = ++active;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          // Hold the slot until every body is in one (or give up after 10 s: the check fails).
          const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (peak.load() < wide && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          --active;
          return v;
        },
        [](const int&) { return uint64_t{0}; });
    g.Connect(fan, wait);
  }
  g.Run();
  EXPECT_EQ(peak.load(), wide) << "bodies at once in a graph of " << wide << " slots on " << DefaultThreads()
                               << " cores";
}

// Tokens bound the items in flight between a limiter and the node that returns them.
TEST(Graph, LimiterBoundsItemsInFlight) {
  ScopedParallelism par(4);
  Graph g("t");
  int next = 0;
  std::atomic<int> in_flight{0}, peak{0};
  auto& src = g.Source<int>("numbers", [&](int& v) {
    if (next >= 400) return false;
    v = next++;
    return true;
  });
  auto& limit = g.Limiter<int>("tokens", 3);
  auto& work = g.Function<int, int>(
      "work", 0,
      [&](const int& v) {
        int now = ++in_flight;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        return v;
      },
      [](const int&) { return uint64_t{0}; });
  auto& done = g.Function<int, tbb::flow::continue_msg>(
      "done", 1,
      [&](const int&) {
        --in_flight;
        return tbb::flow::continue_msg();
      },
      [](const tbb::flow::continue_msg&) { return uint64_t{0}; });
  g.Connect(src, limit);
  g.Connect(limit, work);
  g.Connect(work, done);
  g.ReturnTokens(done, limit);
  g.Run();
  EXPECT_EQ(g.stats()[3].Items(), 400u);
  EXPECT_LE(peak.load(), 3);
  EXPECT_EQ(g.edges().back().from, "done");
  EXPECT_EQ(g.edges().back().to, "tokens");
  EXPECT_EQ(g.edges().back().kind, "token");
  // Counters: the limiter passed and got back every token; its region is bounded by them.
  const GraphSample s = g.Sample();
  EXPECT_EQ(s.nodes[1].in, 400u);
  EXPECT_EQ(s.nodes[1].out, 400u);
  EXPECT_EQ(s.nodes[1].returned, 400u);
  const GraphDescription d = g.Describe();
  ASSERT_EQ(d.nodes.size(), 4u);
  EXPECT_EQ(d.nodes[0].queue_bound, -1);  // the source is outside the region
  EXPECT_EQ(d.nodes[1].queue_bound, 3);
  EXPECT_EQ(d.nodes[2].queue_bound, 3);
  EXPECT_EQ(d.nodes[3].queue_bound, 3);
}

}  // namespace
}  // namespace bitbyte::pipeline
