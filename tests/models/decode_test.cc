// The generation step's kernels (models/decode.h) against LibTorch on random shapes, odd sizes
// and tails included; ctest runs them again with each instruction set forced.
#include "models/decode.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

#include "tests/test_util.h"

namespace bitbyte::models {
namespace {

using testing::Draw;

double MaxDiff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(Decode, LinearEqualsTorchLinear) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 40; ++i) {
    const int64_t in = Draw(rng, 1, 300), out = Draw(rng, 1, 300), rows = Draw(rng, 1, 5);
    const bool bias = rng() % 2 == 0, accumulate = rng() % 2 == 0;
    torch::manual_seed(i);
    const torch::Tensor w = torch::randn({out, in}), b = torch::randn({out}), x = torch::randn({rows, in});
    const torch::Tensor y0 = torch::randn({rows, out});
    torch::Tensor y = y0.clone();
    decode::Linear(w.data_ptr<float>(), bias ? b.data_ptr<float>() : nullptr, in, out, x.data_ptr<float>(), rows,
                   y.data_ptr<float>(), accumulate);
    torch::Tensor want = torch::linear(x.to(torch::kDouble), w.to(torch::kDouble));
    if (bias) want += b.to(torch::kDouble);
    if (accumulate) want += y0.to(torch::kDouble);
    // float32 sums of `in` products of unit normals: error ~ 1e-7 sqrt(in) |terms|.
    EXPECT_LT(MaxDiff(y.to(torch::kDouble), want), 1e-5 * std::sqrt(double(in)) * 4)
        << "in " << in << " out " << out << " rows " << rows;
  }
}

TEST(Decode, LayerNormEqualsTorchLayerNorm) {
  std::mt19937_64 rng(6);
  for (int i = 0; i < 20; ++i) {
    const int64_t d = Draw(rng, 1, 200), rows = Draw(rng, 1, 4);
    torch::manual_seed(i);
    const torch::Tensor x = torch::randn({rows, d}) * 3 + 1, g = torch::randn({d}), beta = torch::randn({d});
    torch::Tensor y = torch::empty({rows, d});
    decode::LayerNorm(x.data_ptr<float>(), g.data_ptr<float>(), beta.data_ptr<float>(), 1e-5, rows, d,
                      y.data_ptr<float>());
    const torch::Tensor want =
        torch::layer_norm(x.to(torch::kDouble), {d}, g.to(torch::kDouble), beta.to(torch::kDouble), 1e-5);
    EXPECT_LT(MaxDiff(y.to(torch::kDouble), want), 1e-4) << "d " << d;
  }
}

TEST(Decode, AttendOneEqualsSoftmaxAttention) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 30; ++i) {
    const int64_t heads = Draw(rng, 1, 6), dh = Draw(rng, 1, 40), n = Draw(rng, 1, 300), d = heads * dh;
    torch::manual_seed(i);
    const torch::Tensor q = torch::randn({d}) * 2, k = torch::randn({n, d}), v = torch::randn({n, d});
    torch::Tensor y = torch::empty({d});
    std::vector<float> scores(heads * n);
    decode::AttendOne(q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), n, heads, dh, y.data_ptr<float>(),
                      scores.data());
    const auto qd = q.to(torch::kDouble).view({heads, 1, dh}), kd = k.to(torch::kDouble).view({n, heads, dh}),
               vd = v.to(torch::kDouble).view({n, heads, dh});
    const torch::Tensor p = torch::softmax(torch::matmul(qd, kd.permute({1, 2, 0})) / std::sqrt(double(dh)), -1);
    const torch::Tensor want = torch::matmul(p, vd.permute({1, 0, 2})).reshape({d});
    EXPECT_LT(MaxDiff(y.to(torch::kDouble), want), 1e-5) << "heads " << heads << " dh " << dh << " n " << n;
  }
}

TEST(Decode, GeluInPlaceEqualsTorchGelu) {
  const torch::Tensor x = torch::linspace(-12, 12, 4099);
  torch::Tensor y = x.clone();
  decode::GeluInPlace(y.data_ptr<float>(), y.numel());
  EXPECT_LT(MaxDiff(y.to(torch::kDouble), torch::gelu(x.to(torch::kDouble))), 1e-5);
}

}  // namespace
}  // namespace bitbyte::models
