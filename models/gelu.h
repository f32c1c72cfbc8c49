#pragma once
// GELU (the exact, erf form) as one CPU kernel for forward and one for backward, on float32 and
// bf16 (computed in float32, the result in bf16) and float64: LibTorch 1.13's own bf16 GELU and
// its backward took about 13% of a bf16 training step of the default BitByteLM (profile in
// docs/benchmarks.md). erf comes from Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7,
// float32's own resolution), vectorised per instruction set like the other kernels; float64 uses
// std::erf. Other devices use torch::gelu.
#include <torch/torch.h>

namespace bitbyte::models {

torch::Tensor Gelu(const torch::Tensor& x);

// y[i] = GELU(x[i]) for i < n on raw float32 arrays (y may be x), on the calling thread.
void GeluForward(const float* x, float* y, int64_t n);

}  // namespace bitbyte::models
