#include "runs/metrics_log.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/file_io.h"

namespace bitbyte::runs {

using json = nlohmann::json;

MetricsLog::MetricsLog(const std::string& path, int64_t keep_through) : log_(Prepare(path, keep_through, evals_)) {}

bool MetricsLog::HasEval(int64_t step) const {
  return std::any_of(evals_.begin(), evals_.end(), [&](const auto& e) { return e.first == step; });
}

void MetricsLog::Write(const json& record) { log_.Append(record.dump() + "\n"); }

std::string MetricsLog::Prepare(const std::string& path, int64_t keep_through,
                                std::vector<std::pair<int64_t, double>>& evals) {
  if (keep_through >= 0 && io::Posix().Exists(path)) {
    std::istringstream in(io::ReadFile(io::Posix(), path));
    std::string line, kept;
    while (std::getline(in, line)) {
      const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() >= 0 &&
          j["step"].get<int64_t>() <= keep_through) {
        kept += line + "\n";
        if (j.contains("val_bpb") && j["val_bpb"].is_number())
          evals.emplace_back(j["step"].get<int64_t>(), j["val_bpb"].get<double>());
      }
    }
    io::WriteFileAtomic(io::Posix(), path, kept);
  }
  return path;
}

}  // namespace bitbyte::runs
