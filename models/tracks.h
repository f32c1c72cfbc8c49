#pragma once
// The model tracks as a table: one entry per track, everything the shared stack knows of a track
// without building it. Torch-free (the CLI, config checks and the train graph use it without
// LibTorch); the module itself is built by CreateModel (models/registry.cc).
//
// Adding a track: its config message in ModelConfig's `track` oneof (models/model_config.proto),
// named like the track; its module (models/<track>.{h,cc}); its rules in models/<track>_track.cc
// returning a Track; one line in Tracks() (models/tracks.cc) and one case in CreateModel.
#include <cstdint>
#include <string>
#include <vector>

#include "models/model_config.pb.h"

namespace bitbyte::models {

struct Track {
  std::string name;                  // model.name, and the name of its block in ModelConfig: "bitbyte_lm"
  std::string summary;               // one line for --help
  pb::ModelConfig::TrackCase block;  // its block in ModelConfig's `track` oneof
  // Checks the block's fields (absent: defaults) against their bounds; throws UsageError naming
  // the field ("config field model.bitbyte_lm.n_head: 3 does not divide d_model 256").
  void (*validate)(const pb::ModelConfig&);
  // Parameters of the model the (validated) config describes, counted without building it.
  int64_t (*parameters)(const pb::ModelConfig&);
  // Its longest window in bytes (data.seq_len must not exceed it), and setting it.
  int64_t (*context)(const pb::ModelConfig&);
  void (*set_context)(pb::ModelConfig&, int64_t bytes);
  // Floating-point operations of one training step per byte of a seq_len window (forward and
  // backward, model FLOPs: the backward counted as twice the forward; causal attention as the
  // (T+1)/2 keys each query sees on average, not the T x T a composed implementation computes).
  // For MFU (docs/benchmarks.md).
  double (*train_flops_per_byte)(const pb::ModelConfig&, int64_t seq_len);
  // Its depth (n_layer), for matching tracks by size.
  int32_t (*depth)(const pb::ModelConfig&);
  void (*set_depth)(pb::ModelConfig&, int32_t);
};

// Every track, in the order --help lists them.
const std::vector<Track>& Tracks();
// The track named `name`, or null.
const Track* FindTrack(const std::string& name);

// Each track's entry (models/<track>_track.cc).
Track BitByteLMTrack();
Track MambaMLMTrack();
Track BitTransformerLMTrack();

}  // namespace bitbyte::models
