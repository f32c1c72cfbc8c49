#pragma once
// The model registry: tracks plug in by name (`model.name` in the config, `--model` on the
// command line). Training, evaluation, checkpointing and generation only ever see a ByteModel
// made here, so a new track adds a config message, a module, and its name in Tracks(),
// ValidateModelConfig(), ModelContext() and CreateModel().
// This header is Torch-free: config checking and the CLI use it without Torch headers.
#include <memory>
#include <string>
#include <vector>

#include "models/model_config.pb.h"

namespace bitbyte::models {

class ByteModel;  // models/model.h

struct TrackInfo {
  std::string name;     // "bitbyte_lm"
  std::string summary;  // one line for --help
};

const std::vector<TrackInfo>& Tracks();

// Checks model.name and the chosen track's fields. Throws std::invalid_argument naming the field
// ("model.bitbyte_lm.n_head: 3 does not divide d_model 256").
void ValidateModelConfig(const pb::ModelConfig& config);

// The context (longest window) of the configured model, for checks outside models/.
int64_t ModelContext(const pb::ModelConfig& config);

// Parameters of the configured model (validated first), counted from the config without
// building it; equals CreateModel(config)->ParameterCount().
int64_t ParameterCount(const pb::ModelConfig& config);

// The config with the track's depth (n_layer) set so that ParameterCount() is as close to
// `target` as depth allows (the shallower on a tie, at least one layer); widths unchanged.
// For comparing tracks at matched size (`bitbyte bench tracks`).
pb::ModelConfig MatchParameterCount(pb::ModelConfig config, int64_t target);

// Builds the configured model (validated first), initialised from Torch's default CPU generator:
// seed it before calling for a reproducible initialisation. Parameters are float32 on the CPU.
std::shared_ptr<ByteModel> CreateModel(const pb::ModelConfig& config);

}  // namespace bitbyte::models
