#include "runs/metrics_log.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/file_io.h"
#include "runs/run_dir.h"

namespace bitbyte::runs {

using json = nlohmann::json;

MetricsLog::MetricsLog(const std::string& path, int64_t keep_through, io::FileSystem& fs)
    : log_(Prepare(fs, path, keep_through, evals_), fs) {}

bool MetricsLog::HasEval(int64_t step) const {
  return std::any_of(evals_.begin(), evals_.end(), [&](const auto& e) { return e.first == step; });
}

void MetricsLog::Write(const json& record) { log_.Append(record.dump() + "\n"); }

std::string MetricsLog::Prepare(io::FileSystem& fs, const std::string& path, int64_t keep_through,
                                std::vector<std::pair<int64_t, double>>& evals) {
  if (keep_through >= 0 && fs.Exists(path)) {
    // Read with metrics.jsonl's one reader (ParseMetrics): the records it keeps, of steps up to
    // keep_through, stay as they were written, line for line.
    const std::string text = io::ReadFile(fs, path);
    RunDirContents c;
    ParseMetrics(text, c);
    std::vector<bool> keep(c.metrics_lines + 1, false);
    for (const StepRecord& r : c.steps)
      if (r.step <= keep_through) keep[r.line] = true;
    for (const QuantEvalRecord& r : c.quant_evals)
      if (r.step <= keep_through) keep[r.line] = true;
    for (const TelemetryRecord& r : c.telemetry)
      if (r.step <= keep_through) keep[r.line] = true;
    for (const GrowthRecord& r : c.growth)
      if (r.step < keep_through) keep[r.line] = true;  // a resume from its step writes it again
    for (const EvalRecord& r : c.evals) {
      if (r.step > keep_through) continue;
      keep[r.line] = true;
      evals.emplace_back(r.step, r.val_bpb);
    }
    std::string kept;
    size_t pos = 0;
    for (size_t line = 1; pos < text.size(); ++line) {
      const size_t nl = text.find('\n', pos);
      const size_t end = nl == std::string::npos ? text.size() : nl;
      if (keep[line]) kept.append(text, pos, end - pos).push_back('\n');
      pos = end + 1;
    }
    io::WriteFileAtomic(fs, path, kept);
  }
  return path;
}

}  // namespace bitbyte::runs
