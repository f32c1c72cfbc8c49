// Quantization-aware training (models/qat.h): the quantizers' values (ternary in {-g, 0, +g} with
// g the mean |w|; int4 and int8 equal to part 1's, bit for bit), straight-through gradients
// against finite differences of the surrogate, and the scope of a QatModel (covered layers only,
// the head never, nothing once it is gone or switched off).
#include "models/qat.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "base/error.h"
#include "models/linear.h"
#include "models/quant.h"
#include "tests/test_util.h"

namespace bitbyte::models::qat {
namespace {

using testing::Draw;

TEST(Qat, TernaryWeightsAreMinusZeroPlusTheMeanMagnitude) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 20; ++i) {
    torch::manual_seed(i);
    const torch::Tensor w = torch::randn({Draw(rng, 1, 40), Draw(rng, 1, 90)}) * std::pow(10.0, Draw(rng, -3, 1));
    const torch::Tensor t = Ternary(w);
    const float g = w.abs().mean().item<float>();
    // Each weight is round(w / g) clamped to [-1, 1], times g.
    const torch::Tensor want = (w / g).round().clamp(-1, 1) * g;
    EXPECT_TRUE(torch::equal(t, want)) << i;
    EXPECT_TRUE((t.eq(0) | t.eq(g) | t.eq(-g)).all().item<bool>());
  }
  EXPECT_TRUE(torch::equal(Ternary(torch::zeros({3, 4})), torch::zeros({3, 4})));
}

// The int4 weights QAT trains with are exactly part 1's (dequantized round-to-nearest form), and
// its int8 rows exactly part 1's activations: a QAT model exports with nothing lost.
TEST(Qat, Int4AndInt8EqualPartOnesQuantizers) {
  std::mt19937_64 rng(2);
  for (int i = 0; i < 20; ++i) {
    const int64_t out = Draw(rng, 1, 40), in = Draw(rng, 1, 200), group = 2 * Draw(rng, 1, 40);
    torch::manual_seed(i);
    const torch::Tensor w = torch::randn({out, in}) * 0.1;
    const quant::QuantLinear l = quant::QuantizeLinearInt4(w, torch::Tensor(), group, torch::Tensor());
    EXPECT_TRUE(torch::equal(Int4Weight(w, group), quant::Dequantize(l))) << out << "x" << in << " g" << group;
    torch::Tensor x = torch::randn({Draw(rng, 1, 9), in}) * std::pow(10.0, Draw(rng, -2, 2));
    if (i % 4 == 0) x[0].zero_();
    torch::Tensor q = torch::empty(x.sizes(), torch::kInt8), s = torch::empty({x.size(0)});
    quant::QuantizeRows(x.data_ptr<float>(), x.size(0), in, q.data_ptr<int8_t>(), s.data_ptr<float>());
    EXPECT_TRUE(torch::equal(Int8Rows(x), q.to(torch::kFloat) * s.unsqueeze(1))) << i;
  }
}

struct TwoLinear : torch::nn::Module {
  TwoLinear() {
    fc = register_module("fc", torch::nn::Linear(24, 16));
    head = register_module("head", torch::nn::Linear(16, 8));
  }
  torch::Tensor forward(const torch::Tensor& x) { return Linear(head, Linear(fc, x)); }
  torch::nn::Linear fc{nullptr}, head{nullptr};
};

// The straight-through gradient is the gradient of the surrogate in which each quantizer is the
// identity: for L = sum(r * Linear(q(n(x)), q(w), b)), dL/dw = dS/dw with S(w) =
// sum(r * Linear(xq, w, b)) (xq the forward's quantized input, fixed), and dL/dx = dS'/dx with
// S'(x) = sum(r * Linear(n(x), wq, b)) (n the ternary scheme's RMS norm, the identity for int4).
// Both checked against central differences in float64.
TEST(Qat, StraightThroughGradientsAreTheSurrogatesFiniteDifferences) {
  for (const Scheme scheme : {Scheme::kTernary, Scheme::kInt4}) {
    torch::manual_seed(3);
    TwoLinear m;
    QatModel qat(m, scheme, 8);
    ASSERT_EQ(qat.layers(), std::vector<std::string>{"fc"});  // never the head
    const torch::Tensor x = torch::randn({5, 24}, torch::requires_grad()), r = torch::randn({5, 16});
    const torch::Tensor w = m.fc->weight, b = m.fc->bias;
    (Linear(m.fc, x) * r).sum().backward();
    const auto norm = [&](const torch::Tensor& v) { return scheme == Scheme::kTernary ? RmsRows(v) : v; };
    const torch::Tensor xq = Int8Rows(norm(x.detach()));
    const torch::Tensor wq = scheme == Scheme::kTernary ? Ternary(w) : Int4Weight(w, 8);
    const torch::Tensor xd = xq.to(torch::kDouble), rd = r.to(torch::kDouble), bd = b.detach().to(torch::kDouble);
    const auto s_w = [&](const torch::Tensor& wv) { return (torch::linear(xd, wv, bd) * rd).sum().item<double>(); };
    const auto s_x = [&](const torch::Tensor& xv) {
      const torch::Tensor n = scheme == Scheme::kTernary ? xv * torch::rsqrt(xv.pow(2).mean(-1, true) + 1e-6) : xv;
      return (torch::linear(n, wq.to(torch::kDouble), bd) * rd).sum().item<double>();
    };
    const double h = 1e-4;
    const torch::Tensor w0 = w.detach().to(torch::kDouble), x0 = x.detach().to(torch::kDouble);
    for (int k = 0; k < 10; ++k) {
      const int64_t o = (k * 7) % 16, i = (k * 5) % 24, row = k % 5;
      torch::Tensor wp = w0.clone(), wm = w0.clone();
      wp[o][i] += h;
      wm[o][i] -= h;
      EXPECT_NEAR(w.grad()[o][i].item<double>(), (s_w(wp) - s_w(wm)) / (2 * h), 1e-3)
          << SchemeName(scheme) << " dL/dw[" << o << "][" << i << "]";
      torch::Tensor xp = x0.clone(), xm = x0.clone();
      xp[row][i] += h;
      xm[row][i] -= h;
      EXPECT_NEAR(x.grad()[row][i].item<double>(), (s_x(xp) - s_x(xm)) / (2 * h), 1e-3)
          << SchemeName(scheme) << " dL/dx[" << row << "][" << i << "]";
    }
  }
}

// The forward pass runs quantized while a QatModel covers the layer and is active; switched off or
// gone, it is the float32 product again, bit for bit; two QatModels may not cover one layer.
TEST(Qat, ScopedToItsModelAndSwitch) {
  torch::manual_seed(4);
  TwoLinear m;
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({3, 24});
  const torch::Tensor plain = m.forward(x);
  {
    QatModel qat(m, Scheme::kTernary, 64);
    EXPECT_TRUE(qat.active());
    const torch::Tensor y = m.forward(x);
    EXPECT_FALSE(torch::allclose(y, plain));
    const torch::Tensor want = torch::linear(torch::linear(Int8Rows(RmsRows(x)), Ternary(m.fc->weight), m.fc->bias),
                                             m.head->weight, m.head->bias);
    EXPECT_TRUE(torch::allclose(y, want, 1e-5, 1e-6));
    EXPECT_THROW(QatModel(m, Scheme::kInt4, 64), UsageError);
    qat.set_active(false);
    EXPECT_TRUE(torch::equal(m.forward(x), plain));
  }
  EXPECT_TRUE(torch::equal(m.forward(x), plain));
  EXPECT_THROW(ParseScheme("ternary2"), UsageError);
  EXPECT_THROW(QatModel(m, Scheme::kInt4, 3), UsageError);
}

}  // namespace
}  // namespace bitbyte::models::qat
