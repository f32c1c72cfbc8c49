#include "apps/step_probe.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/numbers.h"
#include "runs/run_dir.h"
#include "train/config.h"

namespace bitbyte::cli {

double MedianStepWall(const std::string& run, int64_t after_step) {
  std::vector<double> walls;
  for (const runs::StepRecord& s : runs::ReadRunDir(run).steps)
    if (s.step > after_step && std::isfinite(s.step_wall_s) && s.step_wall_s > 0) walls.push_back(s.step_wall_s);
  return Median(walls);
}

train::pb::TrainConfig ProbeConfig(train::pb::TrainConfig config) {
  config.set_steps(kProbeSteps);
  config.mutable_eval()->set_every(0);
  config.mutable_eval()->set_max_bytes(config.data().seq_len() + 1);
  config.mutable_checkpoint()->set_every(kProbeSteps);
  config.mutable_optim()->set_warmup_steps(std::min<int64_t>(config.optim().warmup_steps(), kProbeSteps));
  return config;
}

int64_t StepsInMinutes(double minutes, double step_s) {
  return static_cast<int64_t>(std::clamp(std::floor(minutes * 60 / step_s), 1.0, double(train::limits::kMaxSteps)));
}

}  // namespace bitbyte::cli
