// The fused causal attention against the composed ops: values and all gradients, in float64
// (tight) and float32, on random shapes with tiles cut anywhere (T below, at and above the 256-row
// tile, one head or several, head widths from 1); bf16 input gives bf16 output close to float32.
// ctest runs this file for each instruction set of the kernel (BITBYTE_KERNEL_ISA).
#include "models/fused_attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "models/attention.h"

namespace bitbyte::models {
namespace {

struct Case {
  int64_t b, t, h, dh;
};

std::vector<Case> Cases() {
  std::mt19937 rng(5);
  // Tiles are 256 rows: T below, at and above one and two tiles.
  std::vector<Case> cases = {{1, 1, 1, 1},   {2, 64, 2, 8},  {1, 255, 1, 4}, {1, 256, 3, 16},
                             {1, 257, 2, 8}, {2, 300, 1, 5}, {1, 512, 1, 3}, {1, 600, 2, 4}};
  for (int i = 0; i < 6; ++i) cases.push_back({1 + rng() % 2, 1 + rng() % 700, 1 + rng() % 3, 1 + rng() % 12});
  return cases;
}

// Outputs and the gradient of a random weighted sum of them, through each implementation.
std::pair<torch::Tensor, torch::Tensor> RunAttention(bool fused, const torch::Tensor& qkv0, int64_t h,
                                                     const torch::Tensor& w) {
  torch::Tensor qkv = qkv0.detach().clone().requires_grad_(true);
  torch::Tensor y = fused ? FusedCausalAttention(qkv, h) : ComposedAttention(qkv, h);
  (y * w).sum().backward();
  return {y.detach(), qkv.grad()};
}

void Compare(torch::ScalarType dtype, double tol) {
  for (const Case& c : Cases()) {
    torch::manual_seed(c.b * 1000 + c.t * 10 + c.h);
    const auto opt = torch::TensorOptions().dtype(dtype);
    const torch::Tensor qkv = torch::randn({c.b, c.t, 3 * c.h * c.dh}, opt) * 2;
    const torch::Tensor w = torch::randn({c.b, c.t, c.h * c.dh}, opt);
    const auto [y_ref, g_ref] = RunAttention(false, qkv, c.h, w);
    const auto [y, g] = RunAttention(true, qkv, c.h, w);
    const std::string what = "B " + std::to_string(c.b) + " T " + std::to_string(c.t) + " H " + std::to_string(c.h) +
                             " D " + std::to_string(c.dh);
    ASSERT_EQ(y.sizes(), y_ref.sizes()) << what;
    EXPECT_LE((y - y_ref).abs().max().template item<double>(), tol) << what << " output";
    EXPECT_LE((g - g_ref).abs().max().template item<double>(), tol * 10) << what << " gradient";
  }
}

TEST(FusedAttention, EqualsTheComposedOpsInFloat64) { Compare(torch::kDouble, 1e-12); }

TEST(FusedAttention, EqualsTheComposedOpsInFloat32) { Compare(torch::kFloat, 2e-5); }

// The other masks (local windows, bidirectional) against MaskedAttention: values and gradients in
// float64 and float32, windows shorter and longer than a tile, and 1 (each query sees itself).
void CompareMasks(torch::ScalarType dtype, double tol) {
  std::mt19937 rng(7);
  for (const Case& c : Cases()) {
    for (const auto& [causal, window] : {std::pair{false, int64_t{0}}, std::pair{true, int64_t{1}},
                                         std::pair{true, int64_t{1 + rng() % 40}}, std::pair{true, int64_t{300}}}) {
      torch::manual_seed(c.b * 1000 + c.t * 10 + c.h + window);
      const auto opt = torch::TensorOptions().dtype(dtype);
      const torch::Tensor qkv0 = torch::randn({c.b, c.t, 3 * c.h * c.dh}, opt) * 2;
      const torch::Tensor w = torch::randn({c.b, c.t, c.h * c.dh}, opt);
      torch::Tensor a = qkv0.clone().requires_grad_(true), b = qkv0.clone().requires_grad_(true);
      const torch::Tensor y = FusedAttention(a, c.h, causal, window);
      const torch::Tensor y_ref = MaskedAttention(b, c.h, causal, window);
      (y * w).sum().backward();
      (y_ref * w).sum().backward();
      const std::string what = "B " + std::to_string(c.b) + " T " + std::to_string(c.t) + " H " + std::to_string(c.h) +
                               " D " + std::to_string(c.dh) +
                               (causal ? " window " + std::to_string(window) : " bidirectional");
      EXPECT_LE((y - y_ref).abs().max().template item<double>(), tol) << what << " output";
      EXPECT_LE((a.grad() - b.grad()).abs().max().template item<double>(), tol * 10) << what << " gradient";
    }
  }
  // MaskedAttention without a window is the causal attention.
  const torch::Tensor qkv = torch::randn({2, 33, 12}, torch::kDouble);
  EXPECT_TRUE(torch::allclose(MaskedAttention(qkv, 2, true, 0), ComposedAttention(qkv, 2), 1e-12, 1e-12));
}

TEST(FusedAttention, LocalAndBidirectionalMasksInFloat64) { CompareMasks(torch::kDouble, 1e-12); }

TEST(FusedAttention, LocalAndBidirectionalMasksInFloat32) { CompareMasks(torch::kFloat, 2e-5); }

TEST(FusedAttention, Bf16InputGivesBf16OutputCloseToFloat32) {
  torch::manual_seed(3);
  const torch::Tensor qkv = torch::randn({2, 150, 3 * 4 * 16});
  const torch::Tensor w = torch::randn({2, 150, 64});
  const auto [y_ref, g_ref] = RunAttention(false, qkv, 4, w);
  const auto [y, g] = RunAttention(true, qkv.to(torch::kBFloat16), 4, w.to(torch::kBFloat16));
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(g.scalar_type(), torch::kBFloat16);
  // bf16 keeps 8 bits of mantissa: the inputs alone are off by up to 2^-8 relative.
  EXPECT_LE((y.to(torch::kFloat) - y_ref).abs().max().template item<double>(), 0.05);
  EXPECT_LE((g.to(torch::kFloat) - g_ref).abs().max().template item<double>(),
            0.1 * g_ref.abs().max().template item<double>());
}

// Without grad (evaluation, generation's window path) it gives the same values.
TEST(FusedAttention, NoGradGivesTheSameValues) {
  torch::manual_seed(4);
  const torch::Tensor qkv = torch::randn({2, 100, 3 * 32});
  const torch::Tensor with_grad = FusedCausalAttention(qkv.clone().requires_grad_(true), 2).detach();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(FusedCausalAttention(qkv, 2), with_grad));
}

}  // namespace
}  // namespace bitbyte::models
