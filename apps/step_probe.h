#pragma once
// Fitting a training's steps to minutes: a short probe run (a `bitbyte train` child) times a
// step; `train --minutes` and `bench tracks --budget-minutes` use it.
#include <cstdint>
#include <string>

#include "train/train_config.pb.h"

namespace bitbyte::cli {

inline constexpr int64_t kProbeSteps = 8, kProbeWarmup = 2;  // the first kProbeWarmup steps are not timed

// The median wall time of a finished run's steps after `after_step`; 0 when it has none.
double MedianStepWall(const std::string& run, int64_t after_step);

// `config` cut to a probe: kProbeSteps steps, no evaluation, one checkpoint at the end.
train::pb::TrainConfig ProbeConfig(train::pb::TrainConfig config);

// The steps that fit in `minutes` at `step_s` seconds a step: at least 1, at most the steps limit.
int64_t StepsInMinutes(double minutes, double step_s);

}  // namespace bitbyte::cli
