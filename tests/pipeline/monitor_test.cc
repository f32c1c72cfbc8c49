// The live figures: counters sampled while a graph runs (queue depth, busy and blocked time),
// pipeline.json as the Monitor writes it, and the DOT drawing of such documents.
#include "pipeline/monitor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <thread>

#include "base/error.h"
#include "base/file_io.h"
#include "pipeline/export.h"
#include "pipeline/graph.h"
#include "tests/test_util.h"

namespace bitbyte::pipeline {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

std::string TempPath(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("bitbyte_monitor_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

json ReadJson(const std::string& path) {
  if (!std::filesystem::exists(path)) return json();
  return json::parse(io::ReadFile(io::Posix(), path), nullptr, false);
}

const json* FindNode(const json& doc, const std::string& name) {
  if (!doc.is_object() || !doc.contains("graphs")) return nullptr;
  for (const json& g : doc["graphs"])
    for (const json& n : g["nodes"])
      if (n["name"] == name) return &n;
  return nullptr;
}

// source -> slow (serial, held shut) -> sink. While `slow` is held, N-1 items wait in its queue,
// one is in flight, and it is 100% busy; once released everything flows and totals add up.
TEST(Monitor, SamplesQueueDepthBusyTimeAndTotals) {
  constexpr int kItems = 10;
  ScopedParallelism par(4);
  const std::string path = TempPath("queue.json");
  std::filesystem::remove(path);
  Gate gate;
  json seen;
  {
    Monitor monitor({path, "test", 4, 0.02});
    Graph g("g");
    int next = 0;
    auto& src = g.Source<int>("numbers", [&](int& v) {
      if (next >= kItems) return false;
      v = next++;
      return true;
    });
    auto& slow = g.Function<int, int>(
        "slow", 1,
        [&](const int& v) {
          gate.Wait();
          return v;
        },
        [](const int&) { return uint64_t{8}; });
    auto& sink = g.Function<int, tbb::flow::continue_msg>(
        "sink", 1, [](const int&) { return tbb::flow::continue_msg(); },
        [](const tbb::flow::continue_msg&) { return uint64_t{0}; });
    g.Connect(src, slow, "ints");
    g.Connect(slow, sink, "ints");
    Monitor::Watch watch(monitor, g);
    std::thread release([&] {
      // Wait for a sample with the whole backlog queued and the node busy for a window.
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (std::chrono::steady_clock::now() < deadline) {
        const json doc = ReadJson(path);
        const json* n = FindNode(doc, "slow");
        if (n && n->contains("queue") && (*n)["queue"] == kItems - 1 && (*n)["in_flight"] == 1 &&
            (*n)["window"]["busy_pct"].get<double>() > 90) {
          seen = doc;
          break;
        }
        std::this_thread::sleep_for(5ms);
      }
      gate.Open();
    });
    g.Run();
    release.join();
    monitor.Finish("finished");
  }
  ASSERT_TRUE(seen.is_object()) << "no sample showed the backlog: " << ReadJson(path).dump();
  EXPECT_EQ(seen["state"], "running");
  EXPECT_EQ(seen["graphs"][0]["bottleneck"], "slow");
  EXPECT_EQ((*FindNode(seen, "slow"))["in"], kItems);
  EXPECT_EQ((*FindNode(seen, "slow"))["out"], 0);

  const json done = ReadJson(path);
  ASSERT_TRUE(done.is_object());
  EXPECT_EQ(done["format"], "bitbyte.pipeline/1");
  EXPECT_EQ(done["state"], "finished");
  EXPECT_EQ(done["graphs"][0]["state"], "finished");
  for (const char* name : {"numbers", "slow", "sink"}) {
    const json& n = *FindNode(done, name);
    EXPECT_EQ(n["out"], kItems) << name;
    EXPECT_EQ(n["queue"], 0) << name;
    EXPECT_EQ(n["in_flight"], 0) << name;
    const double busy = n["total"]["busy_pct"], idle = n["total"]["idle_pct"], blocked = n["total"]["blocked_pct"];
    EXPECT_NEAR(busy + idle + blocked, 100.0, 1e-6) << name;
  }
  EXPECT_EQ((*FindNode(done, "slow"))["bytes"], 8 * kItems);
  EXPECT_EQ(done["graphs"][0]["edges"][0]["label"], "ints");
}

// A source whose items sit behind an exhausted limiter is blocked: it made an item and waits.
TEST(Monitor, SourceBehindAFullLimiterCountsBlockedTime) {
  ScopedParallelism par(4);
  Graph g("g");
  int next = 0;
  Gate gate;
  auto& src = g.Source<int>("numbers", [&](int& v) {
    if (next >= 4) return false;
    v = next++;
    return true;
  });
  auto& limit = g.Limiter<int>("tokens", 1);
  auto& work = g.Function<int, int>(
      "work", 1,
      [&](const int& v) {
        if (v == 0) gate.Wait();
        return v;
      },
      [](const int&) { return uint64_t{0}; });
  g.Connect(src, limit);
  g.Connect(limit, work);
  g.ReturnTokens(work, limit);
  std::thread release([&] {
    std::this_thread::sleep_for(300ms);
    const GraphSample s = g.Sample();
    EXPECT_GE(s.nodes[0].blocked_ns, 200'000'000u);  // waited for the token most of that time
    EXPECT_GE(s.nodes[2].busy_ns, 200'000'000u);     // the running body counts before it ends
    EXPECT_EQ(s.nodes[2].out, 0u);
    gate.Open();
  });
  g.Run();
  release.join();
  const GraphSample s = g.Sample();
  EXPECT_EQ(s.nodes[1].out, 4u);
  EXPECT_EQ(s.nodes[1].returned, 4u);
}

// Random pipelines of functions and sequencers: once a run ends, every node's counters agree
// (in = out, nothing queued) and the description lists every node and edge.
TEST(Monitor, CountersBalanceOnRandomPipelines) {
  ScopedParallelism par(4);
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    const int items = 1 + static_cast<int>(rng() % 300);
    const int stages = 1 + static_cast<int>(rng() % 5);
    Graph g("random");
    int next = 0;
    auto& src = g.Source<size_t>("src", [&](size_t& v) {
      if (next >= items) return false;
      v = static_cast<size_t>(next++);
      return true;
    });
    using Fn = tbb::flow::function_node<size_t, size_t>;
    std::function<void(Fn&)> connect_to = [&](Fn& f) { g.Connect(src, f, "item"); };
    for (int i = 0; i <= stages; ++i) {  // the last stage is a function: a sequencer needs a taker
      const std::string name = "f" + std::to_string(i);
      auto& f = g.Function<size_t, size_t>(
          name, static_cast<int>(rng() % 3), [](const size_t& v) { return v; },
          [](const size_t&) { return uint64_t{1}; });
      connect_to(f);
      if (i < stages && rng() % 2) {
        auto& seq = g.Add<tbb::flow::sequencer_node<size_t>>("s" + std::to_string(i), "sequencer", 1,
                                                             [](const size_t& v) { return v; });
        g.Connect(f, seq, "item");
        connect_to = [&g, &seq](Fn& next) { g.Connect(seq, next, "in order"); };
      } else {
        connect_to = [&g, &f](Fn& next) { g.Connect(f, next, "item"); };
      }
    }
    g.Run();
    const GraphSample s = g.Sample();
    for (size_t i = 0; i < s.nodes.size(); ++i) {
      const NodeStats& st = g.stats()[i];
      if (st.kind == "function") {
        EXPECT_EQ(s.nodes[i].in, static_cast<uint64_t>(items)) << st.name;
        EXPECT_EQ(s.nodes[i].started, static_cast<uint64_t>(items)) << st.name;
      }
      EXPECT_EQ(s.nodes[i].out, static_cast<uint64_t>(items)) << st.name;
    }
  }
}

TEST(Monitor, AnUnwritablePathWarnsAndTheGraphGoesOn) {
  Monitor monitor({"/nonexistent-dir/x/pipeline.json", "test", 1, 0.01});
  Graph g("g");
  int next = 0;
  auto& src = g.Source<int>("numbers", [&](int& v) {
    if (next >= 100) return false;
    v = next++;
    return true;
  });
  int sum = 0;
  auto& sink = g.Function<int, tbb::flow::continue_msg>(
      "sink", 1,
      [&](const int& v) {
        sum += v;
        return tbb::flow::continue_msg();
      },
      [](const tbb::flow::continue_msg&) { return uint64_t{0}; });
  g.Connect(src, sink);
  Monitor::Watch watch(monitor, g);
  g.Run();
  EXPECT_EQ(sum, 4950);
}

// An interval beyond what a clock wait can add to now is refused (it once overflowed into a
// busy loop that never slept); the largest allowed one still waits and stops promptly.
TEST(Monitor, IntervalsOutOfRangeAreRefusedAndTheLargestStillStops) {
  testing::TempDir t;
  for (double bad : {0.0, -1.0, 1e10, kMaxFiguresInterval * 2, std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()})
    EXPECT_THROW(Monitor({t / "p.json", "test", 1, bad}), UsageError) << bad;
  const auto t0 = std::chrono::steady_clock::now();
  {
    Monitor monitor({t / "p.json", "test", 1, kMaxFiguresInterval});
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);  // a hang, not a timing: it stops at once
  EXPECT_TRUE(std::filesystem::exists(t / "p.json"));
}

std::string TwoGraphDocument() {
  Graph a("first"), b("second");
  int n = 0;
  auto& src = a.Source<int>("make", [&](int&) { return ++n < 3; });
  auto& lim = a.Limiter<int>("tokens", 5);
  auto& work = a.Function<int, int>(
      "work \"quoted\"", 0, [](const int& v) { return v; }, [](const int&) { return uint64_t{0}; });
  a.Connect(src, lim, "item");
  a.Connect(lim, work, "item");
  a.ReturnTokens(work, lim);
  auto& src2 = b.Source<int>("again", [&](int&) { return false; });
  auto& seq = b.Add<tbb::flow::sequencer_node<int>>("order", "sequencer", 1, [](const int& v) { return size_t(v); });
  b.Connect(src2, seq, "in order");
  return DescribeJson("job", {a.Describe(), b.Describe()});
}

TEST(Export, DescriptionAndDotNameEveryNodeAndEdge) {
  const json doc = json::parse(TwoGraphDocument());
  ASSERT_EQ(doc["graphs"].size(), 2u);
  const json& first = doc["graphs"][0];
  EXPECT_EQ(first["nodes"].size(), 3u);  // the token-return helper is not a node of ours
  EXPECT_EQ(first["nodes"][1]["kind"], "limiter");
  EXPECT_EQ(first["nodes"][2]["queue_bound"], 5);
  EXPECT_TRUE(first["nodes"][0]["queue_bound"].is_null());
  EXPECT_FALSE(first["nodes"][0].contains("window"));  // a shape, no figures
  const std::string dot = PipelineDot(doc.dump(), "doc");
  for (const char* name : {"make", "tokens", "work \\\"quoted\\\"", "again", "order"})
    EXPECT_NE(dot.find(name), std::string::npos) << name;
  EXPECT_NE(dot.find("style=dashed"), std::string::npos);  // the token return
  EXPECT_NE(dot.find("\"in order\""), std::string::npos);
  EXPECT_EQ(dot.find("BOTTLENECK"), std::string::npos);
}

TEST(Export, FiguresColourNodesAndMarkTheBottleneck) {
  json doc = json::parse(TwoGraphDocument());
  doc["state"] = "finished";
  doc["graphs"][0]["bottleneck"] = "tokens";
  for (json& n : doc["graphs"][0]["nodes"]) {
    n["in"] = n["out"] = 3;
    n["total"] = {{"busy_pct", n["name"] == "make" ? 100.0 : 0.0},
                  {"idle_pct", 0.0},
                  {"blocked_pct", 0.0},
                  {"items_per_s", 1.5},
                  {"bytes_per_s", 2e6}};
  }
  doc["graphs"][0]["bottleneck"] = "make";
  const std::string dot = PipelineDot(doc.dump(), "doc");
  EXPECT_NE(dot.find("BOTTLENECK\\nmake"), std::string::npos);
  EXPECT_NE(dot.find("#d73027"), std::string::npos);  // 100% busy: full red
  EXPECT_NE(dot.find("2.00 MB/s"), std::string::npos);
  EXPECT_NE(dot.find("whole run"), std::string::npos);
}

TEST(Export, BadDocumentsAreDataErrorsNamingTheSource) {
  for (const char* text : {"", "not json", "[]", "{}", "{\"graphs\": 3}", "{\"graphs\": [1]}",
                           "{\"graphs\": [{\"nodes\": [{}]}]}", "{\"graphs\": [{\"nodes\": [], \"edges\": [{}]}]}"}) {
    try {
      PipelineDot(text, "run/pipeline.json");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("run/pipeline.json"), std::string::npos) << e.what();
    }
  }
  // Wrong types where strings or numbers belong: taken as absent, not a json type_error.
  for (const char* text : {"{\"graphs\":[],\"state\":7,\"job\":[1]}",
                           "{\"graphs\":[{\"name\":5,\"state\":{},\"nodes\":[{\"name\":\"a\",\"kind\":3,"
                           "\"concurrency\":1e300,\"queue_bound\":-1e300,\"in\":\"x\",\"total\":{\"busy_pct\":\"y\"}}],"
                           "\"edges\":[{\"from\":\"a\",\"to\":\"a\",\"kind\":1,\"label\":[]}]}]}"}) {
    EXPECT_NO_THROW(PipelineDot(text, "x")) << text;
  }
  // Random mutations of a good document: an error or a drawing, never a crash.
  const std::string good = TwoGraphDocument();
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) {
    std::string t = good;
    for (int k = 0; k < 3; ++k) t[rng() % t.size()] = static_cast<char>(rng() % 128);
    try {
      PipelineDot(t, "x");
    } catch (const DataError&) {
    }
  }
}

}  // namespace
}  // namespace bitbyte::pipeline
