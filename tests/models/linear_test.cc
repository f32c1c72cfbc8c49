// Linear (models/linear.h): whichever matmul path the process takes (ctest runs these again with
// BITBYTE_MATMUL=onednn and =blas), values and gradients equal a float64 torch::linear on random
// shapes; oneDNN's sgemm passes its self-check; bf16 autocast still applies.
#include "models/linear.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "models/precision.h"

namespace bitbyte::models {
namespace {

TEST(Linear, OneDnnSelfCheckPasses) { EXPECT_EQ(OneDnnSelfCheck(), ""); }

TEST(Linear, ValuesAndGradientsEqualFloat64Reference) {
  std::mt19937_64 rng(8);
  for (int i = 0; i < 30; ++i) {
    const int64_t in = 1 + rng() % 90, out = 1 + rng() % 90, b = 1 + rng() % 3, t = 1 + rng() % 40;
    const bool bias = rng() % 2 == 0, transposed = rng() % 3 == 0;
    torch::manual_seed(i);
    // A non-contiguous input now and then (as MambaMLM's x_proj gets).
    torch::Tensor x = transposed ? torch::randn({b, in, t}).transpose(1, 2) : torch::randn({b, t, in});
    x.requires_grad_(true);
    const torch::Tensor w = torch::randn({out, in}).requires_grad_(true);
    const torch::Tensor bv = bias ? torch::randn({out}).requires_grad_(true) : torch::Tensor();
    const torch::Tensor y = Linear(x, w, bv);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{b, t, out}));
    const torch::Tensor gy = torch::randn_like(y);
    y.backward(gy);

    const torch::Tensor xd = x.detach().to(torch::kDouble).requires_grad_(true);
    const torch::Tensor wd = w.detach().to(torch::kDouble).requires_grad_(true);
    const torch::Tensor bd = bias ? bv.detach().to(torch::kDouble).requires_grad_(true) : torch::Tensor();
    const torch::Tensor yd = torch::linear(xd, wd, bd);
    yd.backward(gy.to(torch::kDouble));
    const double tol = 1e-4 * std::sqrt(double(std::max(in, b * t)));
    const auto diff = [](const torch::Tensor& a, const torch::Tensor& r) {
      return (a.to(torch::kDouble) - r).abs().max().item<double>();
    };
    EXPECT_LT(diff(y, yd), tol) << "in " << in << " out " << out;
    EXPECT_LT(diff(x.grad(), xd.grad()), tol) << "dx, in " << in << " out " << out;
    EXPECT_LT(diff(w.grad(), wd.grad()), 1e-4 * std::sqrt(double(b * t)) * 4) << "dw, in " << in << " out " << out;
    if (bias) EXPECT_LT(diff(bv.grad(), bd.grad()), 1e-4 * std::sqrt(double(b * t)) * 4) << "db";
  }
}

// The product never writes into its operands: a one-row input once accumulated into the bias
// itself (its expand-to-one-row was the bias's own storage), changing the parameter each call.
TEST(Linear, OperandsAreLeftAsTheyWere) {
  for (const int64_t rows : {1, 2, 7}) {
    torch::manual_seed(rows);
    const torch::Tensor x = torch::randn({rows, 12}), w = torch::randn({5, 12}), b = torch::randn({5});
    const torch::Tensor x0 = x.clone(), w0 = w.clone(), b0 = b.clone();
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      for (int call = 0; call < 3; ++call) y = Linear(x, w, b);
    }
    EXPECT_TRUE(torch::equal(b, b0)) << rows << " rows: the bias changed";
    EXPECT_TRUE(torch::equal(w, w0)) << rows << " rows";
    EXPECT_TRUE(torch::equal(x, x0)) << rows << " rows";
    const torch::Tensor want = torch::linear(x.to(torch::kDouble), w.to(torch::kDouble), b.to(torch::kDouble));
    EXPECT_LT((y.to(torch::kDouble) - want).abs().max().item<double>(), 1e-4) << rows << " rows";
  }
}

TEST(Linear, Bf16AutocastStillApplies) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({4, 8, 32}), w = torch::randn({16, 32}), b = torch::randn({16});
  EXPECT_EQ(Linear(x, w, b).scalar_type(), torch::kFloat);
  Bf16Scope scope(torch::kCPU, true);
  EXPECT_EQ(Linear(x, w, b).scalar_type(), torch::kBFloat16);
}

}  // namespace
}  // namespace bitbyte::models
