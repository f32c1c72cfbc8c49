#pragma once
// BitTransformerLM: a transformer that reads and predicts bits (model.bit_transformer_lm in
// models/model_config.proto has the architecture; docs/tracks.md the track).
//
// A window of bytes x_0 .. x_T becomes the bits s_0 .. s_{8T+7} (each byte most significant bit
// first) and the tokens [start, s_0, ..., s_{8T+6}]: position p reads token p and predicts bit s_p,
// so it has seen the bits before s_p and nothing after. The bytes the window predicts are x_1 ..
// x_T (positions 8 .. 8T+7); their -log p is the sum of their 8 bits' -log p, on the same per-byte
// scale as the byte tracks. A uniform model (every bit logit 0) scores exactly 8 bits a byte.
//
// Byte distributions (generation, NextLogits, forward) come from the bit conditionals: p(byte) =
// prod_k p(bit_k | the bits before), where bit 0's comes from the last known position and bits
// 1..7's from 128 candidate continuations (the first 7 bits of every even byte cover every prefix)
// run on top of a key/value cache of the known bits.
//
// Diffusion mode (mode "diffusion"; docs/tracks.md): the same blocks with bidirectional attention
// read the window's bits in place, the context byte x_0 visible and each bit of x_1 .. x_T replaced
// by the mask token (2) with probability t; the model predicts the masked bits. Training minimises
// the continuous-time ELBO of absorbing-state diffusion with a linear schedule (MDLM, Sahoo et al.
// 2024; Shi et al. 2024): E_t [ (1/t) sum over masked bits of -log p(bit) ], an upper bound on
// -log p(x_1 .. x_T | x_0); its bpb is that bound per byte. Generation unmasks bits over
// diffusion_steps steps (each masked bit is drawn at the step from t to s with probability
// (t - s) / t).
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "models/model.h"
#include "models/model_config.pb.h"
#include "models/reversible.h"

namespace bitbyte::models {

class BitBlockImpl : public torch::nn::Module, public RevBlock {
 public:
  explicit BitBlockImpl(const pb::BitTransformerLMConfig& c);
  // F: proj(attention(qkv(ln1(x)))), causal (over the last attention_window positions when set) or
  // (diffusion) bidirectional; G: fc2(gelu(fc1(ln2(x)))).
  torch::Tensor F(const torch::Tensor& x2) override;
  torch::Tensor G(const torch::Tensor& y1) override { return Mlp(y1); }
  std::vector<torch::Tensor> BlockParameters() override { return parameters(); }
  torch::Tensor Mlp(const torch::Tensor& x);
  // F for new positions on top of cached ones: x [N, m, d] at positions n .. n+m-1, where row r's
  // earlier positions are the cache's row r / (N / B): k_cache, v_cache [B, H, capacity, dh] with
  // n positions filled. `commit` (N == B): the new keys and values are written into the cache.
  torch::Tensor FCached(const torch::Tensor& x, torch::Tensor& k_cache, torch::Tensor& v_cache, int64_t n, bool commit);
  int64_t n_head() const { return n_head_; }

 private:
  int64_t n_head_;
  bool causal_;
  int64_t window_;  // attention_window (causal only; 0: every earlier position)
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(BitBlock);

class BitTransformerLM : public ByteModel {
 public:
  explicit BitTransformerLM(const pb::BitTransformerLMConfig& config);
  // Exact next-byte logits (log-probabilities) at every position, from the bit conditionals
  // through the cached stepper: O(T) passes, for tests and small windows. Training and evaluation
  // use Loss and Nats, which need one pass.
  torch::Tensor forward(const torch::Tensor& bytes) override;
  int64_t context() const override { return config_.context() / 8; }
  std::string Describe() const override;
  torch::Tensor Loss(const torch::Tensor& x, const torch::Tensor& y) override;
  double Nats(const torch::Tensor& x, const torch::Tensor& y) override;
  torch::Tensor NextLogits(const torch::Tensor& bytes) override;
  void Trace(const torch::Tensor& bytes) override { BitLogits(Tokens(bytes)); }
  // Its own bit predictions, one pass: sigmoid of the bit logits.
  torch::Tensor BitProbabilities(const torch::Tensor& x, const torch::Tensor& y) override;
  std::unique_ptr<Stepper> MakeStepper(int64_t batch, int64_t window) override;
  bool Denoises() const override { return diffusion_; }
  void SetActiveDepth(int64_t depth) override;
  Denoised Denoise(const torch::Tensor& context, int64_t n, int64_t steps, double temperature,
                   at::Generator& gen) override;

  // -log p in nats of each predicted byte, [B, T], in the logits' type (float32; float64 in a float64
  // model): the
  // window's bytes x_1 .. x_T given x_0 and the bits before. x, y as Loss takes them.
  torch::Tensor ByteNats(const torch::Tensor& x, const torch::Tensor& y);
  // The bits of bytes [B, L] (int64), most significant first: [B, 8 L] int64 in {0, 1}.
  static torch::Tensor Bits(const torch::Tensor& bytes);
  // The model's input for bytes [B, L]: [B, 8 L] tokens, the start symbol then all bits but the last.
  static torch::Tensor Tokens(const torch::Tensor& bytes);
  // The logit of each position's bit being 1, [B, N], for tokens [B, N] (N <= context + 8).
  torch::Tensor BitLogits(const torch::Tensor& tokens);
  static constexpr int64_t kStart = 2;  // the start symbol's token (causal)
  static constexpr int64_t kMask = 2;   // the mask token (diffusion)
  // Diffusion: the ELBO estimate of -log p(y's bytes | x's first byte) in nats per window, [B],
  // averaged over `samples` masking levels per window, stratified over [kMinT, 1]; masks from
  // `gen` (the global generator when null: training). wide: in float64.
  torch::Tensor DiffusionNats(const torch::Tensor& x, const torch::Tensor& y, int64_t samples, at::Generator* gen,
                              bool wide);
  static constexpr double kMinT = 1e-3;

 private:
  class CachedStepper;
  // The window x_0 .. x_T [B, T + 1] of inputs x and targets y, checked (shapes, context, y is x
  // shifted by one byte).
  torch::Tensor Window(const torch::Tensor& x, const torch::Tensor& y) const;
  // ByteNats, with the bits' -log p in float64 when `wide` (evaluation).
  torch::Tensor ByteNats(const torch::Tensor& x, const torch::Tensor& y, bool wide);
  // The embedded tokens at positions pos0 .. pos0 + N - 1: [B, N, d].
  torch::Tensor Embed(const torch::Tensor& tokens, int64_t pos0);
  torch::Tensor Head(const torch::Tensor& h);  // [.., d] -> [..] logits
  pb::BitTransformerLMConfig config_;
  bool diffusion_;
  torch::nn::Embedding tok_emb_{nullptr}, pos_emb_{nullptr}, bit_emb_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  std::vector<RevBlock*> rev_blocks_;
  std::vector<RevBlock*>
      active_blocks_;  // the first ActiveBlocks() (a member: the reversible backward keeps its address)
  torch::nn::LayerNorm ln_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};

}  // namespace bitbyte::models
