#include "pipeline/graph.h"

#include <oneapi/tbb/task_scheduler_observer.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "base/thread_cpu.h"

namespace bitbyte::pipeline {

namespace {

// Names the TBB worker threads that join an arena "tbb-worker" (the calling thread's arena, or
// `arena`), so that a job's per-thread CPU figures (train --stats, base/thread_cpu.h) can tell
// them apart.
class WorkerNamer : public tbb::task_scheduler_observer {
 public:
  WorkerNamer() { observe(true); }
  explicit WorkerNamer(tbb::task_arena& arena) : tbb::task_scheduler_observer(arena) { observe(true); }
  ~WorkerNamer() override { observe(false); }  // before this object goes: no call into it after
  void on_scheduler_entry(bool is_worker) override {
    if (is_worker) NameThisThread("tbb-worker");
  }
};

}  // namespace

ScopedParallelism::ScopedParallelism(int threads)
    : control_(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads < 1 ? 1 : threads)) {
  // Never destroyed: an observer must not go away while TBB may still call it at exit.
  static WorkerNamer* namer = new WorkerNamer;
  (void)namer;
}

int DefaultThreads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

NodeStats& Graph::AddStats(const std::string& name, const std::string& kind, int concurrency) {
  NodeStats& st = stats_.emplace_back();
  st.name = name;
  st.kind = kind;
  st.concurrency = concurrency;
  return st;
}

std::string Graph::NameOfNode(const void* node) const {
  for (const auto& [ptr, name] : names_)
    if (ptr == node) return name;
  return "?";
}

GraphDescription Graph::Describe() const {
  GraphDescription d;
  d.name = name_;
  for (const NodeStats& st : stats_) d.nodes.push_back({st.name, st.kind, st.concurrency});
  d.edges = edges_;
  // A limiter's tokens bound every queue from it to the node that returns them: messages past
  // the limiter and not yet released are at most `tokens`.
  for (const NodeStats& lim : stats_) {
    if (lim.kind != "limiter") continue;
    std::string releaser;
    for (const EdgeInfo& e : edges_)
      if (e.kind == "token" && e.to == lim.name) releaser = e.from;
    if (releaser.empty()) continue;
    std::vector<std::string> todo{lim.name}, seen{lim.name};
    while (!todo.empty()) {
      const std::string at = todo.back();
      todo.pop_back();
      if (at == releaser) continue;
      for (const EdgeInfo& e : edges_) {
        if (e.kind != "data" || e.from != at || std::find(seen.begin(), seen.end(), e.to) != seen.end()) continue;
        seen.push_back(e.to);
        todo.push_back(e.to);
      }
    }
    for (NodeInfo& n : d.nodes)
      if (std::find(seen.begin(), seen.end(), n.name) != seen.end()) n.queue_bound = lim.concurrency;
  }
  return d;
}

GraphSample Graph::Sample() const {
  GraphSample s;
  s.at = std::chrono::steady_clock::now();
  const size_t n = stats_.size();
  s.nodes.resize(n);
  std::vector<bool> known(n);
  auto index = [&](const std::string& name) -> size_t {
    for (size_t i = 0; i < n; ++i)
      if (stats_[i].name == name) return i;
    return n;
  };
  for (size_t i = 0; i < n; ++i) {
    const NodeStats& st = stats_[i];
    NodeSample& x = s.nodes[i];
    {
      std::lock_guard<std::mutex> lock(st.mu);
      const int64_t now = SteadyNs(s.at);
      x.out = st.items;
      x.started = st.started;
      // Time of bodies still running counts too.
      x.busy_ns = st.busy_ns + static_cast<uint64_t>(std::max<int64_t>(0, st.active * now - st.active_start_ns));
      x.blocked_ns = st.blocked_ns + static_cast<uint64_t>(
                                         st.blocked_since_ns > 0 ? std::max<int64_t>(0, now - st.blocked_since_ns) : 0);
    }
    x.in = st.kind == "source" ? x.out : st.in.load(std::memory_order_relaxed);
    x.bytes = st.bytes.load(std::memory_order_relaxed);
    x.returned = st.returned.load(std::memory_order_relaxed);
    known[i] = HasBody(st.kind);
  }
  // Nodes without a body (limiter, sequencer): in = what their predecessors emitted; out = what
  // their successors accepted from them (a successor's arrivals less those from its other,
  // counted, predecessors). Counters are read one after another, so clamp at zero.
  for (size_t i = 0; i < n; ++i) {
    if (known[i]) continue;
    uint64_t in = 0, out = 0;
    bool out_known = true;
    for (const EdgeInfo& e : edges_) {
      if (e.kind != "data") continue;
      const size_t from = index(e.from), to = index(e.to);
      if (from >= n || to >= n) continue;
      if (to == i && known[from]) in += s.nodes[from].out;
      if (from != i) continue;
      if (!known[to]) {
        out_known = false;
        continue;
      }
      uint64_t others = 0;
      for (const EdgeInfo& f : edges_) {
        const size_t q = index(f.from);
        if (f.kind != "data" || f.to != e.to || q == i || q >= n) continue;
        if (!known[q]) out_known = false;
        others += s.nodes[q].out;
      }
      out += s.nodes[to].in > others ? s.nodes[to].in - others : 0;
    }
    s.nodes[i].in = in;
    s.nodes[i].out = out_known ? std::min(out, in) : in;
  }
  return s;
}

void Graph::Fail(const std::string& node, std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) {
      error_ = e;
      failed_node_ = node;
    }
  }
  g_->cancel();
}

Graph::Graph(std::string name, int threads) : name_(std::move(name)) {
  if (threads > 0) {
    arena_ = std::make_unique<tbb::task_arena>(threads);
    namer_ = std::make_unique<WorkerNamer>(*arena_);
    // A flow graph runs its tasks in the arena it was built in.
    arena_->execute([&] { g_ = std::make_unique<tbb::flow::graph>(); });
  } else {
    g_ = std::make_unique<tbb::flow::graph>();
  }
}

void Graph::Cancel(const std::string& reason) { Fail("cancel", std::make_exception_ptr(std::runtime_error(reason))); }

void Graph::Run() {
  for (auto& activate : activators_) activate();
  try {
    g_->wait_for_all();
  } catch (...) {
    // Recorded by Fail() below if a node body threw; anything else is TBB's own.
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) {
      error_ = std::current_exception();
      failed_node_ = "graph '" + name_ + "'";
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_) return;
  try {
    std::rethrow_exception(error_);
  } catch (const std::exception& ex) {
    throw NodeError(failed_node_, ex.what(), error_);
  } catch (...) {
    throw NodeError(failed_node_, "unknown exception", error_);
  }
}

std::string Graph::StatsTable(double wall_seconds, int threads) const {
  const GraphSample sample = Sample();
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %-10s %5s %10s %10s %12s %9s %7s %10s\n", "node", "kind", "conc", "in", "out",
                "bytes", "busy s", "busy %", "MB/s busy");
  out += line;
  for (size_t i = 0; i < stats_.size(); ++i) {
    const NodeStats& st = stats_[i];
    const NodeSample& x = sample.nodes[i];
    const int conc = st.concurrency;
    std::snprintf(line, sizeof line, "%-14s %-10s %5s %10llu %10llu", st.name.c_str(), st.kind.c_str(),
                  conc == 0 ? "inf" : std::to_string(conc).c_str(), static_cast<unsigned long long>(x.in),
                  static_cast<unsigned long long>(x.out));
    out += line;
    if (!HasBody(st.kind)) {  // no time of its own
      out += "\n";
      continue;
    }
    const double busy = static_cast<double>(x.busy_ns) * 1e-9;
    const double mb = static_cast<double>(x.bytes) / 1e6;
    const double cap = wall_seconds * (conc > 0 ? conc : std::max(threads, 1));
    std::snprintf(line, sizeof line, " %12llu %9.3f %7.1f %10.1f\n", static_cast<unsigned long long>(x.bytes), busy,
                  cap > 0 ? 100.0 * busy / cap : 0.0, busy > 0 ? mb / busy : 0.0);
    out += line;
  }
  return out;
}

}  // namespace bitbyte::pipeline
