#pragma once
// One AdamW update of a float32 parameter as a single pass over its four tensors (weight,
// gradient, both moments), split over LibTorch's threads: the arithmetic of torch.optim.AdamW
// (decoupled weight decay, bias-corrected moments), without the seven full-tensor passes of the
// composed ops. Elementwise, so the result does not depend on the thread count.
#include <torch/torch.h>

namespace bitbyte::models {

struct AdamWHyper {
  double lr, beta1, beta2, eps;
  double decay;     // weight decay (0: none)
  double bc1;       // 1 - beta1^t
  double bc2_sqrt;  // sqrt(1 - beta2^t)
};

// p, exp_avg, exp_avg_sq: float32, contiguous, on the CPU; g: the gradient, same shape.
// Falls back to the composed ops for anything else (another device or type).
void AdamWUpdate(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& exp_avg, torch::Tensor& exp_avg_sq,
                 const AdamWHyper& h);

}  // namespace bitbyte::models
