// The one-pass AdamW update against the composed tensor ops it replaces (torch.optim.AdamW's
// arithmetic): several steps on random tensors of odd sizes, with and without weight decay,
// within float32 rounding; the same result whatever the thread count.
#include "models/adamw.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace bitbyte::models {
namespace {

void Composed(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& m, torch::Tensor& v, const AdamWHyper& h) {
  if (h.decay > 0) p.mul_(1.0 - h.lr * h.decay);
  m.mul_(h.beta1).add_(g, 1.0 - h.beta1);
  v.mul_(h.beta2).addcmul_(g, g, 1.0 - h.beta2);
  p.addcdiv_(m, (v.sqrt() / h.bc2_sqrt).add_(h.eps), -h.lr / h.bc1);
}

TEST(AdamW, OnePassEqualsTheComposedOps) {
  torch::manual_seed(12);
  for (int64_t n : {1, 15, 16, 17, 1000, 70001}) {
    for (double decay : {0.0, 0.1}) {
      torch::Tensor p = torch::randn({n}), m = torch::zeros({n}), v = torch::zeros({n});
      torch::Tensor p2 = p.clone(), m2 = m.clone(), v2 = v.clone();
      for (int t = 1; t <= 5; ++t) {
        const torch::Tensor g = torch::randn({n}) * 0.1;
        const AdamWHyper h{1e-2, 0.9, 0.95, 1e-8, decay, 1 - std::pow(0.9, t), std::sqrt(1 - std::pow(0.95, t))};
        AdamWUpdate(p, g, m, v, h);
        Composed(p2, g, m2, v2, h);
      }
      EXPECT_TRUE(torch::allclose(m, m2, 1e-6, 1e-8)) << n;
      EXPECT_TRUE(torch::allclose(v, v2, 1e-6, 1e-11)) << n;
      EXPECT_TRUE(torch::allclose(p, p2, 1e-5, 1e-7)) << n << " decay " << decay;
    }
  }
}

TEST(AdamW, SameBitsWhateverTheThreadCount) {
  torch::manual_seed(13);
  const torch::Tensor p0 = torch::randn({200003}), g = torch::randn({200003});
  const AdamWHyper h{1e-3, 0.9, 0.95, 1e-8, 0.1, 0.1, std::sqrt(0.05)};
  torch::Tensor out[2];
  const int before = at::get_num_threads();
  for (int i = 0; i < 2; ++i) {
    at::set_num_threads(i + 1);
    torch::Tensor p = p0.clone(), m = torch::zeros_like(p), v = torch::zeros_like(p);
    AdamWUpdate(p, g, m, v, h);
    out[i] = p;
  }
  at::set_num_threads(before);
  EXPECT_TRUE(torch::equal(out[0], out[1]));
}

}  // namespace
}  // namespace bitbyte::models
