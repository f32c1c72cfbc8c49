#pragma once
// BitByteLM: byte-level decoder-only transformer.
//   bytes -> tok_emb(256, d) + pos_emb(context, d)
//         -> n_layer x [ x += proj(attn(ln1(x)));  x += fc2(gelu(fc1(ln2(x)))) ]   (pre-norm)
//         -> ln_f -> head(d, 256, no bias)
// Initialisation (GPT-2 style): every Linear weight and both embeddings ~ N(0, init_std); the
// two projections that write into the residual stream (attn proj, fc2) ~ N(0, init_std /
// sqrt(2 n_layer)) so the residual variance does not grow with depth; biases 0; LayerNorm 1, 0.
#include <torch/torch.h>

#include <vector>

#include "models/model.h"
#include "models/model_config.pb.h"

namespace bitbyte::models {

struct DecodeBuffers;  // scratch of the float32 CPU generation step (bitbyte_lm.cc)

class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(const pb::BitByteLMConfig& c);
  torch::Tensor forward(const torch::Tensor& x) { return Forward(x, nullptr); }
  // forward(), also handing out the attention's input projection [B, T, 3 d] (queries, keys,
  // values side by side) when `qkv` is not null: generation fills its key/value cache from it.
  torch::Tensor Forward(const torch::Tensor& x, torch::Tensor* qkv);
  // One position of forward() for generation, with a key/value cache: x [B, 1, d] at position
  // `pos`; k_cache and v_cache [B, window, d] (heads side by side) hold positions 0..pos-1 and get
  // pos's. Any device and precision, in LibTorch ops.
  torch::Tensor Step(const torch::Tensor& x, torch::Tensor& k_cache, torch::Tensor& v_cache, int64_t pos);
  // The same step on float32 CPU parameters, in bitbyte's decode kernels (decode.h) on raw arrays:
  // x [b, d] is updated in place; the caches are [b, window, d] float arrays.
  void StepCpu(float* x, int64_t b, float* k_cache, float* v_cache, int64_t window, int64_t pos, DecodeBuffers& s);
  int64_t n_head() const { return n_head_; }

 private:
  torch::Tensor Dropout(const torch::Tensor& x);  // identity when dropout is 0 or in eval mode
  int64_t n_head_;
  double dropout_;
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(TransformerBlock);

class BitByteLM : public ByteModel {
 public:
  explicit BitByteLM(const pb::BitByteLMConfig& config);
  torch::Tensor forward(const torch::Tensor& bytes) override;
  int64_t context() const override { return config_.context(); }
  std::string Describe() const override;
  // Generation with a key/value cache: O(position) work per byte instead of a forward pass over
  // the whole window. Its logits equal forward()'s while the text fits in `window` positions;
  // when the window is full it starts again from the last half of it (positions 0..).
  std::unique_ptr<Stepper> MakeStepper(int64_t batch, int64_t window) override;

 private:
  class KvStepper;
  // forward(), also collecting every block's qkv projection when `qkv` is not null.
  torch::Tensor Forward(const torch::Tensor& bytes, std::vector<torch::Tensor>* qkv);
  pb::BitByteLMConfig config_;
  torch::nn::Embedding tok_emb_{nullptr}, pos_emb_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};

}  // namespace bitbyte::models
