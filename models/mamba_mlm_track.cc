// MambaMLM's entry in the tracks table: its config rules and parameter count (Torch-free; the
// module is models/mamba_mlm.cc).
#include "models/registry.h"
#include "models/track_rules.h"
#include "models/tracks.h"

namespace bitbyte::models {
namespace {

using namespace rules;

void Validate(const pb::ModelConfig& config) {
  const pb::MambaMLMConfig& c = config.mamba_mlm();
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

int64_t Parameters(const pb::ModelConfig& config) {
  const pb::MambaMLMConfig& c = config.mamba_mlm();
  const int64_t d = c.d_model(), e = int64_t{c.expand()} * d, n = c.d_state(), k = c.d_conv();
  const int64_t r = c.dt_rank() > 0 ? c.dt_rank() : (d + 15) / 16;
  // norm, in_proj, depthwise conv (+bias), x_proj, dt_proj (+bias), A_log, D, out_proj
  const int64_t block = d + d * 2 * e + (e * k + e) + e * (r + 2 * n) + (r * e + e) + e * n + e + e * d;
  return 256 * d + c.n_layer() * block + d + 256 * d;
}

double TrainFlopsPerByte(const pb::ModelConfig& config, int64_t /*seq_len*/) {
  const pb::MambaMLMConfig& c = config.mamba_mlm();
  const double d = c.d_model(), e = static_cast<double>(c.expand()) * d, n = c.d_state(), k = c.d_conv();
  const double r = c.dt_rank() > 0 ? c.dt_rank() : (c.d_model() + 15) / 16;
  // Per byte, forward: the matmuls (in_proj, x_proj, dt_proj, out_proj; the head) at 2 FLOPs a
  // weight, the depthwise convolution, and the scan's 7 per channel and state (exp(delta A),
  // delta B u, the state update's multiply-add, C h's multiply-add).
  const double matmuls = 2 * (c.n_layer() * (d * 2 * e + e * (r + 2 * n) + r * e + e * d) + d * 256);
  const double rest = c.n_layer() * (2 * e * k + 7 * e * n);
  return 3 * (matmuls + rest);
}

}  // namespace

Track MambaMLMTrack() {
  return {"mamba_mlm",
          "byte-level selective state-space model (Mamba)",
          pb::ModelConfig::kMambaMlm,
          Validate,
          Parameters,
          [](const pb::ModelConfig& c) -> int64_t { return c.mamba_mlm().context(); },
          [](pb::ModelConfig& c, int64_t bytes) { c.mutable_mamba_mlm()->set_context(static_cast<int32_t>(bytes)); },
          TrainFlopsPerByte,
          [](const pb::ModelConfig& c) { return c.mamba_mlm().n_layer(); },
          [](pb::ModelConfig& c, int32_t n) { c.mutable_mamba_mlm()->set_n_layer(n); }};
}

}  // namespace bitbyte::models
