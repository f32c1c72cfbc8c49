// Post-training quantization (models/quant.h): int8 and int4 round trips within half a step, the
// integer GEMM exact against integer loops, the int8 Linear within its worst-case rounding bound of
// the float32 one, the int4 kernels equal to an integer reference, GPTQ below
// round-to-nearest, and a quantized model's logits near the float32 model's.
#include "models/quant.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "models/linear.h"
#include "models/model.h"
#include "models/registry.h"
#include "tests/test_util.h"

namespace bitbyte::models::quant {
namespace {

using testing::Draw;

TEST(Quant, RowRoundTripIsWithinHalfAStep) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 20; ++i) {
    const int64_t rows = Draw(rng, 1, 9), cols = Draw(rng, 1, 300);
    torch::manual_seed(i);
    torch::Tensor x = torch::randn({rows, cols}) * std::pow(10.0, Draw(rng, -3, 3));
    if (i % 4 == 0) x[0].zero_();  // a row of zeros: scale 1, all q 0
    torch::Tensor q = torch::empty({rows, cols}, torch::kInt8), s = torch::empty({rows});
    QuantizeRows(x.data_ptr<float>(), rows, cols, q.data_ptr<int8_t>(), s.data_ptr<float>());
    EXPECT_LE(q.abs().max().item<int>(), 127);
    const torch::Tensor back = q.to(torch::kFloat) * s.unsqueeze(1);
    const torch::Tensor err = (back - x).abs(), half = s.unsqueeze(1) / 2 * (1 + 1e-5);
    EXPECT_TRUE((err <= half).all().item<bool>()) << "rows " << rows << " cols " << cols;
    // The largest |x| of a non-zero row maps to +-127 exactly.
    for (int64_t r = 0; r < rows; ++r)
      if (x[r].abs().max().item<float>() > 0) {
        EXPECT_EQ(q[r].abs().max().item<int>(), 127);
      }
  }
}

TEST(Quant, Int8GemmEqualsIntegerLoops) {
  std::mt19937_64 rng(2);
  for (int i = 0; i < 20; ++i) {
    const int64_t m = Draw(rng, 1, 70), n = Draw(rng, 1, 70), k = Draw(rng, 1, 300);
    torch::manual_seed(i);
    const torch::Tensor a = torch::randint(-127, 128, {m, k}, torch::kInt8);
    const torch::Tensor b = torch::randint(-127, 128, {n, k}, torch::kInt8);
    std::vector<int32_t> c(static_cast<size_t>(m * n));
    GemmInt8(a.data_ptr<int8_t>(), b.data_ptr<int8_t>(), m, n, k, c.data());
    const int8_t* pa = a.data_ptr<int8_t>();
    const int8_t* pb = b.data_ptr<int8_t>();
    for (int64_t r = 0; r < m; ++r)
      for (int64_t o = 0; o < n; ++o) {
        int64_t want = 0;
        for (int64_t j = 0; j < k; ++j) want += int64_t{pa[r * k + j]} * pb[o * k + j];
        ASSERT_EQ(c[r * n + o], want) << "m " << m << " n " << n << " k " << k << " at " << r << "," << o;
      }
  }
}

// |x w - xq wq| <= sum_k |x_k| sw/2 + |w_k| sx/2 + sx sw/4 (each operand within half a step).
TEST(Quant, Int8LinearIsWithinTheRoundingBound) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20; ++i) {
    const int64_t in = Draw(rng, 1, 200), out = Draw(rng, 1, 90), t = Draw(rng, 1, 30);
    torch::manual_seed(i);
    const torch::Tensor x = torch::randn({2, t, in}), w = torch::randn({out, in}) * 0.1;
    const torch::Tensor b = i % 2 ? torch::randn({out}) : torch::Tensor();
    const QuantLinear l = QuantizeLinear(w, b);
    const torch::Tensor got = Apply(l, x).to(torch::kDouble);
    const torch::Tensor want =
        torch::linear(x.to(torch::kDouble), w.to(torch::kDouble), b.defined() ? b.to(torch::kDouble) : torch::Tensor());
    const torch::Tensor xd = x.to(torch::kDouble).reshape({-1, in});
    const torch::Tensor sx = xd.abs().amax(1, true) / 127, sw = l.scale.to(torch::kDouble).unsqueeze(0);
    const torch::Tensor bound =
        torch::mm(xd.abs(), torch::ones({in, out}, torch::kDouble)) * sw / 2 +
        torch::mm(torch::ones({xd.size(0), in}, torch::kDouble), w.to(torch::kDouble).abs().t()) * sx / 2 +
        double(in) * sx * sw / 4 + 1e-4;
    EXPECT_TRUE(((got.reshape({-1, out}) - want.reshape({-1, out})).abs() <= bound).all().item<bool>())
        << "in " << in << " out " << out;
    EXPECT_LT(Dequantize(l).sub(w).abs().max().item<double>(), l.scale.max().item<double>() / 2 * 1.0001);
  }
}

// A module with one Linear layer "fc", as the tracks hold theirs.
struct OneLinear : torch::nn::Module {
  explicit OneLinear(int64_t in, int64_t out) { fc = register_module("fc", torch::nn::Linear(in, out)); }
  torch::nn::Linear fc{nullptr};
};

QuantizeOptions Int4(int64_t group, const Calibrator* calibration = nullptr) {
  QuantizeOptions o;
  o.scheme = Scheme::kInt4;
  o.group = group;
  o.calibration = calibration;
  return o;
}

// Every weight within half a step of its group's grid, zero points in 0..15, the layout's sizes;
// odd input counts and partial last groups included.
TEST(Quant, Int4RoundTripIsWithinHalfAStep) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 30; ++i) {
    const int64_t out = Draw(rng, 1, 40), in = Draw(rng, 1, 300), group = 2 * Draw(rng, 1, 70);
    torch::manual_seed(i);
    torch::Tensor w = torch::randn({out, in}) * std::pow(10.0, Draw(rng, -3, 1));
    if (i % 3 == 0) w.abs_();  // all positive: the range still holds 0
    if (i % 5 == 0) w[0].zero_();
    const QuantLinear l = QuantizeLinearInt4(w, torch::Tensor(), group, torch::Tensor());
    const int64_t groups = (in + group - 1) / group;
    ASSERT_EQ(l.q.sizes(), (std::vector<int64_t>{out, PackedBytes(in, group)}));
    ASSERT_EQ(PackedBytes(in, group), in / group * (group / 2) + (in % group + 1) / 2);
    ASSERT_EQ(l.scale.sizes(), (std::vector<int64_t>{out, groups}));
    EXPECT_LE(l.zero.max().item<int>(), 15);
    const torch::Tensor step = l.scale.repeat_interleave(group, 1).narrow(1, 0, in);
    const torch::Tensor err = (Dequantize(l) - w).abs();
    EXPECT_TRUE((err <= step / 2 * (1 + 1e-4) + 1e-7).all().item<bool>())
        << "out " << out << " in " << in << " group " << group << ": " << (err - step / 2).max().item<float>();
  }
}

// The nibbles of an int4 form as [out, in], read by the layout quant.h states (group k's L inputs
// from byte k group / 2: input j low nibble, input j + (L + 1) / 2 high nibble).
std::vector<int> Nibbles(const QuantLinear& l) {
  const int64_t out = l.out(), in = l.in, bytes = PackedBytes(in, l.group);
  const uint8_t* q = l.q.data_ptr<uint8_t>();
  std::vector<int> v(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t start = 0; start < in; start += l.group) {
      const int64_t len = std::min(l.group, in - start), half = (len + 1) / 2;
      for (int64_t j = 0; j < len; ++j) {
        const uint8_t byte = q[o * bytes + start / 2 + j % half];
        v[o * in + start + j] = j < half ? byte & 15 : byte >> 4;
      }
    }
  return v;
}

// The int4 product is an integer one: activations to int8 per row (QuantizeRows); per group the
// exact dot product of the nibbles with them; then per output, groups in order,
// f = fma(-scale zero, group sum of xq, fma(scale, dot, f)) and y = fma(f, sx, bias). Every kernel
// (each instruction set: the forced runs of this test; any thread count; any number of rows, in
// chunks and tails) gives exactly these floats, which are the float64 product of the dequantized
// activations and weights up to float rounding. Odd sizes, partial groups, groups not a multiple
// of 8 (the kernel pads them), outputs not a multiple of 16.
TEST(Quant, Int4ProductsAreExactIntegerProducts) {
  std::mt19937_64 rng(12);
  for (int i = 0; i < 40; ++i) {
    const int64_t out = Draw(rng, 1, 70), in = Draw(rng, 1, 300), group = 2 * Draw(rng, 1, 70), rows = Draw(rng, 1, 20);
    torch::manual_seed(i);
    const torch::Tensor w = torch::randn({out, in}) * 0.1, b = i % 2 ? torch::randn({out}) : torch::Tensor();
    QuantLinear l = QuantizeLinearInt4(w, b, group, torch::Tensor());
    if (i % 4 == 0) l.tiles = nullptr;  // a form nobody prepared: built as it runs
    const torch::Tensor x = torch::randn({rows, in}) * std::pow(10.0, Draw(rng, -2, 2)), y0 = torch::randn({rows, out});
    torch::Tensor xq = torch::empty({rows, in}, torch::kInt8), sx = torch::empty({rows});
    QuantizeRows(x.data_ptr<float>(), rows, in, xq.data_ptr<int8_t>(), sx.data_ptr<float>());
    const std::vector<int> q = Nibbles(l);
    const int64_t groups = Groups(in, group);
    const int8_t* a = xq.data_ptr<int8_t>();
    const float* scale = l.scale.data_ptr<float>();
    const uint8_t* zero = l.zero.data_ptr<uint8_t>();
    torch::Tensor want = torch::empty({rows, out});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) {
        float f = 0;
        for (int64_t g = 0; g < groups; ++g) {
          int64_t dot = 0, sum = 0;
          for (int64_t j = g * group; j < std::min(in, (g + 1) * group); ++j) {
            dot += int64_t{q[o * in + j]} * a[r * in + j];
            sum += a[r * in + j];
          }
          const float s = scale[o * groups + g], sz = s * static_cast<float>(zero[o * groups + g]);
          f = std::fma(-sz, static_cast<float>(sum), std::fma(s, static_cast<float>(dot), f));
        }
        want[r][o] = std::fma(f, sx[r].item<float>(), b.defined() ? b[o].item<float>() : 0.0f);
      }
    const std::string where = "out " + std::to_string(out) + " in " + std::to_string(in) + " group " +
                              std::to_string(group) + " rows " + std::to_string(rows);
    for (const bool accumulate : {false, true}) {
      torch::Tensor y = y0.clone();
      ApplyRows(l, x.data_ptr<float>(), rows, y.data_ptr<float>(), accumulate);
      EXPECT_TRUE(torch::equal(y, accumulate ? y0 + want : want)) << where << " accumulate " << accumulate;
    }
    EXPECT_TRUE(torch::equal(Apply(l, x.view({rows, 1, in})).view({rows, out}), want)) << where;
    const torch::Tensor xd = xq.to(torch::kDouble) * sx.to(torch::kDouble).unsqueeze(1);
    const torch::Tensor wd = Dequantize(l).to(torch::kDouble);
    const torch::Tensor exact = torch::linear(xd, wd, b.defined() ? b.to(torch::kDouble) : b);
    const torch::Tensor tol = torch::mm(xd.abs(), wd.abs().t()) * 1e-5 + 1e-5;
    EXPECT_TRUE(((want.to(torch::kDouble) - exact).abs() <= tol).all().item<bool>()) << where;
  }
}

// GPTQ minimises the layer's output error on its calibration inputs, which round-to-nearest
// ignores: with correlated inputs it comes out lower on every draw. The calibrator's Hessian is
// the sum of x^T x over every kHessianStride-th row.
TEST(Quant, GptqBeatsRoundToNearestOnItsCalibrationInputs) {
  for (int seed = 0; seed < 5; ++seed) {
    torch::manual_seed(100 + seed);
    OneLinear m(96, 40);
    torch::NoGradGuard no_grad;
    const torch::Tensor mix = torch::randn({96, 96}) / 8 + torch::eye(96);
    const torch::Tensor x = torch::mm(torch::randn({600, 96}) * torch::rand({1, 96}) * 3, mix);
    Calibrator c(m, Int4(32));
    models::Linear(m.fc, x.view({2, 300, 96}));
    ASSERT_EQ(c.Rows("fc"), 600 / kHessianStride);
    const torch::Tensor h = c.Hessian("fc").to(torch::kDouble), xd = x.to(torch::kDouble);
    const torch::Tensor taken = xd.slice(0, 0, 600, kHessianStride);
    EXPECT_LT((h - torch::mm(taken.t(), taken)).abs().max().item<double>(), 1e-5 * h.abs().max().item<double>());
    const QuantLinear gptq = QuantizeLinearInt4(m.fc->weight, m.fc->bias, 32, c.Hessian("fc"));
    const QuantLinear rtn = QuantizeLinearInt4(m.fc->weight, m.fc->bias, 32, torch::Tensor());
    const auto error = [&](const QuantLinear& l) {
      return torch::mm(xd, (Dequantize(l).to(torch::kDouble) - m.fc->weight.to(torch::kDouble)).t())
          .pow(2)
          .sum()
          .item<double>();
    };
    EXPECT_LT(error(gptq), 0.9 * error(rtn)) << "seed " << seed;
    const QuantizedModel q(m, Int4(32, &c));  // the same through QuantizedModel
    EXPECT_TRUE(torch::equal(q.form(0).q, gptq.q));
  }
  OneLinear m(8, 4);
  Calibrator nothing(m, Int4(4));
  EXPECT_THROW(QuantizedModel(m, Int4(4, &nothing)), UsageError);  // GPTQ without inputs
  EXPECT_THROW(QuantizeLinearInt4(m.fc->weight, m.fc->bias, 3, torch::Tensor()), UsageError);
  EXPECT_THROW(ParseScheme("int3"), UsageError);
}

// Through models::Linear: a QuantizedModel changes the model's outputs a little, and they are the
// float32 ones again once it is gone. The head stays float32 unless asked.
TEST(Quant, QuantizedModelIsCloseAndScoped) {
  for (const char* track : {"bitbyte_lm", "mamba_mlm"}) {
    pb::ModelConfig c;
    c.set_name(track);
    torch::manual_seed(5);
    auto model = CreateModel(c);
    model->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor bytes = torch::randint(256, {2, 64}, torch::kLong);
    const torch::Tensor ref = model->forward(bytes);
    torch::Tensor got;
    {
      for (const QuantizeOptions& o : {QuantizeOptions{}, Int4(64)}) {
        QuantizedModel q(*model, o);
        EXPECT_FALSE(q.layers().empty());
        for (const std::string& name : q.layers()) EXPECT_NE(name, "head") << track;
        got = model->forward(bytes);
        EXPECT_FALSE(torch::equal(got, ref)) << track << ": quantization changed nothing";
        const double rel = (got - ref).abs().mean().item<double>() / ref.abs().mean().item<double>();
        EXPECT_LT(rel, o.scheme == Scheme::kInt8 ? 0.05 : 0.25) << track << " " << SchemeName(o.scheme);
        EXPECT_THROW(QuantizedModel again(*model, QuantizeOptions{}), std::exception) << "a layer quantized twice";
      }
    }
    EXPECT_TRUE(torch::equal(model->forward(bytes), ref)) << track << ": still quantized after the scope";
    QuantizedModel with_head(*model, QuantizeOptions{true});
    EXPECT_EQ(std::count(with_head.layers().begin(), with_head.layers().end(), "head"), 1) << track;
  }
}

TEST(Quant, CalibratorRecordsTheLargestInputAndStaticScalesUseIt) {
  torch::manual_seed(9);
  OneLinear m(40, 24);
  torch::NoGradGuard no_grad;
  const torch::Tensor x1 = torch::randn({3, 5, 40}), x2 = torch::randn({7, 40}) * 3;
  float want = 0;
  {
    Calibrator c(m, QuantizeOptions{});
    EXPECT_EQ(c.AbsMax("fc"), 0.0f);
    models::Linear(m.fc, x1);
    models::Linear(m.fc, x2);
    want = std::max(x1.abs().max().item<float>(), x2.abs().max().item<float>());
    EXPECT_EQ(c.AbsMax("fc"), want);
    QuantizedModel q(m, QuantizeOptions{false, &c});
    ASSERT_EQ(q.layers().size(), 1u);
    EXPECT_FLOAT_EQ(q.form(0).act_scale, want / 127);
  }
  {
    Calibrator c(m, QuantizeOptions{});  // nothing observed: no static scale to make
    EXPECT_THROW(QuantizedModel(m, QuantizeOptions{false, &c}), UsageError);
  }
  // Static activations: within the rounding bound with sx = act_scale for inputs inside its range;
  // beyond it they clamp.
  QuantLinear l = QuantizeLinear(m.fc->weight, m.fc->bias);
  l.act_scale = want / 127;
  const torch::Tensor y = Apply(l, x2).to(torch::kDouble);
  const torch::Tensor ref =
      torch::linear(x2.to(torch::kDouble), m.fc->weight.to(torch::kDouble), m.fc->bias.to(torch::kDouble));
  const double sx = l.act_scale, sw = l.scale.max().item<double>();
  const double bound =
      40 * (x2.abs().max().item<double>() * sw / 2 + m.fc->weight.abs().max().item<double>() * sx / 2 + sx * sw / 4);
  EXPECT_LT((y - ref).abs().max().item<double>(), bound + 1e-4);
  l.act_scale = want / 127 / 4;  // a quarter of the range: large inputs clamp, the result differs
  EXPECT_GT((Apply(l, x2).to(torch::kDouble) - ref).abs().max().item<double>(), bound);
}

}  // namespace
}  // namespace bitbyte::models::quant
