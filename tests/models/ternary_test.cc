// The ternary scheme (models/quant.h, models/ternary.h): the packed 2-bit form round-trips QAT's
// ternary weights exactly; the lookup kernel's products equal integer products computed here from
// the documented packed layout, bit for bit (so on every instruction set: the ctest variants force
// base and AVX2), at any thread count and with sums near the 16-bit span's bound; the QAT forward
// on integers equals the exported inference bit for bit, and the composition of tensor ops it
// stands for within float rounding, gradients included.
#include "models/ternary.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "models/linear.h"
#include "models/model.h"
#include "models/precision.h"
#include "models/qat.h"
#include "models/quant.h"
#include "models/registry.h"
#include "tests/test_util.h"

namespace bitbyte::models::quant {
namespace {

using testing::Draw;

// The weights a ternary form packs, decoded from the 2-bit layout ternary.h documents (written
// here, not with ternary::Weight): [out, in] in {-1, 0, +1}.
std::vector<int> Decode(const QuantLinear& l) {
  const int64_t out = l.out(), in = l.in, bytes = (in + 3) / 4;
  EXPECT_EQ(l.q.size(1), bytes);
  const uint8_t* q = l.q.data_ptr<uint8_t>();
  std::vector<int> t(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const int code = (q[o * bytes + i / 4] >> (2 * (i % 4))) & 3;
      EXPECT_NE(code, 3);
      t[static_cast<size_t>(o * in + i)] = code == 1 ? 1 : code == 2 ? -1 : 0;
    }
  return t;
}

// y[r, o] as the scheme defines it: fma(exact integer dot, sx[r] scale[o], bias[o]).
torch::Tensor Expected(const QuantLinear& l, const torch::Tensor& x) {
  const int64_t rows = x.size(0), in = l.in, out = l.out();
  torch::Tensor xq = torch::empty({rows, in}, torch::kInt8), sx = torch::empty({rows});
  TernaryRows(x.data_ptr<float>(), rows, in, xq.data_ptr<int8_t>(), sx.data_ptr<float>());
  const std::vector<int> t = Decode(l);
  const int8_t* a = xq.data_ptr<int8_t>();
  torch::Tensor want = torch::empty({rows, out});
  float* w = want.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      int64_t dot = 0;
      for (int64_t i = 0; i < in; ++i) dot += int64_t{t[static_cast<size_t>(o * in + i)]} * a[r * in + i];
      const float gamma = l.scale[l.scale.numel() == 1 ? 0 : o].item<float>();
      w[r * out + o] = std::fma(static_cast<float>(dot), sx[r].item<float>() * gamma,
                                l.bias.defined() ? l.bias[o].item<float>() : 0.0f);
    }
  return want;
}

TEST(Quant, TernaryFormIsQatsTernaryWeightPacked) {
  std::mt19937_64 rng(31);
  for (int i = 0; i < 30; ++i) {
    const int64_t out = Draw(rng, 1, 80), in = Draw(rng, 1, 300);
    const bool per_channel = i % 2 == 1;
    torch::manual_seed(i);
    torch::Tensor w = torch::randn({out, in}) * std::pow(10.0, Draw(rng, -3, 1));
    if (i % 5 == 0) w[0].zero_();  // a row of zeros: gamma clamps, every weight 0
    const QuantLinear l = QuantizeLinearTernary(w, torch::Tensor(), per_channel);
    const std::string where =
        "out " + std::to_string(out) + " in " + std::to_string(in) + (per_channel ? " per channel" : " per tensor");
    EXPECT_EQ(l.scheme, Scheme::kTernary);
    EXPECT_EQ(l.scale.sizes(), c10::IntArrayRef({per_channel ? out : 1})) << where;
    EXPECT_TRUE(torch::equal(Dequantize(l), qat::Ternary(w, per_channel))) << where;
    // The codes are the rounding's: t = clamp(round(w / gamma), -1, 1).
    const std::vector<int> t = Decode(l);
    const torch::Tensor gamma =
        per_channel ? w.abs().mean(1).clamp_min(1e-8) : w.abs().mean().clamp_min(1e-8).expand({out});
    EXPECT_TRUE(torch::equal(l.scale.expand({out}), gamma)) << where;
    for (int64_t o = 0; o < out; ++o)
      for (int64_t k = 0; k < 4; ++k) {
        const int64_t j = Draw(rng, 0, in - 1);
        const float v = std::round(w[o][j].item<float>() / gamma[o].item<float>());
        EXPECT_EQ(t[static_cast<size_t>(o * in + j)], static_cast<int>(std::max(-1.0f, std::min(1.0f, v)))) << where;
        EXPECT_EQ(ternary::Weight(l.q[o].data_ptr<uint8_t>(), j), t[static_cast<size_t>(o * in + j)]) << where;
      }
  }
}

TEST(Quant, TernaryProductsAreExactIntegerProducts) {
  std::mt19937_64 rng(32);
  for (int i = 0; i < 40; ++i) {
    // Shapes with every tail: outputs not a multiple of the 64-output block, inputs not a multiple
    // of 4, and inputs past 256 (the 16-bit sums widen every 256).
    const int64_t out = Draw(rng, 1, 150), in = Draw(rng, 1, 700),
                  rows = i % 8 == 0 ? Draw(rng, 17, 40) : Draw(rng, 1, 9);
    torch::manual_seed(i);
    const torch::Tensor w = torch::randn({out, in}), b = i % 2 ? torch::randn({out}) : torch::Tensor();
    QuantLinear l = QuantizeLinearTernary(w, b, i % 3 == 0);
    if (i % 4 == 0) l.ternary = nullptr;  // a form nobody prepared: laid out as it runs
    const torch::Tensor x = torch::randn({rows, in}) * std::pow(10.0, Draw(rng, -2, 2)), y0 = torch::randn({rows, out});
    const torch::Tensor want = Expected(l, x);
    const std::string where =
        "out " + std::to_string(out) + " in " + std::to_string(in) + " rows " + std::to_string(rows);
    for (const bool accumulate : {false, true}) {
      torch::Tensor y = y0.clone();
      ApplyRows(l, x.data_ptr<float>(), rows, y.data_ptr<float>(), accumulate);
      EXPECT_TRUE(torch::equal(y, accumulate ? y0 + want : want)) << where << " accumulate " << accumulate;
    }
    EXPECT_TRUE(torch::equal(Apply(l, x.view({rows, 1, in})).view({rows, out}), want)) << where;
  }
}

// The largest sums the kernel meets: every activation +-127 (a row of equal magnitudes) against
// weights all +1 or all -1, so that every 256-input span sums to +-127 x 256 in 16 bits.
TEST(Quant, TernaryProductsAtTheSixteenBitBound) {
  for (const int64_t in : {256, 257, 1024, 1999}) {
    torch::Tensor w = torch::ones({130, in});
    w.narrow(0, 65, 65).neg_();
    const QuantLinear l = QuantizeLinearTernary(w, torch::Tensor(), false);
    torch::Tensor x = torch::ones({3, in});
    x[1].neg_();
    x[2].narrow(0, 0, in / 2).neg_();
    torch::Tensor y = torch::empty({3, 130});
    ApplyRows(l, x.data_ptr<float>(), 3, y.data_ptr<float>(), false);
    EXPECT_TRUE(torch::equal(y, Expected(l, x))) << "in " << in;
    EXPECT_NEAR(y[0][0].item<float>(), static_cast<float>(in), 1e-5 * in) << "in " << in;  // 127 in x (1 / 127) x 1
  }
}

// Rows split among threads (and blocks, when the rows are few) give the same floats.
TEST(Quant, TernaryProductsDoNotDependOnThreads) {
  const int threads = at::get_num_threads();
  torch::manual_seed(7);
  const torch::Tensor w = torch::randn({700, 300});
  const QuantLinear l = QuantizeLinearTernary(w, torch::randn({700}), true);
  for (const int64_t rows : {int64_t{5}, int64_t{100}}) {
    const torch::Tensor x = torch::randn({rows, 300});
    at::set_num_threads(1);
    const torch::Tensor one = Apply(l, x);
    at::set_num_threads(std::max(2, threads));
    EXPECT_TRUE(torch::equal(Apply(l, x), one)) << rows << " rows";
  }
  at::set_num_threads(threads);
}

// A checkpoint-loaded form is checked: code 3 is no ternary weight.
TEST(Quant, TernaryFormsWithCodeThreeAreRefused) {
  torch::manual_seed(3);
  pb::ModelConfig c;
  auto model = CreateModel(c);
  const QuantizedModel q(*model, QuantizeOptions{false, nullptr, Scheme::kTernary});
  std::vector<std::pair<std::string, QuantLinear>> forms;
  for (size_t i = 0; i < q.layers().size(); ++i) forms.emplace_back(q.layers()[i], q.form(i));
  ASSERT_FALSE(forms.empty());
  auto model2 = CreateModel(c);
  QuantLinear& bad = forms[0].second;
  bad.q = bad.q.clone();
  bad.q.view({-1})[5] = 0xff;
  bad.ternary = nullptr;
  try {
    const QuantizedModel loaded(*model2, forms);
    ADD_FAILURE() << "code 3 accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("byte 5"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ternary::FindInvalid(bad.q.data_ptr<uint8_t>(), bad.q.size(0), bad.in), 5);
}

struct OneFc : torch::nn::Module {
  OneFc(int64_t in, int64_t out) { fc = register_module("fc", torch::nn::Linear(in, out)); }
  torch::nn::Linear fc{nullptr};
};

// One Linear layer trained ternary quantization-aware and the same layer exported: on the CPU the
// QAT forward runs on the export's integers (qat::TernaryLinear), so the two are equal bit for bit
// at any row count (the export takes the lookup kernel under 16 rows, the int8 GEMM from 16 on).
TEST(Quant, TernaryExportEqualsTheQatLinear) {
  std::mt19937_64 rng(33);
  for (int i = 0; i < 12; ++i) {
    const int64_t in = Draw(rng, 1, 600), out = Draw(rng, 1, 200), rows = Draw(rng, 1, 40);
    const bool per_channel = i % 2 == 0;
    torch::manual_seed(i);
    OneFc m(in, out);
    const qat::QatModel qm(m, qat::Scheme::kTernary, 64, per_channel);
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::randn({rows, in}) * std::pow(10.0, Draw(rng, -2, 2));
    const torch::Tensor fake = models::Linear(m.fc, x);
    QuantizeOptions o{false, nullptr, Scheme::kTernary};
    o.per_channel = per_channel;
    const QuantizedModel q(m, o);
    EXPECT_TRUE(torch::equal(models::Linear(m.fc, x), fake)) << "in " << in << " out " << out << " rows " << rows;
  }
}

// The integer forward against the composition of tensor ops it stands for (qat::TernaryComposed,
// what other devices run): the same quantized inputs and weights, so the values differ by the
// float32 product's rounding alone (within 1e-5 of sum |x_i w_i|), and the straight-through
// gradients of x, w and b likewise (1e-4 relative; bf16 autocast: the backward's products in bf16,
// 2e-2).
TEST(Quant, TernaryQatOnIntegersHasTheCompositionsValuesAndGradients) {
  std::mt19937_64 rng(34);
  for (int i = 0; i < 10; ++i) {
    const int64_t in = Draw(rng, 2, 300), out = Draw(rng, 1, 100), rows = Draw(rng, 1, 50);
    const bool per_channel = i % 2 == 0, bf16 = i % 3 == 2;
    torch::manual_seed(i);
    const torch::Tensor x = torch::randn({2, rows, in}), w = torch::randn({out, in}) * 0.1;
    const torch::Tensor b = i % 4 == 1 ? torch::Tensor() : torch::randn({out}), r = torch::randn({2, rows, out});
    std::vector<torch::Tensor> y, gx, gw, gb;
    for (const bool integer : {true, false}) {
      const torch::Tensor xv = x.clone().requires_grad_(true), wv = w.clone().requires_grad_(true);
      const torch::Tensor bv = b.defined() ? b.clone().requires_grad_(true) : b;
      torch::Tensor out_v;
      {
        Bf16Scope scope(torch::kCPU, bf16);
        out_v = integer ? qat::TernaryLinear(xv, wv, bv, per_channel) : qat::TernaryComposed(xv, wv, bv, per_channel);
      }
      (out_v.to(torch::kFloat) * r).sum().backward();
      y.push_back(out_v.detach().to(torch::kFloat));
      gx.push_back(xv.grad());
      gw.push_back(wv.grad());
      gb.push_back(bv.defined() ? bv.grad() : torch::Tensor());
    }
    const std::string where = "in " + std::to_string(in) + " out " + std::to_string(out) + " rows " +
                              std::to_string(rows) + (bf16 ? " bf16" : "");
    const torch::Tensor xi = qat::TernaryInput(x), wi = qat::Ternary(w, per_channel);
    if (!bf16) {  // under autocast the composition's forward product is bf16 too
      const torch::Tensor tol = torch::matmul(xi.abs(), wi.abs().t()) * 1e-5 + 1e-6;
      EXPECT_TRUE(((y[0] - y[1]).abs() <= tol).all().item<bool>()) << where;
    }
    const double rel = bf16 ? 2e-2 : 1e-4;
    const auto close = [&](const torch::Tensor& a, const torch::Tensor& c, const char* what) {
      EXPECT_LE((a - c).abs().max().item<double>(), rel * c.abs().max().item<double>() + 1e-6) << where << " " << what;
    };
    close(gx[0], gx[1], "dL/dx");
    close(gw[0], gw[1], "dL/dw");
    if (b.defined()) close(gb[0], gb[1], "dL/db");
  }
}

// A whole model trained ternary quantization-aware and exported: the same logits, bit for bit.
TEST(Quant, TernaryExportEqualsTheQatModel) {
  for (const char* track : {"bitbyte_lm", "mamba_mlm"})
    for (const char* scale : {"tensor", "channel"}) {
      pb::ModelConfig c;
      c.set_name(track);
      c.mutable_qat()->set_scheme("ternary");
      c.mutable_qat()->set_ternary_scale(scale);
      torch::manual_seed(11);
      auto model = CreateModel(c);
      model->eval();
      torch::NoGradGuard no_grad;
      const torch::Tensor bytes = torch::randint(256, {2, 64}, torch::kLong);
      const torch::Tensor fake = model->forward(bytes);
      model->qat()->set_active(false);
      const torch::Tensor plain = model->forward(bytes);
      model->qat()->set_active(true);
      QuantizeOptions o{false, nullptr, Scheme::kTernary};
      o.per_channel = std::string(scale) == "channel";
      const QuantizedModel q(*model, o);
      const std::string where = std::string(track) + " " + scale;
      EXPECT_TRUE(torch::equal(model->forward(bytes), fake)) << where;
      EXPECT_GT((plain - fake).abs().mean().item<double>(), 0.5 * fake.abs().mean().item<double>())
          << where << ": QAT changed little";
    }
}

}  // namespace
}  // namespace bitbyte::models::quant
