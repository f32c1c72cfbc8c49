#pragma once
// The writer of metrics.jsonl (its reader is runs/run_dir.h ParseMetrics): one JSON object per
// line, each written with one append (base/append_log.h), so a kill leaves at most one torn last
// line, which readers skip and a resumed run drops.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "base/append_log.h"
#include "base/file_io.h"

namespace bitbyte::runs {

class MetricsLog {
 public:
  // Keeps the records of steps <= keep_through (a resumed run rewrites what follows; a negative
  // keep_through keeps the file as it is).
  MetricsLog(const std::string& path, int64_t keep_through, io::FileSystem& fs = io::Default());
  // Evaluations among the kept records, (step, bpb).
  const std::vector<std::pair<int64_t, double>>& evals() const { return evals_; }
  bool HasEval(int64_t step) const;
  void Write(const nlohmann::json& record);

 private:
  static std::string Prepare(io::FileSystem& fs, const std::string& path, int64_t keep_through,
                             std::vector<std::pair<int64_t, double>>& evals);
  std::vector<std::pair<int64_t, double>> evals_;  // before log_: Prepare fills it
  io::AppendLog log_;
};

}  // namespace bitbyte::runs
