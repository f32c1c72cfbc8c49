// The Torch-free half of the registry: config checks, parameter counts and depth matching, for
// every track through its entry in the tracks table (models/tracks.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "models/registry.h"
#include "models/tracks.h"

namespace bitbyte::models {
namespace {

// The track of a validated config.
const Track& TrackOf(const pb::ModelConfig& config) {
  ValidateModelConfig(config);
  return *FindTrack(config.name());
}

}  // namespace

void ValidateModelConfig(const pb::ModelConfig& config) {
  const Track* t = FindTrack(config.name());
  if (!t) {
    std::string known;
    for (const Track& k : Tracks()) known += (known.empty() ? "" : ", ") + k.name;
    throw UsageError("config field model.name: unknown model '" + config.name() + "' (known: " + known + ")");
  }
  if (config.track_case() != pb::ModelConfig::TRACK_NOT_SET && config.track_case() != t->block) {
    const std::string other = config.GetDescriptor()->FindFieldByNumber(config.track_case())->name();
    throw UsageError("config field model." + other + ": the sizes of track '" + other + "', but model.name is '" +
                     config.name() + "' (give model." + config.name() + " { ... }, or set model.name to '" + other +
                     "')");
  }
  t->validate(config);
  const pb::QatConfig& q = config.qat();
  if (q.scheme() != "none" && q.scheme() != "ternary" && q.scheme() != "int4")
    throw UsageError("config field model.qat.scheme: must be none, ternary or int4, got '" + q.scheme() + "'");
  if (q.group() < 2 || q.group() > 4096 || q.group() % 2 != 0)
    throw UsageError("config field model.qat.group: must be even, in [2, 4096], got " + std::to_string(q.group()));
  if (q.ternary_scale() != "tensor" && q.ternary_scale() != "channel")
    throw UsageError("config field model.qat.ternary_scale: must be tensor or channel, got '" + q.ternary_scale() +
                     "'");
  if (q.start_step() < 0 || q.start_step() > 999'999'999)
    throw UsageError("config field model.qat.start_step: must be in [0, 999999999], got " +
                     std::to_string(q.start_step()));
}

void SelectTrackBlock(pb::ModelConfig& config) {
  const Track* t = FindTrack(config.name());
  if (!t || config.track_case() != pb::ModelConfig::TRACK_NOT_SET) return;
  config.GetReflection()->MutableMessage(&config, config.GetDescriptor()->FindFieldByNumber(t->block));
}

void SetTrack(pb::ModelConfig& config, const std::string& name) {
  config.set_name(name);
  const Track* t = FindTrack(name);
  if (t && config.track_case() != pb::ModelConfig::TRACK_NOT_SET && config.track_case() != t->block)
    config.clear_track();
}

int64_t ParameterCount(const pb::ModelConfig& config) { return TrackOf(config).parameters(config); }

int64_t ModelContext(const pb::ModelConfig& config) { return TrackOf(config).context(config); }

int64_t Depth(const pb::ModelConfig& config) { return TrackOf(config).depth(config); }

void SetModelContext(pb::ModelConfig& config, int64_t bytes) { TrackOf(config).set_context(config, bytes); }

pb::ModelConfig MatchParameterCount(pb::ModelConfig config, int64_t target) {
  const Track& t = TrackOf(config);
  // The count is affine in depth: fixed + n * per_layer.
  t.set_depth(config, 1);
  const int64_t one = ParameterCount(config);
  t.set_depth(config, 2);
  const int64_t per_layer = ParameterCount(config) - one, fixed = one - per_layer;
  const double ideal = static_cast<double>(target - fixed) / static_cast<double>(per_layer);
  // Within the depth bound [1, kMaxLayers] (a target beyond it gets the deepest model).
  int64_t n = static_cast<int64_t>(std::clamp(std::floor(ideal), 1.0, static_cast<double>(kMaxLayers)));
  if (n < kMaxLayers && std::llabs(fixed + (n + 1) * per_layer - target) < std::llabs(fixed + n * per_layer - target))
    ++n;
  t.set_depth(config, static_cast<int32_t>(n));
  return config;
}

}  // namespace bitbyte::models
