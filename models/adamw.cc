#include "models/adamw.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "models/cpu_kernels.h"

namespace bitbyte::models {
namespace {

struct Coefficients {
  float keep;     // 1 - lr * decay
  float b1, c1;   // beta1, 1 - beta1
  float b2, c2;   // beta2, 1 - beta2
  float inv_bc2;  // 1 / sqrt(1 - beta2^t)
  float eps;
  float step;  // -lr / (1 - beta1^t)
};

template <typename T>
BITBYTE_KERNEL_INLINE void Update(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                                  const Coefficients& k, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float gi = g[i];
    const float mi = m[i] * k.b1 + gi * k.c1;
    const float vi = v[i] * k.b2 + gi * gi * k.c2;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * k.keep + k.step * mi / (std::sqrt(vi) * k.inv_bc2 + k.eps);
  }
}

BITBYTE_KERNEL_DISPATCH(UpdateRange, Update)

Coefficients Make(const AdamWHyper& h) {
  return Coefficients{static_cast<float>(1.0 - h.lr * h.decay),
                      static_cast<float>(h.beta1),
                      static_cast<float>(1.0 - h.beta1),
                      static_cast<float>(h.beta2),
                      static_cast<float>(1.0 - h.beta2),
                      static_cast<float>(1.0 / h.bc2_sqrt),
                      static_cast<float>(h.eps),
                      static_cast<float>(-h.lr / h.bc1)};
}

// The dynamic map: 0, 1, and for each decade d = 0..6 the midpoints of n_d equal steps of
// [0.1, 1], times 10^(d - 6) (n_d = 2^d, both signs, for the signed map; 2^(d + 1) for the
// unsigned one), so that small values (most of a block) are not rounded to zero down to 1e-7 of
// the block's maximum, and larger ones are finer. 2 + 2 (1 + 2 + ... + 64) = 256 and 2 + (2 + ... + 128) =
// 256 values.
std::array<float, 256> BuildCodes(bool is_signed) {
  std::vector<double> v{0.0, 1.0};
  for (int d = 0; d < 7; ++d) {
    const int n = is_signed ? 1 << d : 2 << d;
    const double scale = std::pow(10.0, d - 6);
    for (int j = 0; j < n; ++j) {
      const double mid = 0.1 + 0.9 * (j + 0.5) / n;
      v.push_back(scale * mid);
      if (is_signed) v.push_back(-scale * mid);
    }
  }
  std::sort(v.begin(), v.end());
  std::array<float, 256> codes{};
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<float>(v[i]);
  return codes;
}

// The index of the code nearest to x (the lower one on a tie): the last code <= x by binary
// search, then it or the next.
BITBYTE_KERNEL_INLINE uint8_t Nearest(const float* c, float x) {
  int lo = 0;
  for (int step = 128; step > 0; step >>= 1)
    if (c[lo + step] <= x) lo += step;
  const int hi = lo < 255 ? lo + 1 : 255;
  return static_cast<uint8_t>(c[hi] - x < x - c[lo] ? hi : lo);
}

BITBYTE_KERNEL_INLINE void EncodeBlock(const float* x, int64_t n, float max, const float* c, uint8_t* codes) {
  const float inv = max > 0 ? 1.0f / max : 0.0f;
  for (int64_t i = 0; i < n; ++i) codes[i] = Nearest(c, x[i] * inv);
}

// Blocks b0..b1 of one 8-bit AdamW update (AdamW8Update): decode, the arithmetic of Update, encode.
template <typename T>
BITBYTE_KERNEL_INLINE void Update8(T* __restrict p, const T* __restrict g, uint8_t* __restrict mc,
                                   uint8_t* __restrict vc, T* m_max, T* v_max, int64_t numel, const Coefficients& k,
                                   int64_t b0, int64_t b1) {
  const float* sc = SignedCodes().data();
  const float* uc = UnsignedCodes().data();
  T m[kStateBlock], v[kStateBlock];
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t start = b * kStateBlock, n = std::min(kStateBlock, numel - start);
    const T m0 = m_max[b], v0 = v_max[b];
    T am = 0, av = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = start + i;
      const T gi = g[at];
      const T mi = sc[mc[at]] * m0 * k.b1 + gi * k.c1;
      const T vi = uc[vc[at]] * v0 * k.b2 + gi * gi * k.c2;
      m[i] = mi;
      v[i] = vi;
      p[at] = p[at] * k.keep + k.step * mi / (std::sqrt(vi) * k.inv_bc2 + k.eps);
      am = std::max(am, std::abs(mi));
      av = std::max(av, vi);
    }
    EncodeBlock(m, n, am, sc, mc + start);
    EncodeBlock(v, n, av, uc, vc + start);
    m_max[b] = am;
    v_max[b] = av;
  }
}

BITBYTE_KERNEL_DISPATCH(Update8Range, Update8)

int64_t Blocks(int64_t numel) { return (numel + kStateBlock - 1) / kStateBlock; }

}  // namespace

const std::array<float, 256>& SignedCodes() {
  static const std::array<float, 256> codes = BuildCodes(true);
  return codes;
}

const std::array<float, 256>& UnsignedCodes() {
  static const std::array<float, 256> codes = BuildCodes(false);
  return codes;
}

Moments8 ZeroMoments8(int64_t numel) {
  Moments8 s;
  const auto zero_code = [](const std::array<float, 256>& c) {
    return static_cast<int64_t>(std::find(c.begin(), c.end(), 0.0f) - c.begin());
  };
  s.m = torch::full({numel}, zero_code(SignedCodes()), torch::kByte);
  s.v = torch::full({numel}, zero_code(UnsignedCodes()), torch::kByte);
  s.m_max = torch::zeros({Blocks(numel)});
  s.v_max = torch::zeros({Blocks(numel)});
  return s;
}

void Encode8(const torch::Tensor& x, bool is_signed, torch::Tensor& codes, torch::Tensor& maxima) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.is_contiguous(),
              "Encode8: x must be contiguous float32 on the CPU");
  const int64_t numel = x.numel();
  codes = torch::empty({numel}, torch::kByte);
  maxima = torch::empty({Blocks(numel)});
  const float* px = x.data_ptr<float>();
  const float* c = is_signed ? SignedCodes().data() : UnsignedCodes().data();
  for (int64_t b = 0; b < Blocks(numel); ++b) {
    const int64_t start = b * kStateBlock, n = std::min(kStateBlock, numel - start);
    float max = 0;
    for (int64_t i = 0; i < n; ++i) max = std::max(max, std::abs(px[start + i]));
    EncodeBlock(px + start, n, max, c, codes.data_ptr<uint8_t>() + start);
    maxima.data_ptr<float>()[b] = max;
  }
}

torch::Tensor Decode8(const torch::Tensor& codes, const torch::Tensor& maxima, bool is_signed) {
  const torch::Tensor map = torch::from_blob(
      const_cast<float*>(is_signed ? SignedCodes().data() : UnsignedCodes().data()), {256}, torch::kFloat);
  const torch::Tensor blockwise = maxima.repeat_interleave(kStateBlock).narrow(0, 0, codes.numel());
  return map.index_select(0, codes.to(torch::kLong)) * blockwise;
}

void AdamW8Update(torch::Tensor& p, const torch::Tensor& g, Moments8& s, const AdamWHyper& h) {
  torch::NoGradGuard no_grad;
  const int64_t numel = p.numel();
  TORCH_CHECK(p.device().is_cpu() && p.scalar_type() == torch::kFloat && g.scalar_type() == torch::kFloat &&
                  p.is_contiguous() && g.is_contiguous(),
              "AdamW8Update: p and g must be contiguous float32 on the CPU");
  TORCH_CHECK(s.m.numel() == numel && s.m_max.numel() == Blocks(numel), "AdamW8Update: moments of ", s.m.numel(),
              " for a parameter of ", numel);
  const Coefficients k = Make(h);
  float* pp = p.data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  uint8_t *mc = s.m.data_ptr<uint8_t>(), *vc = s.v.data_ptr<uint8_t>();
  float *mm = s.m_max.data_ptr<float>(), *vm = s.v_max.data_ptr<float>();
  at::parallel_for(0, Blocks(numel), 16,
                   [&](int64_t b0, int64_t b1) { Update8Range<float>(pp, pg, mc, vc, mm, vm, numel, k, b0, b1); });
}

void AdamWUpdate(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& exp_avg, torch::Tensor& exp_avg_sq,
                 const AdamWHyper& h) {
  torch::NoGradGuard no_grad;
  const bool fused = p.device().is_cpu() && p.scalar_type() == torch::kFloat && g.scalar_type() == torch::kFloat &&
                     p.is_contiguous() && g.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous();
  if (!fused) {
    if (h.decay > 0) p.mul_(1.0 - h.lr * h.decay);
    exp_avg.mul_(h.beta1).add_(g, 1.0 - h.beta1);
    exp_avg_sq.mul_(h.beta2).addcmul_(g, g, 1.0 - h.beta2);
    const torch::Tensor denom = (exp_avg_sq.sqrt() / h.bc2_sqrt).add_(h.eps);
    p.addcdiv_(exp_avg, denom, -h.lr / h.bc1);
    return;
  }
  const Coefficients k = Make(h);
  float *pp = p.data_ptr<float>(), *pm = exp_avg.data_ptr<float>(), *pv = exp_avg_sq.data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  at::parallel_for(0, p.numel(), 1 << 15,
                   [&](int64_t begin, int64_t end) { UpdateRange<float>(pp, pg, pm, pv, k, begin, end); });
}

}  // namespace bitbyte::models
