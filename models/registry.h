#pragma once
// The model registry: tracks plug in by name (`model.name` in the config, `--model` on the
// command line), each an entry of the tracks table (models/tracks.h). Training, evaluation,
// checkpointing and generation only ever see a ByteModel made here.
// This header is Torch-free: config checking and the CLI use it without Torch headers.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/model_config.pb.h"
#include "models/tracks.h"

namespace bitbyte::models {

class ByteModel;  // models/model.h

// The bounds of the model fields (docs/training.md, "Limits"): every size field is checked
// against them, so parameter counts and tensor sizes never overflow; whether the model fits in
// memory is checked with the optimizer state (train/config.h ValidateConfig).
inline constexpr int32_t kMaxWidth = 1 << 16;    // d_model, dt_rank
inline constexpr int32_t kMaxFfWidth = 1 << 18;  // bitbyte_lm.d_ff
inline constexpr int32_t kMaxLayers = 1024;      // n_layer
inline constexpr int32_t kMaxContext = 1 << 20;  // context, in [2, kMaxContext]
inline constexpr int32_t kMaxDState = 1024;      // mamba_mlm.d_state
inline constexpr int32_t kMaxDConv = 256;        // mamba_mlm.d_conv
inline constexpr int32_t kMaxExpand = 64;        // mamba_mlm.expand
inline constexpr double kMaxInitStd = 1.0;       // init_std, in (0, 1]
inline constexpr double kMaxDt = 10.0;           // mamba_mlm.dt_min, dt_max, in (0, 10]

// Checks model.name, that the config's block (if any) is that track's, and the track's fields:
// every number within its bounds (doubles finite). Throws UsageError naming the field
// ("config field model.bitbyte_lm.n_head: 3 does not divide d_model 256").
void ValidateModelConfig(const pb::ModelConfig& config);

// Makes model.name's track block the one set (empty: its defaults), unless another track's block
// is set (ValidateModelConfig reports that). For filling in defaults. Unknown names: no change.
void SelectTrackBlock(pb::ModelConfig& config);

// Sets model.name, dropping the block of another track (--model on top of a config file).
void SetTrack(pb::ModelConfig& config, const std::string& name);

// The context (longest window) of the configured model, for checks outside models/.
int64_t ModelContext(const pb::ModelConfig& config);

// The configured track's depth (n_layer).
int64_t Depth(const pb::ModelConfig& config);

// Sets the context of the configured track to `bytes` (in its own unit: bits for a bit track).
void SetModelContext(pb::ModelConfig& config, int64_t bytes);

// Parameters of the configured model (validated first), counted from the config without
// building it; equals CreateModel(config)->ParameterCount().
int64_t ParameterCount(const pb::ModelConfig& config);

// The config with the track's depth (n_layer) set so that ParameterCount() is as close to
// `target` as depth allows (the shallower on a tie, 1 to kMaxLayers layers); widths unchanged.
// For comparing tracks at matched size (`bitbyte bench tracks`).
pb::ModelConfig MatchParameterCount(pb::ModelConfig config, int64_t target);

// Builds the configured model (validated first), initialised from Torch's default CPU generator:
// seed it before calling for a reproducible initialisation. Parameters are float32 on the CPU.
std::shared_ptr<ByteModel> CreateModel(const pb::ModelConfig& config);

}  // namespace bitbyte::models
