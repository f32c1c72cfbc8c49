#pragma once
// A small layer over tbb::flow: named nodes with per-node counters, edges recorded for export,
// and error propagation: an exception in any node cancels the graph and surfaces from Run() as
// one pipeline::NodeError naming the node (the node's own message names the input).
#include <tbb/flow_graph.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_scheduler_observer.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/limits.h"

namespace bitbyte::pipeline {

class NodeError : public Error {
 public:
  // `cause`: the exception the node threw; its kind is the NodeError's (CodeOf), so an error
  // means the same (and exits with the same code) inside a graph as on the main thread.
  NodeError(std::string node, const std::string& message, std::exception_ptr cause = nullptr)
      : Error("node '" + node + "': " + message, cause ? CodeOf(cause) : ErrorCode::kIo),
        node_(std::move(node)),
        cause_(std::move(cause)) {}
  const std::string& node() const { return node_; }
  const std::exception_ptr& cause() const { return cause_; }

 private:
  std::string node_;
  std::exception_ptr cause_;
};

// Counters of one node, updated lock-free while the graph runs and read by the Monitor.
// A message is counted `in` when the node accepts it and `out` when the node's body has produced
// its output; what is in between waits in the node's queue or is being worked on.
struct NodeStats {
  std::string name;
  std::string kind;                   // "source", "function", "limiter", "sequencer"
  int concurrency = 1;                // 0: unlimited (a limiter: its tokens)
  std::atomic<uint64_t> in{0};        // function nodes: messages accepted
  std::atomic<uint64_t> returned{0};  // limiters: tokens given back
  std::atomic<uint64_t> bytes{0};
  // Body timing, updated together under `mu` so that a sample sees a consistent state: a body
  // that ends between two separate reads would otherwise count as running since the clock's
  // epoch. Uncontended: one node's bodies and the monitor's sample every few seconds.
  mutable std::mutex mu;
  uint64_t started = 0;     // bodies started
  uint64_t items = 0;       // bodies finished (= messages emitted)
  uint64_t busy_ns = 0;     // time in finished bodies
  uint64_t blocked_ns = 0;  // sources: an item made, waiting for a successor to take it
  // Bodies running now and the sum of their start times, so a sample counts the busy time of a
  // body still running (an evaluation can run for a minute); and since when a source waits.
  int64_t active = 0, active_start_ns = 0;
  int64_t blocked_since_ns = 0;  // 0: not waiting

  uint64_t Items() const {
    std::lock_guard<std::mutex> lock(mu);
    return items;
  }
};

inline int64_t SteadyNs(std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now()) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

struct EdgeInfo {
  std::string from, to;
  std::string label;          // what flows on the edge
  std::string kind = "data";  // "data", or "token" (an item's token returned to a limiter)
};

// A graph's shape, without figures: what `bitbyte graph` prints.
struct NodeInfo {
  std::string name, kind;
  int concurrency = 1;
  int64_t queue_bound = -1;  // most messages that can wait at this node; -1: no bound (see Graph::Describe)
};

// Sources and function nodes run a body of their own (busy and blocked time); limiters and
// sequencers only pass messages on.
inline bool HasBody(const std::string& kind) { return kind == "source" || kind == "function"; }
struct GraphDescription {
  std::string name;
  std::vector<NodeInfo> nodes;
  std::vector<EdgeInfo> edges;
};

// Counters of every node at one instant (Graph::Sample). Sources count in = out; limiters and
// sequencers have no body, so their in/out are derived from their neighbours' counters.
struct NodeSample {
  uint64_t in = 0, out = 0, started = 0, bytes = 0, busy_ns = 0, blocked_ns = 0, returned = 0;
};
struct GraphSample {
  std::chrono::steady_clock::time_point at;
  std::vector<NodeSample> nodes;  // in the order of Graph::stats()
};

namespace detail {
// A function_node that counts the messages it accepts, as it accepts them (a message waiting in
// the node's queue is counted). tbb::flow has no public counter for this, and a counting node in
// front does not do: a function_node does not keep the order of its outputs (a serial one may
// start its next body before it has forwarded the last result; a lightweight one, measured, lets
// messages after a sequencer_node overtake each other), and order matters after every sequencer.
// So this overrides try_put_task, the protected virtual of the public tbb::flow::receiver through
// which every predecessor and try_put deliver. Its task type is oneTBB's own and is named through
// decltype, so a oneTBB release that changes the hook fails to compile here, not at run time;
// tests/pipeline/graph_test.cc checks the counts and the order.
template <typename In, typename Out>
class CountedFunctionNode : public tbb::flow::function_node<In, Out> {
  using Base = tbb::flow::function_node<In, Out>;

 public:
  template <typename... Args>
  explicit CountedFunctionNode(std::atomic<uint64_t>& in, Args&&... args)
      : Base(std::forward<Args>(args)...), in_(in) {}

 protected:
  auto try_put_task(const In& message) -> decltype(this->Base::try_put_task(message)) override {
    in_.fetch_add(1, std::memory_order_relaxed);  // before: the body may finish before we return
    auto* task = Base::try_put_task(message);
    if (task == nullptr) in_.fetch_sub(1, std::memory_order_relaxed);  // rejected
    return task;
  }

 private:
  std::atomic<uint64_t>& in_;
};
}  // namespace detail

// Caps the threads TBB may use while alive (one --threads for the whole process).
class ScopedParallelism {
 public:
  explicit ScopedParallelism(int threads);

 private:
  tbb::global_control control_;
};

int DefaultThreads();  // the cores this process may run on
// The most threads any job accepts (--threads; 0 means DefaultThreads()).
using bitbyte::kMaxThreads;

class Graph {
 public:
  // `threads` > 0: the graph's tasks run in an arena of its own with that many slots, which may
  // be more than the cores (TBB's default arena is never wider than the machine): a job whose
  // nodes wait on threads of their own (training, evaluation) needs slots beyond its compute
  // threads, or those waits leave none for the other nodes. 0: TBB's default arena. The cap of a
  // live ScopedParallelism applies either way.
  explicit Graph(std::string name, int threads = 0);
  // Edges made but never run (a graph only described) can leave forwarding tasks behind: they
  // finish here, while the nodes they point to still exist.
  ~Graph() {
    try {
      g_->wait_for_all();
    } catch (...) {
    }
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  tbb::flow::graph& flow() { return *g_; }
  const std::string& name() const { return name_; }

  // A function_node whose body is timed and counted. `bytes_of(out)` adds to the byte counter.
  // `priority`: tasks of high-priority nodes run before others (sinks that must keep up).
  template <typename In, typename Out, typename Body, typename Bytes>
  tbb::flow::function_node<In, Out>& Function(const std::string& name, int concurrency, Body body, Bytes bytes_of,
                                              tbb::flow::node_priority_t priority = tbb::flow::no_priority) {
    NodeStats& st = AddStats(name, "function", concurrency);
    auto wrapped = [this, &st, body = std::move(body), bytes_of = std::move(bytes_of)](const In& in) -> Out {
      const auto t0 = Begin(st);
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
    return Own(
        name,
        std::make_unique<detail::CountedFunctionNode<In, Out>>(
            st.in, *g_, concurrency == 0 ? static_cast<size_t>(tbb::flow::unlimited) : static_cast<size_t>(concurrency),
            std::move(wrapped), tbb::flow::queueing(), priority));
  }

  // An input_node (created inactive; Run() activates every source). Body: bool(Out&), false at end.
  template <typename Out, typename Body>
  tbb::flow::input_node<Out>& Source(const std::string& name, Body body) {
    NodeStats& st = AddStats(name, "source", 1);
    // input_node asks for the next item only once its successors took the last one: the gap
    // between two calls is time blocked by backpressure (plus a task switch).
    auto wrapped = [this, &st, body = std::move(body)](tbb::flow_control& fc) -> Out {
      const auto t0 = Begin(st, /*source=*/true);
      Out out{};
      try {
        if (!body(out)) {  // the end: not an item
          Done(st, t0, false);
          fc.stop();
          return out;
        }
      } catch (...) {
        Done(st, t0);
        Fail(st.name, std::current_exception());
        fc.stop();
        return out;
      }
      Done(st, t0, true, /*source=*/true);
      return out;
    };
    auto& node = Own(name, std::make_unique<tbb::flow::input_node<Out>>(*g_, std::move(wrapped)));
    activators_.push_back([&node] { node.activate(); });
    return node;
  }

  // Any other tbb::flow node (limiter, sequencer, buffer...), named and listed.
  template <typename Node, typename... Args>
  Node& Add(const std::string& name, const std::string& kind, int concurrency, Args&&... args) {
    AddStats(name, kind, concurrency);
    return Own(name, std::make_unique<Node>(*g_, std::forward<Args>(args)...));
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
    NodeStats& st = *StatsOf(&limiter);
    auto& to_token = Own(st.name + ".release", std::make_unique<tbb::flow::function_node<Out, tbb::flow::continue_msg>>(
                                                   *g_, tbb::flow::unlimited, [&st](const Out&) {
                                                     st.returned.fetch_add(1, std::memory_order_relaxed);
                                                     return tbb::flow::continue_msg();
                                                   }));
    tbb::flow::make_edge(from, to_token);
    tbb::flow::make_edge(to_token, limiter.decrementer());
    edges_.push_back({NameOf(&from), st.name, "token returned", "token"});
  }

  template <typename From, typename To>
  void Connect(From& from, To& to, const std::string& label = "") {
    tbb::flow::make_edge(from, to);
    edges_.push_back({NameOf(&from), NameOf(&to), label, "data"});
  }

  // Activates the sources and waits. Throws pipeline::NodeError from the first failing node.
  void Run();

  // Stops the graph (from any thread); Run() then throws unless an error was already recorded.
  void Cancel(const std::string& reason);

  const std::deque<NodeStats>& stats() const { return stats_; }
  const std::vector<EdgeInfo>& edges() const { return edges_; }
  // The shape: nodes (with the queue bound each limiter's tokens impose) and edges.
  GraphDescription Describe() const;
  // Every node's counters now; safe while the graph runs.
  GraphSample Sample() const;
  // busy % is busy time over wall time x the node's concurrency (x `threads` when unlimited).
  std::string StatsTable(double wall_seconds, int threads) const;

 private:
  NodeStats& AddStats(const std::string& name, const std::string& kind, int concurrency);
  template <typename Node>
  Node& Own(const std::string& name, std::unique_ptr<Node> node) {
    Node& ref = *node;
    names_.push_back({static_cast<const void*>(static_cast<tbb::flow::graph_node*>(&ref)), name});
    nodes_.push_back(std::move(node));
    return ref;
  }
  template <typename Node>
  std::string NameOf(Node* node) const {
    return NameOfNode(static_cast<const tbb::flow::graph_node*>(node));
  }
  std::string NameOfNode(const void* node) const;
  template <typename Node>
  NodeStats* StatsOf(Node* node) {
    const std::string name = NameOf(node);
    for (NodeStats& st : stats_)
      if (st.name == name) return &st;
    throw InternalError("graph '" + name_ + "': no node " + name);
  }
  // A body starts; for a source, the wait since its last item ends (input_node asks for the
  // next item only once its successors took the last one).
  static std::chrono::steady_clock::time_point Begin(NodeStats& st, bool source = false) {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t ns = SteadyNs(t0);
    std::lock_guard<std::mutex> lock(st.mu);
    if (source && st.blocked_since_ns != 0) {
      st.blocked_ns += static_cast<uint64_t>(std::max<int64_t>(0, ns - st.blocked_since_ns));
      st.blocked_since_ns = 0;
    }
    ++st.started;
    ++st.active;
    st.active_start_ns += ns;
    return t0;
  }
  // A body ends; `item`: it emitted a message (a source's last call does not); a source that
  // made an item now waits for a successor to take it.
  static void Done(NodeStats& st, std::chrono::steady_clock::time_point t0, bool item = true, bool source = false) {
    const int64_t t1 = SteadyNs(), ns0 = SteadyNs(t0);
    std::lock_guard<std::mutex> lock(st.mu);
    st.busy_ns += static_cast<uint64_t>(std::max<int64_t>(0, t1 - ns0));
    --st.active;
    st.active_start_ns -= ns0;
    if (item)
      ++st.items;
    else
      --st.started;
    if (source && item) st.blocked_since_ns = t1;
  }
  void Fail(const std::string& node, std::exception_ptr e);

  std::string name_;
  std::unique_ptr<tbb::task_arena> arena_;               // null: TBB's default arena
  std::unique_ptr<tbb::task_scheduler_observer> namer_;  // names the workers that join arena_
  std::unique_ptr<tbb::flow::graph> g_;                  // declared before the nodes: destroyed after them
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
