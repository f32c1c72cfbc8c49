#pragma once
// The interface every track implements. A ByteModel maps bytes to next-byte logits; the
// training stack, evaluation and generation use nothing else.
#include <torch/torch.h>

#include <string>

namespace bitbyte::models {

class ByteModel : public torch::nn::Module {
 public:
  // bytes: [B, T] int64 in [0, 256), T <= context(). Returns logits [B, T, 256] (float32):
  // position t predicts byte t + 1 from bytes 0..t only.
  virtual torch::Tensor forward(const torch::Tensor& bytes) = 0;

  virtual int64_t context() const = 0;

  // Whether AdamW's weight decay applies to this parameter. Default: matrices, except embeddings.
  virtual bool Decays(const std::string& name, const torch::Tensor& param) const;

  // One line: track, sizes and parameter count.
  virtual std::string Describe() const = 0;

  int64_t ParameterCount() const;
};

}  // namespace bitbyte::models
