#include "pipeline/monitor.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "base/error.h"

namespace bitbyte::pipeline {
namespace {

using json = nlohmann::json;

constexpr char kFormat[] = "bitbyte.pipeline/1";

json NodeShape(const NodeInfo& n) {
  return {{"name", n.name},
          {"kind", n.kind},
          {"concurrency", n.concurrency},
          {"queue_bound", n.queue_bound < 0 ? json(nullptr) : json(n.queue_bound)}};
}

json EdgeJson(const EdgeInfo& e) { return {{"from", e.from}, {"to", e.to}, {"label", e.label}, {"kind", e.kind}}; }

// Figures of one node between two samples.
json Span(const NodeInfo& n, const NodeSample& a, const NodeSample& b, double seconds, int threads) {
  json j = {{"seconds", seconds}};
  const double items = static_cast<double>(b.out - std::min(a.out, b.out));
  j["items_per_s"] = seconds > 0 ? items / seconds : 0.0;
  if (!HasBody(n.kind)) {
    j["busy_pct"] = j["idle_pct"] = j["blocked_pct"] = j["bytes_per_s"] = nullptr;
    return j;
  }
  const double cap = seconds * (n.concurrency > 0 ? n.concurrency : std::max(threads, 1));
  const double busy =
      cap > 0 ? 100.0 * static_cast<double>(b.busy_ns - std::min(a.busy_ns, b.busy_ns)) * 1e-9 / cap : 0;
  const double blocked =
      cap > 0 ? 100.0 * static_cast<double>(b.blocked_ns - std::min(a.blocked_ns, b.blocked_ns)) * 1e-9 / cap : 0;
  j["busy_pct"] = busy;
  j["blocked_pct"] = blocked;
  j["idle_pct"] = std::max(0.0, 100.0 - busy - blocked);
  j["bytes_per_s"] = seconds > 0 ? static_cast<double>(b.bytes - std::min(a.bytes, b.bytes)) / seconds : 0.0;
  return j;
}

json NodeFigures(const NodeInfo& n, const NodeSample& first, const NodeSample& prev, const NodeSample& last,
                 double window_s, double total_s, int threads) {
  json j = NodeShape(n);
  j["in"] = last.in;
  j["out"] = last.out;
  uint64_t queue = 0, in_flight = 0;
  if (n.kind == "function") {
    queue = last.in > last.started ? last.in - last.started : 0;
    in_flight = last.started > last.out ? last.started - last.out : 0;
  } else if (n.kind == "source") {
    in_flight = last.started > last.out ? last.started - last.out : 0;
  } else if (n.kind == "limiter") {
    in_flight = last.out > last.returned ? last.out - last.returned : 0;  // tokens in use
  } else {
    queue = last.in > last.out ? last.in - last.out : 0;  // held, e.g. out of order
  }
  j["queue"] = queue;
  j["in_flight"] = in_flight;
  j["bytes"] = last.bytes;
  if (HasBody(n.kind)) {
    j["busy_s"] = static_cast<double>(last.busy_ns) * 1e-9;
    j["blocked_s"] = static_cast<double>(last.blocked_ns) * 1e-9;
  } else {
    j["busy_s"] = j["blocked_s"] = nullptr;
  }
  j["window"] = Span(n, prev, last, window_s, threads);
  j["total"] = Span(n, first, last, total_s, threads);
  return j;
}

}  // namespace

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

struct Monitor::Watched {
  const Graph* g = nullptr;  // null once stopped
  GraphDescription desc;
  GraphSample first, prev, last;
  std::string state = "running";

  void Take() {
    GraphSample now = g->Sample();
    // Counters are read one after another and running bodies are estimated: never go back.
    for (size_t i = 0; i < now.nodes.size() && i < last.nodes.size(); ++i) {
      NodeSample& x = now.nodes[i];
      const NodeSample& y = last.nodes[i];
      x.busy_ns = std::max(x.busy_ns, y.busy_ns);
      x.blocked_ns = std::max(x.blocked_ns, y.blocked_ns);
      x.in = std::max(x.in, y.in);
      x.out = std::max(x.out, y.out);
    }
    prev = std::move(last);
    last = std::move(now);
  }

  json ToJson(int threads) const {
    const double total_s = std::chrono::duration<double>(last.at - first.at).count();
    const double window_s = std::chrono::duration<double>(last.at - prev.at).count();
    json nodes = json::array();
    std::string bottleneck;
    double best = 0;
    for (size_t i = 0; i < desc.nodes.size(); ++i) {
      json n = NodeFigures(desc.nodes[i], first.nodes[i], prev.nodes[i], last.nodes[i], window_s, total_s, threads);
      // The bottleneck: the busiest node with a body, over the last window while running and
      // over the whole run once the graph stopped.
      const json& busy = n[state == "running" ? "window" : "total"]["busy_pct"];
      if (busy.is_number() && busy.get<double>() > best) {
        best = busy.get<double>();
        bottleneck = desc.nodes[i].name;
      }
      nodes.push_back(std::move(n));
    }
    json edges = json::array();
    for (const EdgeInfo& e : desc.edges) edges.push_back(EdgeJson(e));
    return {{"name", desc.name},         {"state", state},
            {"elapsed_s", total_s},      {"bottleneck", bottleneck.empty() ? json(nullptr) : json(bottleneck)},
            {"nodes", std::move(nodes)}, {"edges", std::move(edges)}};
  }
};

Monitor::Monitor(MonitorOptions options) : o_(std::move(options)), started_unix_(UnixSeconds()) {
  if (o_.path.empty()) return;
  if (!(o_.interval_s >= kMinFiguresInterval && o_.interval_s <= kMaxFiguresInterval))
    throw UsageError("figures interval " + std::to_string(o_.interval_s) + " s is out of range [" +
                     std::to_string(kMinFiguresInterval) + ", " + std::to_string(kMaxFiguresInterval) + "]");
  thread_ = std::thread([this] { Loop(); });
}

Monitor::~Monitor() {
  if (o_.path.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (state_ == "running") state_ = "failed";
    WriteLocked();
  }
  cv_.notify_all();
  thread_.join();
  for (Watched* w : graphs_) delete w;
}

void Monitor::Finish(const std::string& state) {
  if (o_.path.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  state_ = state;
  WriteLocked();
}

void Monitor::Start(const Graph& g) {
  if (o_.path.empty()) return;
  auto* w = new Watched;
  w->g = &g;
  w->desc = g.Describe();
  w->first = w->prev = w->last = g.Sample();
  std::lock_guard<std::mutex> lock(mu_);
  graphs_.push_back(w);
  WriteLocked();
}

void Monitor::Stop(const Graph& g) {
  if (o_.path.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (Watched* w : graphs_) {
    if (w->g != &g) continue;
    w->Take();
    w->state = std::uncaught_exceptions() > 0 ? "failed" : "finished";
    w->g = nullptr;
  }
  WriteLocked();
}

void Monitor::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const auto wait = std::chrono::milliseconds(static_cast<int64_t>(o_.interval_s * 1000));
    cv_.wait_for(lock, wait, [&] { return stop_; });
    if (stop_) break;
    for (Watched* w : graphs_)
      if (w->g) w->Take();
    WriteLocked();
  }
}

void Monitor::WriteLocked() {
  json doc = {{"format", kFormat},
              {"job", o_.job},
              {"state", state_},
              {"pid", static_cast<int64_t>(::getpid())},
              {"host", HostName()},
              {"started_unix", started_unix_},
              {"updated_unix", UnixSeconds()},
              {"interval_s", o_.interval_s},
              {"threads", o_.threads}};
  json graphs = json::array();
  for (const Watched* w : graphs_) graphs.push_back(w->ToJson(o_.threads));
  doc["graphs"] = std::move(graphs);
  // Replaced with a rename, so a reader never sees half a document; not fsynced: it is a live
  // view, not data (a crash may lose the last figures, never the job's output).
  std::string error;
  try {
    io::ReplaceFile(o_.fs ? *o_.fs : io::Posix(), o_.path, doc.dump(1) + "\n");
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty() && !warned_)
    std::fprintf(stderr, "warning: pipeline figures not written (%s); the job goes on\n", error.c_str());
  if (!error.empty()) warned_ = true;
}

Monitor::Watch::Watch(Monitor& monitor, const Graph& g) : monitor_(monitor), g_(g) { monitor_.Start(g_); }
Monitor::Watch::~Watch() { monitor_.Stop(g_); }

std::string DescribeJson(const std::string& job, const std::vector<GraphDescription>& graphs) {
  json doc = {{"format", kFormat}, {"job", job}};
  json gs = json::array();
  for (const GraphDescription& d : graphs) {
    json nodes = json::array(), edges = json::array();
    for (const NodeInfo& n : d.nodes) nodes.push_back(NodeShape(n));
    for (const EdgeInfo& e : d.edges) edges.push_back(EdgeJson(e));
    gs.push_back({{"name", d.name}, {"nodes", std::move(nodes)}, {"edges", std::move(edges)}});
  }
  doc["graphs"] = std::move(gs);
  return doc.dump(1) + "\n";
}

}  // namespace bitbyte::pipeline
