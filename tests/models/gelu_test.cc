// The GELU kernel against torch::gelu (exact erf form): values and gradients on random inputs
// with tails of the block (every length from 0 to 600, values from -12 to 12, and extremes), in
// float32 within a few float32 ulps plus A&S's 1.5e-7 of erf, and in bf16 within one bf16 ulp
// of the float32 result rounded. ctest runs it for each instruction set (BITBYTE_KERNEL_ISA).
#include "models/gelu.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace bitbyte::models {
namespace {

std::pair<torch::Tensor, torch::Tensor> ValueAndGrad(bool ours, const torch::Tensor& x0, const torch::Tensor& w) {
  torch::Tensor x = x0.detach().clone().requires_grad_(true);
  torch::Tensor y = ours ? Gelu(x) : torch::gelu(x);
  (y * w).sum().backward();
  return {y.detach(), x.grad()};
}

TEST(Gelu, MatchesTorchGeluInFloat32) {
  torch::manual_seed(9);
  for (int64_t n = 0; n <= 600; n += (n < 70 ? 1 : 37)) {
    torch::Tensor x = torch::rand({n}) * 24 - 12;
    if (n >= 4) {
      x[0] = 0.0f;
      x[1] = -1e-20f;
      x[2] = 80.0f;
      x[3] = -80.0f;
    }
    const torch::Tensor w = torch::randn({n});
    const auto [y_ref, g_ref] = ValueAndGrad(false, x, w);
    const auto [y, g] = ValueAndGrad(true, x, w);
    if (n == 0) continue;
    const torch::Tensor tol = 3e-7 * (1 + x.abs());
    EXPECT_TRUE(((y - y_ref).abs() <= tol).all().item<bool>())
        << "n " << n << " max diff " << (y - y_ref).abs().max().item<float>();
    EXPECT_TRUE(((g - g_ref).abs() <= tol * (1 + w.abs())).all().item<bool>())
        << "n " << n << " max diff " << (g - g_ref).abs().max().item<float>();
  }
}

TEST(Gelu, Bf16IsTheFloat32ResultRounded) {
  torch::manual_seed(10);
  const torch::Tensor x = (torch::randn({5000}) * 4).to(torch::kBFloat16);
  const torch::Tensor w = torch::randn({5000}).to(torch::kBFloat16);
  const auto [y, g] = ValueAndGrad(true, x, w);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(g.scalar_type(), torch::kBFloat16);
  const auto [y_ref, g_ref] = ValueAndGrad(false, x.to(torch::kFloat), w.to(torch::kFloat));
  // One bf16 ulp (2^-7 relative) of the exact value, plus float32's error before rounding.
  EXPECT_TRUE(((y.to(torch::kFloat) - y_ref).abs() <= y_ref.abs() / 128 + 1e-6).all().item<bool>());
  EXPECT_TRUE(((g.to(torch::kFloat) - g_ref).abs() <= g_ref.abs() / 128 + 1e-6).all().item<bool>());
}

TEST(Gelu, Float64AndOtherTypesUseTorchGelu) {
  const torch::Tensor x = torch::randn({100}, torch::kDouble);
  EXPECT_TRUE(torch::equal(Gelu(x), torch::gelu(x)));
}

}  // namespace
}  // namespace bitbyte::models
