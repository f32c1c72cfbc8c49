// The one-pass AdamW update against the composed tensor ops it replaces (torch.optim.AdamW's
// arithmetic): several steps on random tensors of odd sizes, with and without weight decay,
// within float32 rounding; the same result whatever the thread count. And the 8-bit moments:
// their code maps, block-wise encoding, tracking float32 AdamW, thread-count independence.
#include "models/adamw.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

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

// Both maps: 256 codes, strictly ascending, 0 and 1 among them; the signed one symmetric about 0
// but for the 1 (its least value is the negative of its second largest), the unsigned one >= 0;
// every magnitude x in decade d (10^(d - 7) .. 10^(d - 6), d = 0..6) within half a step of a
// code, the decade cut in 2^d steps (signed) or 2^(d + 1) (unsigned): not rounded to zero down to
// 1e-7 of the block's maximum, finer the larger it is.
TEST(AdamW8, CodeMapsAreDynamic) {
  for (const bool is_signed : {true, false}) {
    const std::array<float, 256>& c = is_signed ? SignedCodes() : UnsignedCodes();
    for (size_t i = 1; i < c.size(); ++i) ASSERT_LT(c[i - 1], c[i]) << i;
    EXPECT_NE(std::find(c.begin(), c.end(), 0.0f), c.end());
    EXPECT_EQ(c.back(), 1.0f);
    EXPECT_EQ(c.front(), is_signed ? -c[254] : 0.0f);
    for (double x = 1.01e-7; x <= 1; x *= 1.03) {
      const int d = std::min(6, static_cast<int>(std::floor(std::log10(x) + 7)));
      const double half_step = 0.45 * std::pow(10.0, d - 6) / (is_signed ? 1 << d : 2 << d);
      double best = 1e9;
      for (const float v : c) best = std::min(best, std::abs(v - x));
      EXPECT_LE(best, half_step * 1.0001) << x << (is_signed ? " signed" : " unsigned");
      if (is_signed) {
        double neg = 1e9;
        for (const float v : c) neg = std::min(neg, std::abs(v + x));
        EXPECT_LE(neg, half_step * 1.0001) << -x;
      }
    }
  }
}

// Encode8 picks, per element, the code nearest to x / (its block's max |x|), blocks of kStateBlock
// with a partial last one; a block's largest positive value comes back exactly; Decode8 gives
// code value x block max.
TEST(AdamW8, EncodingPicksTheNearestCode) {
  torch::manual_seed(14);
  for (const int64_t n : {1, 100, 2048, 2049, 5000}) {
    for (const bool is_signed : {true, false}) {
      torch::Tensor x = torch::randn({n}) * torch::exp(torch::randn({n}) * 3);
      if (!is_signed) x = x.abs();
      torch::Tensor codes, maxima;
      Encode8(x, is_signed, codes, maxima);
      ASSERT_EQ(maxima.numel(), (n + kStateBlock - 1) / kStateBlock);
      const std::array<float, 256>& c = is_signed ? SignedCodes() : UnsignedCodes();
      const torch::Tensor back = Decode8(codes, maxima, is_signed);
      for (int64_t i = 0; i < n; ++i) {
        // (as the encoder scales: times the reciprocal of the block's maximum)
        const float max = maxima[i / kStateBlock].item<float>(), v = x[i].item<float>() * (1.0f / max);
        const int k = codes[i].item<int>();
        for (const int j : {k - 1, k + 1}) {
          if (j >= 0 && j < 256) {
            ASSERT_LE(std::abs(v - c[k]), std::abs(v - c[j])) << "n " << n << " at " << i;
          }
        }
        ASSERT_EQ(back[i].item<float>(), c[k] * max);
        if (x[i].item<float>() == max) {
          ASSERT_EQ(back[i].item<float>(), max);
        }
      }
    }
  }
  // At and around every midpoint between neighbouring codes (and at each code), with the block's
  // maximum 1: the nearest code, the lower one on a tie, as a search over all 256 finds it.
  for (const bool is_signed : {true, false}) {
    const std::array<float, 256>& c = is_signed ? SignedCodes() : UnsignedCodes();
    std::vector<float> values{1.0f};
    for (int i = 0; i < 255; ++i) {
      const float mid = (c[i] + c[i + 1]) / 2;
      for (const float v : {c[i], mid, std::nextafter(mid, -2.0f), std::nextafter(mid, 2.0f)})
        if (std::abs(v) <= 1) values.push_back(v);
    }
    const torch::Tensor x = torch::tensor(values);
    torch::Tensor codes, maxima;
    Encode8(x, is_signed, codes, maxima);
    for (size_t i = 0; i < values.size(); ++i) {
      int best = 0;
      for (int k = 1; k < 256; ++k)
        if (std::abs(values[i] - c[k]) < std::abs(values[i] - c[best])) best = k;
      ASSERT_EQ(codes[static_cast<int64_t>(i)].item<int>(), best) << (is_signed ? "signed " : "unsigned ") << values[i];
    }
  }
  torch::Tensor codes, maxima;  // all zeros: maxima 0, every code 0's
  Encode8(torch::zeros({3000}), true, codes, maxima);
  EXPECT_TRUE(torch::equal(Decode8(codes, maxima, true), torch::zeros({3000})));
}

// 8-bit moments follow float32 AdamW: over 100 steps of noisy gradients around a fixed direction
// the weights move within 5% of the float32 update's total movement; the decoded moments stay
// within the bound their encoding implies: each step adds at most half a step of the top decade
// (0.45 / 64 of the block's maximum for exp_avg, 0.45 / 128 for exp_avg_sq), which the moment's
// decay beta shrinks by beta a step: at most that / (1 - beta) of the largest maximum seen.
// From zero moments (ZeroMoments8).
TEST(AdamW8, TracksFloat32AdamW) {
  torch::manual_seed(15);
  const int64_t n = 5000;
  const torch::Tensor p0 = torch::randn({n}), dir = torch::randn({n});
  torch::Tensor p32 = p0.clone(), m = torch::zeros({n}), v = torch::zeros({n}), p8 = p0.clone();
  Moments8 s = ZeroMoments8(n);
  EXPECT_TRUE(torch::equal(Decode8(s.m, s.m_max, true), torch::zeros({n})));
  double m_top = 0, v_top = 0;
  for (int t = 1; t <= 100; ++t) {
    const torch::Tensor g = dir * 0.1 + torch::randn({n}) * 0.1;
    const AdamWHyper h{1e-3, 0.9, 0.95, 1e-8, 0.1, 1 - std::pow(0.9, t), std::sqrt(1 - std::pow(0.95, t))};
    AdamWUpdate(p32, g, m, v, h);
    AdamW8Update(p8, g, s, h);
    m_top = std::max(m_top, s.m_max.max().item<double>());
    v_top = std::max(v_top, s.v_max.max().item<double>());
  }
  const double moved = (p32 - p0).abs().max().item<double>();
  EXPECT_GT(moved, 0.05);
  EXPECT_LT((p8 - p32).abs().max().item<double>(), 0.05 * moved);
  const double m_err = (Decode8(s.m, s.m_max, true) - m).abs().max().item<double>();
  const double v_err = (Decode8(s.v, s.v_max, false) - v).abs().max().item<double>();
  EXPECT_LT(m_err, 0.45 / 64 / (1 - 0.9) * m_top);
  EXPECT_LT(v_err, 0.45 / 128 / (1 - 0.95) * v_top);
  EXPECT_GT(m_err, 0);  // really 8-bit
  std::printf("moments' largest error: exp_avg %.4f of its maximum, exp_avg_sq %.4f\n", m_err / m_top, v_err / v_top);
}

TEST(AdamW8, SameBitsWhateverTheThreadCount) {
  torch::manual_seed(16);
  const int64_t n = 200003;
  const torch::Tensor p0 = torch::randn({n}), g = torch::randn({n});
  const AdamWHyper h{1e-3, 0.9, 0.95, 1e-8, 0.1, 0.1, std::sqrt(0.05)};
  torch::Tensor p[3];
  Moments8 s[3];
  const int before = at::get_num_threads();
  for (int i = 0; i < 3; ++i) {
    at::set_num_threads(i + 1);
    p[i] = p0.clone();
    s[i] = ZeroMoments8(n);
    for (int k = 0; k < 3; ++k) AdamW8Update(p[i], g * (k + 1), s[i], h);
  }
  at::set_num_threads(before);
  for (int i = 1; i < 3; ++i) {
    EXPECT_TRUE(torch::equal(p[0], p[i]));
    EXPECT_TRUE(torch::equal(s[0].m, s[i].m) && torch::equal(s[0].v, s[i].v));
    EXPECT_TRUE(torch::equal(s[0].m_max, s[i].m_max) && torch::equal(s[0].v_max, s[i].v_max));
  }
}

}  // namespace
}  // namespace bitbyte::models
