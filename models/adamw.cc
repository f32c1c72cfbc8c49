#include "models/adamw.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "models/cpu_kernels.h"

namespace bitbyte::models {
namespace {

struct Coefficients {
  float keep;     // 1 - lr * decay
  float b1, c1;   // beta1, 1 - beta1
  float b2, c2;   // beta2, 1 - beta2
  float inv_bc2;  // 1 / sqrt(1 - beta2^t)
  float eps;
  float step;  // -lr / (1 - beta1^t)
};

template <typename T>
BITBYTE_KERNEL_INLINE void Update(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                                  const Coefficients& k, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float gi = g[i];
    const float mi = m[i] * k.b1 + gi * k.c1;
    const float vi = v[i] * k.b2 + gi * gi * k.c2;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * k.keep + k.step * mi / (std::sqrt(vi) * k.inv_bc2 + k.eps);
  }
}

BITBYTE_KERNEL_DISPATCH(UpdateRange, Update)

}  // namespace

void AdamWUpdate(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& exp_avg, torch::Tensor& exp_avg_sq,
                 const AdamWHyper& h) {
  torch::NoGradGuard no_grad;
  const bool fused = p.device().is_cpu() && p.scalar_type() == torch::kFloat && g.scalar_type() == torch::kFloat &&
                     p.is_contiguous() && g.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous();
  if (!fused) {
    if (h.decay > 0) p.mul_(1.0 - h.lr * h.decay);
    exp_avg.mul_(h.beta1).add_(g, 1.0 - h.beta1);
    exp_avg_sq.mul_(h.beta2).addcmul_(g, g, 1.0 - h.beta2);
    const torch::Tensor denom = (exp_avg_sq.sqrt() / h.bc2_sqrt).add_(h.eps);
    p.addcdiv_(exp_avg, denom, -h.lr / h.bc1);
    return;
  }
  const Coefficients k{static_cast<float>(1.0 - h.lr * h.decay),
                       static_cast<float>(h.beta1),
                       static_cast<float>(1.0 - h.beta1),
                       static_cast<float>(h.beta2),
                       static_cast<float>(1.0 - h.beta2),
                       static_cast<float>(1.0 / h.bc2_sqrt),
                       static_cast<float>(h.eps),
                       static_cast<float>(-h.lr / h.bc1)};
  float *pp = p.data_ptr<float>(), *pm = exp_avg.data_ptr<float>(), *pv = exp_avg_sq.data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  at::parallel_for(0, p.numel(), 1 << 15,
                   [&](int64_t begin, int64_t end) { UpdateRange<float>(pp, pg, pm, pv, k, begin, end); });
}

}  // namespace bitbyte::models
