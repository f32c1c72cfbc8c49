#pragma once
// A small layer over tbb::flow: named nodes with per-node counters, edges recorded for export,
// and error propagation: an exception in any node cancels the graph and surfaces from Run() as
// one pipeline::NodeError naming the node (the node's own message names the input).
#include <tbb/flow_graph.h>
#include <tbb/global_control.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace bitbyte::pipeline {

class NodeError : public std::runtime_error {
 public:
  // `cause`: the exception the node threw, so callers can still tell its type (a DataError is
  // reported with its own exit code).
  NodeError(std::string node, const std::string& message, std::exception_ptr cause = nullptr)
      : std::runtime_error("node '" + node + "': " + message), node_(std::move(node)), cause_(std::move(cause)) {}
  const std::string& node() const { return node_; }
  const std::exception_ptr& cause() const { return cause_; }

 private:
  std::string node_;
  std::exception_ptr cause_;
};

struct NodeStats {
  std::string name;
  std::string kind;         // "source", "function", "limiter", "sequencer", ...
  int concurrency = 1;      // 0: unlimited
  std::atomic<uint64_t> items{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> busy_ns{0};
};

struct EdgeInfo {
  std::string from, to;
};

// Caps the threads TBB may use while alive (one --threads for the whole process).
class ScopedParallelism {
 public:
  explicit ScopedParallelism(int threads);

 private:
  tbb::global_control control_;
};

int DefaultThreads();  // the cores this process may run on

class Graph {
 public:
  explicit Graph(std::string name) : name_(std::move(name)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  tbb::flow::graph& flow() { return g_; }
  const std::string& name() const { return name_; }

  // A function_node whose body is timed and counted. `bytes_of(out)` adds to the byte counter.
  // `priority`: tasks of high-priority nodes run before others (sinks that must keep up).
  template <typename In, typename Out, typename Body, typename Bytes>
  tbb::flow::function_node<In, Out>& Function(const std::string& name, int concurrency, Body body, Bytes bytes_of,
                                              tbb::flow::node_priority_t priority = tbb::flow::no_priority) {
    NodeStats& st = AddStats(name, "function", concurrency);
    auto wrapped = [this, &st, body = std::move(body), bytes_of = std::move(bytes_of)](const In& in) -> Out {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        Out out = body(in);
        st.bytes += bytes_of(out);
        Done(st, t0);
        return out;
      } catch (...) {
        Done(st, t0);
        Fail(st.name, std::current_exception());
        throw;
      }
    };
    return Own(name, std::make_unique<tbb::flow::function_node<In, Out>>(
                         g_, concurrency == 0 ? static_cast<size_t>(tbb::flow::unlimited) : static_cast<size_t>(concurrency),
                         std::move(wrapped), tbb::flow::queueing(), priority));
  }

  // An input_node (created inactive; Run() activates every source). Body: bool(Out&), false at end.
  template <typename Out, typename Body>
  tbb::flow::input_node<Out>& Source(const std::string& name, Body body) {
    NodeStats& st = AddStats(name, "source", 1);
    auto wrapped = [this, &st, body = std::move(body)](tbb::flow_control& fc) -> Out {
      const auto t0 = std::chrono::steady_clock::now();
      Out out{};
      try {
        if (!body(out)) {
          fc.stop();
          return out;
        }
      } catch (...) {
        Done(st, t0);
        Fail(st.name, std::current_exception());
        fc.stop();
        return out;
      }
      Done(st, t0);
      return out;
    };
    auto& node = Own(name, std::make_unique<tbb::flow::input_node<Out>>(g_, std::move(wrapped)));
    activators_.push_back([&node] { node.activate(); });
    return node;
  }

  // Any other tbb::flow node (limiter, sequencer, buffer...), named and listed.
  template <typename Node, typename... Args>
  Node& Add(const std::string& name, const std::string& kind, int concurrency, Args&&... args) {
    AddStats(name, kind, concurrency);
    return Own(name, std::make_unique<Node>(g_, std::forward<Args>(args)...));
  }

  // A bounded stage: at most `tokens` items pass the limiter until ReturnTokens' node hands
  // them back, one per item it finishes. This is how every graph bounds memory in flight.
  template <typename T>
  tbb::flow::limiter_node<T>& Limiter(const std::string& name, size_t tokens) {
    return Add<tbb::flow::limiter_node<T>>(name, "limiter", static_cast<int>(tokens), tokens);
  }
  // `from` may emit any type: each message it emits returns one token.
  template <typename From, typename T>
  void ReturnTokens(From& from, tbb::flow::limiter_node<T>& limiter) {
    using Out = typename From::output_type;
    if constexpr (std::is_same_v<Out, tbb::flow::continue_msg>) {
      tbb::flow::make_edge(from, limiter.decrementer());
    } else {
      auto& to_token = Own(NameOf(&limiter) + ".release",
                           std::make_unique<tbb::flow::function_node<Out, tbb::flow::continue_msg>>(
                               g_, tbb::flow::unlimited, [](const Out&) { return tbb::flow::continue_msg(); }));
      tbb::flow::make_edge(from, to_token);
      tbb::flow::make_edge(to_token, limiter.decrementer());
    }
    edges_.push_back({NameOf(&from), NameOf(&limiter) + " (token returned)"});
  }

  template <typename From, typename To>
  void Connect(From& from, To& to, const std::string& label = "") {
    tbb::flow::make_edge(from, to);
    edges_.push_back({NameOf(&from), NameOf(&to) + (label.empty() ? "" : " (" + label + ")")});
  }

  // Activates the sources and waits. Throws pipeline::NodeError from the first failing node.
  void Run();

  // Stops the graph (from any thread); Run() then throws unless an error was already recorded.
  void Cancel(const std::string& reason);

  const std::deque<NodeStats>& stats() const { return stats_; }
  const std::vector<EdgeInfo>& edges() const { return edges_; }
  // busy % is busy time over wall time x the node's concurrency (x `threads` when unlimited).
  std::string StatsTable(double wall_seconds, int threads) const;

 private:
  NodeStats& AddStats(const std::string& name, const std::string& kind, int concurrency);
  template <typename Node>
  Node& Own(const std::string& name, std::unique_ptr<Node> node) {
    Node& ref = *node;
    names_.push_back({static_cast<const void*>(&ref), name});
    nodes_.push_back(std::move(node));
    return ref;
  }
  std::string NameOf(const void* node) const;
  static void Done(NodeStats& st, std::chrono::steady_clock::time_point t0) {
    st.busy_ns += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    ++st.items;
  }
  void Fail(const std::string& node, std::exception_ptr e);

  std::string name_;
  tbb::flow::graph g_;  // declared before the nodes: destroyed after them
  std::deque<NodeStats> stats_;
  std::vector<std::pair<const void*, std::string>> names_;
  std::vector<std::unique_ptr<tbb::flow::graph_node>> nodes_;
  std::vector<std::function<void()>> activators_;
  std::vector<EdgeInfo> edges_;
  std::mutex mu_;
  std::string failed_node_;
  std::exception_ptr error_;
};

}  // namespace bitbyte::pipeline
