#pragma once
// Loading, overriding, checking and printing the training config (nodes/train_config.proto).
// Torch-free. Every error is a std::invalid_argument that names the file, line and column or
// the field.
#include <string>
#include <vector>

#include "nodes/train_config.pb.h"

namespace bitbyte::train {

// Parses protobuf text format. `origin` names the source in errors ("cfg.txtpb:3:5: ...").
pb::TrainConfig ParseConfigText(const std::string& text, const std::string& origin);

// Reads and parses a config file (missing file: an error naming it).
pb::TrainConfig LoadConfigFile(const std::string& path);

// Applies one "a.b.c=value" override (scalar fields only; enums by name; bools true/false).
void ApplyOverride(pb::TrainConfig& config, const std::string& assignment);

// Sets every unset field to its default, recursively, so printing shows everything and two
// configs compare equal exactly when they mean the same.
void FillDefaults(pb::TrainConfig& config);

// Checks ranges and cross-field rules (and the model's own fields). Throws naming the field.
void ValidateConfig(const pb::TrainConfig& config);

// Text format with every field shown.
std::string ConfigToText(const pb::TrainConfig& config);

// For resume: the first field whose value differs, other than the ones a resumed run may change
// (steps, log_every, eval.every, checkpoint.every, checkpoint.keep). Empty when compatible.
std::string IncompatibleField(const pb::TrainConfig& saved, const pb::TrainConfig& requested);

}  // namespace bitbyte::train
