#pragma once
// BitByteLM: byte-level decoder-only transformer.
//   bytes -> tok_emb(256, d) + pos_emb(context, d)
//         -> n_layer x [ x += proj(attn(ln1(x)));  x += fc2(gelu(fc1(ln2(x)))) ]   (pre-norm)
//         -> ln_f -> head(d, 256, no bias)
// Initialisation (GPT-2 style): every Linear weight and both embeddings ~ N(0, init_std); the
// two projections that write into the residual stream (attn proj, fc2) ~ N(0, init_std /
// sqrt(2 n_layer)) so the residual variance does not grow with depth; biases 0; LayerNorm 1, 0.
#include <torch/torch.h>

#include "models/model.h"
#include "models/model_config.pb.h"

namespace bitbyte::models {

class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(const pb::BitByteLMConfig& c);
  torch::Tensor forward(const torch::Tensor& x);

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

 private:
  pb::BitByteLMConfig config_;
  torch::nn::Embedding tok_emb_{nullptr}, pos_emb_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};

}  // namespace bitbyte::models
