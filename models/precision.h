#pragma once
// Mixed precision for training: fp32 master weights and optimizer state, bf16 matmuls.
//
// Under a Bf16Scope, LibTorch's autocast runs the matrix products (linear, matmul, bmm, baddbmm,
// conv) in bfloat16 and leaves the other ops in the precision of their inputs: the residual stream,
// layer norms, softmax (models ask for float there), the loss and every gradient of a parameter
// stay float32. Autocast casts each fp32 weight to bf16 once per scope (its cast cache), not once
// per use; the scope's end drops those copies. Autocast state is per thread: open the scope on the
// thread that runs the forward pass.
#include <torch/torch.h>

#include <string>

namespace bitbyte::models {

enum class Precision { kFp32, kBf16 };

const char* PrecisionName(Precision p);  // "fp32", "bf16"

class Bf16Scope {
 public:
  // Enables bf16 autocast for `device` on this thread when `on`; does nothing otherwise.
  Bf16Scope(torch::Device device, bool on);
  ~Bf16Scope();
  Bf16Scope(const Bf16Scope&) = delete;
  Bf16Scope& operator=(const Bf16Scope&) = delete;

 private:
  bool on_, cuda_, was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

// Whether LibTorch's autocast is on for the CPU on this thread (a Bf16Scope is open).
bool CpuAutocastEnabled();

// `t` as float32 when it is bf16 or fp16 (autocast's outputs), else itself (float32, or float64
// in gradient checks): for the ops a model keeps in full precision.
inline bool IsReduced(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf;
}
inline torch::Tensor FullPrecision(const torch::Tensor& t) { return IsReduced(t) ? t.to(torch::kFloat) : t; }

}  // namespace bitbyte::models
