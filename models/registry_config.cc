// The Torch-free half of the registry: track names, config checks and parameter counts.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "models/registry.h"

namespace bitbyte::models {
namespace {

[[noreturn]] void Bad(const std::string& field, const std::string& what) {
  throw std::invalid_argument("config field model." + field + ": " + what);
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void RequireRange(const std::string& field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    Bad(field, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
}

// A finite double in (lo, hi] (lo_open) or [lo, hi) (hi_open) or [lo, hi].
void RequireReal(const std::string& field, double v, double lo, double hi, bool lo_open, bool hi_open) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok)
    Bad(field, std::string("must be a finite number in ") + (lo_open ? "(" : "[") + Num(lo) + ", " + Num(hi) +
                   (hi_open ? ")" : "]") + ", got " + Num(v));
}

void ValidateBitByteLM(const pb::BitByteLMConfig& c) {
  RequireRange("bitbyte_lm.d_model", c.d_model(), 1, kMaxWidth);
  RequireRange("bitbyte_lm.n_layer", c.n_layer(), 1, kMaxLayers);
  RequireRange("bitbyte_lm.n_head", c.n_head(), 1, c.d_model());
  RequireRange("bitbyte_lm.context", c.context(), 2, kMaxContext);  // at least data.seq_len >= 2
  if (c.d_ff() < 0 || c.d_ff() > kMaxFfWidth)
    Bad("bitbyte_lm.d_ff", "must be 0 (4 x d_model) or in [1, " + std::to_string(kMaxFfWidth) + "], got " +
                               std::to_string(c.d_ff()));
  if (c.d_model() % c.n_head() != 0)
    Bad("bitbyte_lm.n_head", std::to_string(c.n_head()) + " does not divide d_model " + std::to_string(c.d_model()));
  RequireReal("bitbyte_lm.dropout", c.dropout(), 0.0, 1.0, false, true);
  RequireReal("bitbyte_lm.init_std", c.init_std(), 0.0, kMaxInitStd, true, false);
}

void ValidateMambaMLM(const pb::MambaMLMConfig& c) {
  RequireRange("mamba_mlm.d_model", c.d_model(), 1, kMaxWidth);
  RequireRange("mamba_mlm.n_layer", c.n_layer(), 1, kMaxLayers);
  RequireRange("mamba_mlm.d_state", c.d_state(), 1, kMaxDState);
  RequireRange("mamba_mlm.d_conv", c.d_conv(), 1, kMaxDConv);
  RequireRange("mamba_mlm.context", c.context(), 2, kMaxContext);  // at least data.seq_len >= 2
  RequireRange("mamba_mlm.expand", c.expand(), 1, kMaxExpand);
  if (c.dt_rank() < 0 || c.dt_rank() > kMaxWidth)
    Bad("mamba_mlm.dt_rank", "must be 0 (ceil(d_model / 16)) or in [1, " + std::to_string(kMaxWidth) + "], got " +
                                 std::to_string(c.dt_rank()));
  RequireReal("mamba_mlm.dt_min", c.dt_min(), 0.0, kMaxDt, true, false);
  RequireReal("mamba_mlm.dt_max", c.dt_max(), c.dt_min(), kMaxDt, false, false);
  RequireReal("mamba_mlm.init_std", c.init_std(), 0.0, kMaxInitStd, true, false);
}

int64_t BitByteLMParameters(const pb::BitByteLMConfig& c) {
  const int64_t d = c.d_model(), f = c.d_ff() > 0 ? c.d_ff() : 4 * d;
  const int64_t block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d);
  return 256 * d + int64_t{c.context()} * d + c.n_layer() * block + 2 * d + 256 * d;
}

int64_t MambaMLMParameters(const pb::MambaMLMConfig& c) {
  const int64_t d = c.d_model(), e = int64_t{c.expand()} * d, n = c.d_state(), k = c.d_conv();
  const int64_t r = c.dt_rank() > 0 ? c.dt_rank() : (d + 15) / 16;
  // norm, in_proj, depthwise conv (+bias), x_proj, dt_proj (+bias), A_log, D, out_proj
  const int64_t block = d + d * 2 * e + (e * k + e) + e * (r + 2 * n) + (r * e + e) + e * n + e + e * d;
  return 256 * d + c.n_layer() * block + d + 256 * d;
}

}  // namespace

const std::vector<TrackInfo>& Tracks() {
  static const std::vector<TrackInfo> tracks = {
      {"bitbyte_lm", "byte-level decoder-only transformer"},
      {"mamba_mlm", "byte-level selective state-space model (Mamba)"},
  };
  return tracks;
}

void ValidateModelConfig(const pb::ModelConfig& config) {
  if (config.name() == "bitbyte_lm") return ValidateBitByteLM(config.bitbyte_lm());
  if (config.name() == "mamba_mlm") return ValidateMambaMLM(config.mamba_mlm());
  std::string known;
  for (const TrackInfo& t : Tracks()) known += (known.empty() ? "" : ", ") + t.name;
  throw std::invalid_argument("config field model.name: unknown model '" + config.name() + "' (known: " + known + ")");
}

int64_t ParameterCount(const pb::ModelConfig& config) {
  ValidateModelConfig(config);
  if (config.name() == "bitbyte_lm") return BitByteLMParameters(config.bitbyte_lm());
  if (config.name() == "mamba_mlm") return MambaMLMParameters(config.mamba_mlm());
  throw std::logic_error("model '" + config.name() + "' has no parameter count");
}

pb::ModelConfig MatchParameterCount(pb::ModelConfig config, int64_t target) {
  ValidateModelConfig(config);
  auto set_depth = [&](int32_t n) {
    if (config.name() == "bitbyte_lm") config.mutable_bitbyte_lm()->set_n_layer(n);
    else if (config.name() == "mamba_mlm") config.mutable_mamba_mlm()->set_n_layer(n);
    else throw std::logic_error("model '" + config.name() + "' has no depth rule");
  };
  // The count is affine in depth: fixed + n * per_layer.
  set_depth(1);
  const int64_t one = ParameterCount(config);
  set_depth(2);
  const int64_t per_layer = ParameterCount(config) - one, fixed = one - per_layer;
  const double ideal = static_cast<double>(target - fixed) / static_cast<double>(per_layer);
  // Within the depth bound [1, kMaxLayers] (a target beyond it gets the deepest model).
  int64_t n = static_cast<int64_t>(std::clamp(std::floor(ideal), 1.0, static_cast<double>(kMaxLayers)));
  if (n < kMaxLayers && std::llabs(fixed + (n + 1) * per_layer - target) < std::llabs(fixed + n * per_layer - target)) ++n;
  set_depth(static_cast<int32_t>(n));
  return config;
}

int64_t ModelContext(const pb::ModelConfig& config) {
  ValidateModelConfig(config);
  if (config.name() == "bitbyte_lm") return config.bitbyte_lm().context();
  if (config.name() == "mamba_mlm") return config.mamba_mlm().context();
  throw std::logic_error("model '" + config.name() + "' has no context rule");
}

}  // namespace bitbyte::models
