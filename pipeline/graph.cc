#include "pipeline/graph.h"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <thread>

namespace bitbyte::pipeline {

ScopedParallelism::ScopedParallelism(int threads)
    : control_(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads < 1 ? 1 : threads)) {}

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

std::string Graph::NameOf(const void* node) const {
  for (const auto& [ptr, name] : names_)
    if (ptr == node) return name;
  return "?";
}

void Graph::Fail(const std::string& node, std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) {
      error_ = e;
      failed_node_ = node;
    }
  }
  g_.cancel();
}

void Graph::Cancel(const std::string& reason) {
  Fail("cancel", std::make_exception_ptr(std::runtime_error(reason)));
}

void Graph::Run() {
  for (auto& activate : activators_) activate();
  try {
    g_.wait_for_all();
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
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %-10s %5s %10s %12s %9s %7s %10s\n", "node", "kind", "conc", "items",
                "bytes", "busy s", "busy %", "MB/s busy");
  out += line;
  for (const NodeStats& st : stats_) {
    const double busy = static_cast<double>(st.busy_ns.load()) * 1e-9;
    const double mb = static_cast<double>(st.bytes.load()) / 1e6;
    const int conc = st.concurrency;
    const double cap = wall_seconds * (conc > 0 ? conc : std::max(threads, 1));
    std::snprintf(line, sizeof line, "%-14s %-10s %5s %10llu %12llu %9.3f %7.1f %10.1f\n", st.name.c_str(),
                  st.kind.c_str(), conc == 0 ? "inf" : std::to_string(conc).c_str(),
                  static_cast<unsigned long long>(st.items.load()), static_cast<unsigned long long>(st.bytes.load()),
                  busy, cap > 0 ? 100.0 * busy / cap : 0.0, busy > 0 ? mb / busy : 0.0);
    out += line;
  }
  return out;
}

}  // namespace bitbyte::pipeline
