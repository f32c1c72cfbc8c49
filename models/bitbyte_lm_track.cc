// BitByteLM's entry in the tracks table: its config rules and parameter count (Torch-free; the
// module is models/bitbyte_lm.cc).
#include "models/registry.h"
#include "models/track_rules.h"
#include "models/tracks.h"

namespace bitbyte::models {
namespace {

using namespace rules;

void Validate(const pb::ModelConfig& config) {
  const pb::BitByteLMConfig& c = config.bitbyte_lm();
  RequireRange("bitbyte_lm.d_model", c.d_model(), 1, kMaxWidth);
  RequireRange("bitbyte_lm.n_layer", c.n_layer(), 1, kMaxLayers);
  RequireRange("bitbyte_lm.n_head", c.n_head(), 1, c.d_model());
  RequireRange("bitbyte_lm.context", c.context(), 2, kMaxContext);  // at least data.seq_len >= 2
  if (c.d_ff() < 0 || c.d_ff() > kMaxFfWidth)
    Bad("bitbyte_lm.d_ff",
        "must be 0 (4 x d_model) or in [1, " + std::to_string(kMaxFfWidth) + "], got " + std::to_string(c.d_ff()));
  if (c.d_model() % c.n_head() != 0)
    Bad("bitbyte_lm.n_head", std::to_string(c.n_head()) + " does not divide d_model " + std::to_string(c.d_model()));
  RequireReal("bitbyte_lm.dropout", c.dropout(), 0.0, 1.0, false, true);
  RequireReal("bitbyte_lm.init_std", c.init_std(), 0.0, kMaxInitStd, true, false);
}

int64_t Parameters(const pb::ModelConfig& config) {
  const pb::BitByteLMConfig& c = config.bitbyte_lm();
  const int64_t d = c.d_model(), f = c.d_ff() > 0 ? c.d_ff() : 4 * d;
  const int64_t block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d);
  return 256 * d + int64_t{c.context()} * d + c.n_layer() * block + 2 * d + 256 * d;
}

double TrainFlopsPerByte(const pb::ModelConfig& config, int64_t seq_len) {
  const pb::BitByteLMConfig& c = config.bitbyte_lm();
  const double d = c.d_model(), f = c.d_ff() > 0 ? c.d_ff() : 4 * d, t = static_cast<double>(seq_len);
  // Per byte, forward: 2 FLOPs per weight of each matmul (qkv, proj, fc1, fc2; the head), and per
  // layer q.k and p.v over the (T+1)/2 earlier positions a query sees on average, 2 x d each.
  const double matmuls = 2 * (c.n_layer() * (d * 3 * d + d * d + 2 * d * f) + d * 256);
  const double attention = c.n_layer() * 2 * (2 * d * (t + 1) / 2);
  return 3 * (matmuls + attention);
}

}  // namespace

Track BitByteLMTrack() {
  return {"bitbyte_lm",
          "byte-level decoder-only transformer",
          pb::ModelConfig::kBitbyteLm,
          Validate,
          Parameters,
          [](const pb::ModelConfig& c) -> int64_t { return c.bitbyte_lm().context(); },
          [](pb::ModelConfig& c, int64_t bytes) { c.mutable_bitbyte_lm()->set_context(static_cast<int32_t>(bytes)); },
          TrainFlopsPerByte,
          [](const pb::ModelConfig& c) { return c.bitbyte_lm().n_layer(); },
          [](pb::ModelConfig& c, int32_t n) { c.mutable_bitbyte_lm()->set_n_layer(n); }};
}

}  // namespace bitbyte::models
