// The Torch-free half of the registry: track names and config checks.
#include <stdexcept>
#include <string>

#include "models/registry.h"

namespace bitbyte::models {
namespace {

[[noreturn]] void Bad(const std::string& field, const std::string& what) {
  throw std::invalid_argument("config field model." + field + ": " + what);
}

void RequirePositive(const std::string& field, int64_t v) {
  if (v <= 0) Bad(field, "must be positive, got " + std::to_string(v));
}

void ValidateBitByteLM(const pb::BitByteLMConfig& c) {
  RequirePositive("bitbyte_lm.d_model", c.d_model());
  RequirePositive("bitbyte_lm.n_layer", c.n_layer());
  RequirePositive("bitbyte_lm.n_head", c.n_head());
  RequirePositive("bitbyte_lm.context", c.context());
  if (c.d_ff() < 0) Bad("bitbyte_lm.d_ff", "must be 0 (4 x d_model) or positive");
  if (c.d_model() % c.n_head() != 0)
    Bad("bitbyte_lm.n_head", std::to_string(c.n_head()) + " does not divide d_model " + std::to_string(c.d_model()));
  if (!(c.dropout() >= 0.0 && c.dropout() < 1.0)) Bad("bitbyte_lm.dropout", "must be in [0, 1)");
  if (!(c.init_std() > 0.0)) Bad("bitbyte_lm.init_std", "must be positive");
}

void ValidateMambaMLM(const pb::MambaMLMConfig& c) {
  RequirePositive("mamba_mlm.d_model", c.d_model());
  RequirePositive("mamba_mlm.n_layer", c.n_layer());
  RequirePositive("mamba_mlm.d_state", c.d_state());
  RequirePositive("mamba_mlm.d_conv", c.d_conv());
  RequirePositive("mamba_mlm.context", c.context());
  if (c.expand() < 1) Bad("mamba_mlm.expand", "must be at least 1, got " + std::to_string(c.expand()));
  if (c.dt_rank() < 0) Bad("mamba_mlm.dt_rank", "must be 0 (ceil(d_model / 16)) or positive");
  if (!(c.dt_min() > 0.0)) Bad("mamba_mlm.dt_min", "must be positive");
  if (!(c.dt_max() >= c.dt_min())) Bad("mamba_mlm.dt_max", "must be at least dt_min");
  if (!(c.init_std() > 0.0)) Bad("mamba_mlm.init_std", "must be positive");
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

int64_t ModelContext(const pb::ModelConfig& config) {
  ValidateModelConfig(config);
  if (config.name() == "bitbyte_lm") return config.bitbyte_lm().context();
  if (config.name() == "mamba_mlm") return config.mamba_mlm().context();
  throw std::logic_error("model '" + config.name() + "' has no context rule");
}

}  // namespace bitbyte::models
