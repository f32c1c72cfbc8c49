// The fused cross-entropy against torch's: loss and gradient on random logits (rows and widths
// with tails, large and small values) in float32; bf16 logits within bf16's precision with a
// bf16 gradient; a NaN or infinite logit gives a non-finite loss; the same bits whatever the
// thread count.
#include "models/cross_entropy.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace bitbyte::models {
namespace {

std::pair<torch::Tensor, torch::Tensor> LossAndGrad(bool ours, const torch::Tensor& x0, const torch::Tensor& t) {
  torch::Tensor x = x0.detach().clone().requires_grad_(true);
  torch::Tensor loss = ours ? CrossEntropy(x, t) : torch::nn::functional::cross_entropy(x, t);
  (loss * 3).backward();
  return {loss.detach(), x.grad()};
}

TEST(CrossEntropy, MatchesTorchInFloat32) {
  torch::manual_seed(21);
  for (int64_t n : {1, 7, 64, 65, 300}) {
    for (int64_t v : {1, 2, 17, 256}) {
      const torch::Tensor x = torch::randn({n, v}) * (n % 2 ? 5.0 : 0.5);
      const torch::Tensor t = torch::randint(0, v, {n}, torch::kLong);
      const auto [l_ref, g_ref] = LossAndGrad(false, x, t);
      const auto [l, g] = LossAndGrad(true, x, t);
      EXPECT_NEAR(l.item<double>(), l_ref.item<double>(), 2e-6 * (1 + std::abs(l_ref.item<double>()))) << n << "x" << v;
      EXPECT_TRUE(torch::allclose(g, g_ref, 1e-5, 1e-6)) << n << "x" << v;
    }
  }
}

TEST(CrossEntropy, Bf16LogitsGiveAFloatLossAndABf16Gradient) {
  torch::manual_seed(22);
  const torch::Tensor x = (torch::randn({500, 256}) * 3).to(torch::kBFloat16);
  const torch::Tensor t = torch::randint(0, 256, {500}, torch::kLong);
  const auto [l, g] = LossAndGrad(true, x, t);
  const auto [l_ref, g_ref] = LossAndGrad(false, x.to(torch::kFloat), t);
  EXPECT_EQ(l.scalar_type(), torch::kFloat);
  EXPECT_EQ(g.scalar_type(), torch::kBFloat16);
  EXPECT_NEAR(l.item<double>(), l_ref.item<double>(), 1e-5);  // same bf16 inputs, float32 inside
  EXPECT_TRUE(((g.to(torch::kFloat) - g_ref).abs() <= g_ref.abs() / 128 + 1e-8).all().item<bool>());
}

TEST(CrossEntropy, NonFiniteLogitsGiveANonFiniteLoss) {
  for (const float bad : {NAN, INFINITY, -INFINITY}) {
    torch::Tensor x = torch::randn({8, 16});
    x[3][5] = bad;
    const torch::Tensor t = torch::zeros({8}, torch::kLong);
    if (std::isinf(bad) && bad < 0) {
      // -inf on a non-target logit is a probability of 0: finite, as in torch.
      EXPECT_TRUE(std::isfinite(CrossEntropy(x, t).item<double>()));
      continue;
    }
    EXPECT_FALSE(std::isfinite(CrossEntropy(x, t).item<double>())) << bad;
  }
}

TEST(CrossEntropy, SameBitsWhateverTheThreadCount) {
  torch::manual_seed(23);
  const torch::Tensor x = torch::randn({4099, 256});
  const torch::Tensor t = torch::randint(0, 256, {4099}, torch::kLong);
  const int before = at::get_num_threads();
  std::pair<torch::Tensor, torch::Tensor> r[2];
  for (int i = 0; i < 2; ++i) {
    at::set_num_threads(i + 1);
    r[i] = LossAndGrad(true, x, t);
  }
  at::set_num_threads(before);
  EXPECT_TRUE(torch::equal(r[0].first, r[1].first));
  EXPECT_TRUE(torch::equal(r[0].second, r[1].second));
}

}  // namespace
}  // namespace bitbyte::models
