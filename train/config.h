#pragma once
// Loading, overriding, checking and printing the training config (train/train_config.proto).
// Torch-free. Every error is a UsageError that names the file, line and column or
// the field.
#include <cstdint>
#include <string>
#include <vector>

#include "base/limits.h"
#include "train/train_config.pb.h"

namespace bitbyte::train {

// The bounds of the training config (docs/training.md, "Limits"); the model's are in
// models/registry.h. ValidateConfig checks every field against them before any work.
namespace limits {
inline constexpr int64_t kMaxSteps = 999'999'999;           // steps, every interval: checkpoint names have 9 digits
inline constexpr int32_t kMaxSeqLen = 1 << 20;              // data.seq_len
inline constexpr int32_t kMaxBatch = 1 << 16;               // data.batch_size, eval.batch_size
inline constexpr int32_t kMaxGradAccum = 1 << 16;           // data.grad_accum
inline constexpr int64_t kMaxRows = 1 << 20;                // data.batch_size x data.grad_accum: windows a step
inline constexpr int64_t kMaxStepBytes = int64_t{1} << 30;  // rows x (data.seq_len + 1): a step's batch
inline constexpr int64_t kMaxMicroBatchBytes = int64_t{1} << 24;      // data.batch_size x data.seq_len
inline constexpr int64_t kMaxEvalMicroBatchBytes = int64_t{1} << 24;  // eval.batch_size x data.seq_len
inline constexpr int32_t kMaxPrefetch = 64;                           // data.prefetch
inline constexpr int64_t kMaxEvalBytes = int64_t{1} << 40;            // eval.max_bytes
inline constexpr int32_t kMaxKeep = 1000;                             // checkpoint.keep
inline constexpr int64_t kMaxProbeBytes = int64_t{1} << 16;           // telemetry.probe_bytes
inline constexpr double kMaxComplexityBound = 1000.0;                 // telemetry.c_min, c_max
inline constexpr double kMaxLr = 10.0;                                // optim.lr (and min_lr)
inline constexpr double kMaxEps = 1.0;                                // optim.eps
inline constexpr double kMaxWeightDecay = 100.0;                      // optim.weight_decay
inline constexpr double kMaxGradClip = 1e6;                           // optim.grad_clip
inline constexpr int kBytesPerParameter = 16;   // float32 weights, gradients, AdamW exp_avg and exp_avg_sq
inline constexpr int kBytesPerParameter8 = 10;  // the same with optim.state_bits 8 (a byte a moment)
// Options of train, eval and generate (apps/job_options.cc, apps/commands_train.cc).
using bitbyte::kMaxThreads;                                     // --threads (0: all cores)
inline constexpr int64_t kMaxGenerateBytes = int64_t{1} << 30;  // generate -n
inline constexpr double kMinTemperature = 1e-3;                 // generate --temperature: 0 (greedy) or
inline constexpr double kMaxTemperature = 1e3;                  //   in [kMinTemperature, kMaxTemperature]
inline constexpr int kMaxTopK = 256;                            // generate --top-k (0: all)
}  // namespace limits

// Parses protobuf text format. `origin` names the source in errors ("cfg.txtpb:3:5: ...").
pb::TrainConfig ParseConfigText(const std::string& text, const std::string& origin);

// Reads and parses a config file (missing, unreadable, a directory: a UsageError
// naming it).
pb::TrainConfig LoadConfigFile(const std::string& path);

// Applies one "a.b.c=value" override (scalar fields only; enums by name; bools true/false).
// The value is exactly one value of the field's type (a decimal integer in the field's range, a
// number, true/false, an enum name, or a string taken as is), never more text format: an error
// naming the field otherwise.
void ApplyOverride(pb::TrainConfig& config, const std::string& assignment);

// Sets every unset field to its default, recursively, so printing shows everything and two
// configs compare equal exactly when they mean the same.
void FillDefaults(pb::TrainConfig& config);

// Checks ranges and cross-field rules (and the model's own fields), every double finite, and that
// weights, gradients and AdamW state (limits::kBytesPerParameter bytes a parameter) fit in
// `memory_bytes` (default: this machine's physical memory). Throws UsageError naming
// the field ("config field data.batch_size: ...").
void ValidateConfig(const pb::TrainConfig& config);
void ValidateConfig(const pb::TrainConfig& config, uint64_t memory_bytes);

// This machine's physical memory in bytes (0 when unknown: then nothing is refused for it).
uint64_t PhysicalMemoryBytes();

// The steps a config text asks for, defaults filled in (what runs::ReadRunDir shows as a run's
// total). Throws UsageError when the text does not parse.
int64_t ConfigTotalSteps(const std::string& text);

// Text format with every field shown.
std::string ConfigToText(const pb::TrainConfig& config);

// quant_eval.schemes as a list ("int8", "int4"); empty when it is not a comma-separated list of
// those, each once.
std::vector<std::string> QuantEvalSchemes(const pb::TrainConfig& config);

// A growth schedule ("STEP:VALUE,..."; growth.* in the config) as (step, value) pairs, checked:
// the first step 0, steps increasing, values in [lo, hi] (increasing when `increasing`). Empty text:
// no stages. UsageError naming `field` otherwise.
std::vector<std::pair<int64_t, int64_t>> ParseStages(const std::string& text, const std::string& field, int64_t lo,
                                                     int64_t hi, bool increasing);
// The value a schedule gives at `step` (steps done), or `otherwise` when it has no stages.
int64_t StageValue(const std::vector<std::pair<int64_t, int64_t>>& stages, int64_t step, int64_t otherwise);
// The model depth and the training window at `step` under config.growth (n_layer and data.seq_len
// without a schedule).
int64_t DepthAt(const pb::TrainConfig& config, int64_t step);
int64_t SeqLenAt(const pb::TrainConfig& config, int64_t step);

// For resume: the first field whose value differs, other than the ones a resumed run may change
// (steps, log_every, eval.every, checkpoint.every, checkpoint.keep, precision, qat_precision,
// quant_eval.*). Empty when compatible.
std::string IncompatibleField(const pb::TrainConfig& saved, const pb::TrainConfig& requested);

// The first field whose value differs once both have their defaults filled in (a field left out
// equals its default), as "path (saved A, requested B)" with `a` as saved; empty when the same.
// Fields (dotted paths; a message's covers its fields) in `skip` may differ.
std::string ConfigDifference(const pb::TrainConfig& a, const pb::TrainConfig& b,
                             const std::vector<std::string>& skip = {});

}  // namespace bitbyte::train
