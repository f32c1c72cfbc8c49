#pragma once
// Resolving train.precision: "fp32" and "bf16" are taken as given; "auto" measures one forward
// and backward pass of the configured model at the configured micro-batch in each precision on
// this machine and takes bf16 when it is at least kBf16Margin faster. The measurement is cached
// in <UserCacheDir>/precision-probe.json under a key naming everything it depends on (CPU model
// and features, LibTorch version, OpenBLAS core, threads, device, model config and batch shape),
// so it is redone when any of them changes.
#include <torch/torch.h>

#include <string>

#include "train/train_config.pb.h"

namespace bitbyte::train {

inline constexpr double kBf16Margin = 1.10;
inline constexpr char kPrecisionProbeFile[] = "precision-probe.json";

struct PrecisionChoice {
  std::string precision;          // "fp32" or "bf16"
  std::string chosen_by;          // "config", "probe" or "cached probe"
  double fp32_s = 0, bf16_s = 0;  // the probe's best forward + backward times (auto only)
  std::string cache_file;         // where the probe is cached ("" when there is no cache directory)
  std::string Describe() const;   // "bf16 (auto: bf16 1.93x fp32 in a forward + backward pass, ...)"
};

// Threads must already be set (UseTorchThreads). The probe builds its own copy of the model and
// draws from its own generator: the global generator and the run are untouched.
PrecisionChoice ResolvePrecision(const pb::TrainConfig& config, torch::Device device, int threads);

// train.precision and train.qat_precision together. Without quantization-aware training
// (model.qat.scheme none) `qat` is `fp`. With it, `qat` resolves qat_precision on the model as
// configured (the quantized forward) and `fp` resolves precision on the model with model.qat at
// its defaults: the float model, the same probe and cache entry as a run without QAT, so the
// steps before qat.start_step run as that run's do. When every step is quantization-aware
// (start_step 0) an "auto" precision follows qat_precision (no step uses it) without a probe.
struct PhasePrecisions {
  PrecisionChoice fp, qat;
  bool has_qat = false;
  std::string Describe() const;  // fp's, then "; quantization-aware steps: " and qat's
};
PhasePrecisions ResolvePhasePrecisions(const pb::TrainConfig& config, torch::Device device, int threads);

// The probe alone (no cache): best-of forward + backward seconds in fp32 and bf16.
std::pair<double, double> MeasurePrecisions(const pb::TrainConfig& config, torch::Device device);

}  // namespace bitbyte::train
