// BitTransformerLM's entry in the tracks table: its config rules and parameter count (Torch-free;
// the module is models/bit_transformer_lm.cc).
#include "models/registry.h"
#include "models/track_rules.h"
#include "models/tracks.h"

namespace bitbyte::models {
namespace {

using namespace rules;

void Validate(const pb::ModelConfig& config) {
  const pb::BitTransformerLMConfig& c = config.bit_transformer_lm();
  RequireRange("bit_transformer_lm.d_model", c.d_model(), 1, kMaxWidth);
  RequireRange("bit_transformer_lm.n_layer", c.n_layer(), 1, kMaxLayers);
  RequireRange("bit_transformer_lm.n_head", c.n_head(), 1, c.d_model());
  // At least two bytes (data.seq_len >= 2); 8 fewer than the bound, for the context byte's bits.
  RequireRange("bit_transformer_lm.context", c.context(), 16, kMaxContext - 8);
  if (c.context() % 8 != 0)
    Bad("bit_transformer_lm.context",
        "must be a multiple of 8 (bits of whole bytes), got " + std::to_string(c.context()));
  if (c.d_ff() < 0 || c.d_ff() > kMaxFfWidth)
    Bad("bit_transformer_lm.d_ff",
        "must be 0 (4 x d_model) or in [1, " + std::to_string(kMaxFfWidth) + "], got " + std::to_string(c.d_ff()));
  if (c.d_model() % c.n_head() != 0)
    Bad("bit_transformer_lm.n_head",
        std::to_string(c.n_head()) + " does not divide d_model " + std::to_string(c.d_model()));
  RequireReal("bit_transformer_lm.init_std", c.init_std(), 0.0, kMaxInitStd, true, false);
  if (c.mode() != "causal" && c.mode() != "diffusion")
    Bad("bit_transformer_lm.mode", "must be causal or diffusion, got '" + c.mode() + "'");
  RequireRange("bit_transformer_lm.diffusion_steps", c.diffusion_steps(), 1, 4096);
  RequireRange("bit_transformer_lm.diffusion_eval_samples", c.diffusion_eval_samples(), 1, 1024);
  RequireRange("bit_transformer_lm.attention_window", c.attention_window(), 0, kMaxContext);
  if (c.attention_window() > 0 && c.mode() == "diffusion")
    Bad("bit_transformer_lm.attention_window", "applies to causal mode only (diffusion attends both ways)");
}

int64_t Parameters(const pb::ModelConfig& config) {
  const pb::BitTransformerLMConfig& c = config.bit_transformer_lm();
  const int64_t d = c.d_model(), f = c.d_ff() > 0 ? c.d_ff() : 4 * d;
  const int64_t block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d);
  // tok_emb (0, 1, start), pos_emb, bit_emb; blocks; ln_f; head (d -> 1, with bias).
  return 3 * d + (int64_t{c.context()} + 8) * d + 8 * d + c.n_layer() * block + 2 * d + d + 1;
}

double TrainFlopsPerByte(const pb::ModelConfig& config, int64_t seq_len) {
  const pb::BitTransformerLMConfig& c = config.bit_transformer_lm();
  const double d = c.d_model(), f = c.d_ff() > 0 ? c.d_ff() : 4 * d, n = 8.0 * (static_cast<double>(seq_len) + 1);
  // Per bit position, forward: 2 FLOPs per weight of each matmul (qkv, proj, fc1, fc2; the head),
  // and per layer q.k and p.v over the (n+1)/2 earlier positions a query sees on average; 8
  // positions a byte. Model FLOPs: the reversible backward's recomputation is not counted.
  const double matmuls = 2 * (c.n_layer() * (d * 3 * d + d * d + 2 * d * f) + d);
  const double attention = c.n_layer() * 2 * (2 * d * (n + 1) / 2);
  return 8 * 3 * (matmuls + attention);
}

}  // namespace

Track BitTransformerLMTrack() {
  return {"bit_transformer_lm",
          "bit-level transformer: reads and predicts the 8 bits of each byte, reversible blocks",
          pb::ModelConfig::kBitTransformerLm,
          Validate,
          Parameters,
          [](const pb::ModelConfig& c) -> int64_t { return c.bit_transformer_lm().context() / 8; },
          [](pb::ModelConfig& c, int64_t bytes) {
            c.mutable_bit_transformer_lm()->set_context(static_cast<int32_t>(8 * bytes));
          },
          TrainFlopsPerByte,
          [](const pb::ModelConfig& c) { return c.bit_transformer_lm().n_layer(); },
          [](pb::ModelConfig& c, int32_t n) { c.mutable_bit_transformer_lm()->set_n_layer(n); }};
}

}  // namespace bitbyte::models
