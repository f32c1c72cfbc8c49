#include "models/quant.h"

#include <ATen/Parallel.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <tuple>
#include <unordered_map>

#include "base/cpu.h"
#include "base/error.h"
#include "models/by_weight.h"
#include "models/cpu_kernels.h"
#include "models/linear.h"
#include "models/precision.h"
#include "models/ternary.h"

namespace bitbyte::models::quant {

// The int4 weights of a layer re-laid for its integer kernel (built once, as a form is made or
// loaded). Outputs in blocks of 16, each group's inputs padded to a multiple of 8 (zero weights),
// and per block a tile of 64 bytes per 8 padded inputs: byte 4 o + j holds q[o, 8 k + j] in its
// low nibble and q[o, 8 k + 4 + j] in its high one, for the block's outputs o = 0..15 (zeros past
// `out`). Scales and scale x zero point per block and group, 16 floats each (zeros past `out`).
struct Int4Tiles {
  int64_t blocks = 0, tiles = 0, in_padded = 0;  // tiles per block: in_padded / 8
  std::vector<int64_t> group_start;              // padded column where group g starts; back(): in_padded
  std::vector<uint8_t> w;                        // [blocks, tiles, 64]
  std::vector<float> scale, scale_zero;          // [blocks, groups, 16]
};

namespace {

ByWeight<const QuantLinear>& Quantized() {
  static ByWeight<const QuantLinear> r;
  return r;
}

}  // namespace

struct Calibrator::Layer {
  std::mutex mu;
  float abs_max = 0;
  bool hessian = false;  // record x^T x
  torch::Tensor h;       // [in, in] float32, once an input came
  int64_t rows = 0;
};

namespace {

ByWeight<Calibrator::Layer>& Observed() {
  static ByWeight<Calibrator::Layer> r;
  return r;
}

// The Linear layers `options` quantizes, by module name.
std::vector<std::pair<std::string, torch::nn::LinearImpl*>> Covered(torch::nn::Module& model,
                                                                    const QuantizeOptions& options) {
  std::vector<std::pair<std::string, torch::nn::LinearImpl*>> out;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    auto* linear = dynamic_cast<torch::nn::LinearImpl*>(item.value().get());
    if (linear != nullptr && (options.head || item.key() != "head")) out.emplace_back(item.key(), linear);
  }
  return out;
}

constexpr int kLanes = 16;

// max |x[i]| over n floats. On the bits: with the sign cleared, the order of IEEE floats is that
// of their bit patterns as unsigned integers, and integer maxima vectorise (float ones do not
// without -ffast-math). A NaN comes out as a NaN.
using AliasedBits = uint32_t __attribute__((may_alias));
BITBYTE_KERNEL_INLINE float AbsMax(const float* x, int64_t n) {
  const auto* bits = reinterpret_cast<const AliasedBits*>(x);
  uint32_t lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = std::max(lane[j], bits[i + j] & 0x7fffffffu);
  uint32_t m = 0;
  for (int j = 0; j < kLanes; ++j) m = std::max(m, lane[j]);
  for (; i < n; ++i) m = std::max(m, bits[i] & 0x7fffffffu);
  float f;
  std::memcpy(&f, &m, sizeof f);
  return f;
}

// Rows of x to int8 (QuantizeRows). Written to vectorise: the maximum over lanes, rounding to
// nearest (ties to even) by adding and subtracting 1.5 * 2^23 (exact for |v| <= 127.5).
// `fixed` > 0: that scale for every row (static activations; values beyond it clamp).
template <typename T>
BITBYTE_KERNEL_INLINE void QuantizeRowsImpl(const T* x, int64_t rows, int64_t cols, int8_t* q, T* scale, T fixed) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict xr = x + r * cols;
    int8_t* __restrict qr = q + r * cols;
    const T m = fixed > 0 ? T{0} : AbsMax(xr, cols);
    const T s = fixed > 0 ? fixed : m > 0 ? m / T{127} : T{1};
    const T inv = T{1} / s;
    for (int64_t c = 0; c < cols; ++c) {
      T v = xr[c] * inv;
      v = std::min(T{127}, std::max(T{-127}, v));
      v = (v + T{12582912}) - T{12582912};
      qr[c] = static_cast<int8_t>(static_cast<int32_t>(v));
    }
    scale[r] = s;
  }
}

// y[r, o] = acc[r, o] sx[r] sw[o] + bias[o] for rows [begin, end); with `accumulate` added to y.
template <typename T>
BITBYTE_KERNEL_INLINE void DequantizeRowsImpl(const int32_t* acc, const T* sx, const T* sw, const T* bias, int64_t out,
                                              T* y, int64_t begin, int64_t end, bool accumulate) {
  for (int64_t r = begin; r < end; ++r) {
    const int32_t* __restrict a = acc + r * out;
    T* __restrict yr = y + r * out;
    const T s = sx[r];
    if (accumulate) {
      if (bias != nullptr) {
        for (int64_t o = 0; o < out; ++o) yr[o] += static_cast<T>(a[o]) * s * sw[o] + bias[o];
      } else {
        for (int64_t o = 0; o < out; ++o) yr[o] += static_cast<T>(a[o]) * s * sw[o];
      }
    } else if (bias != nullptr) {
      for (int64_t o = 0; o < out; ++o) yr[o] = static_cast<T>(a[o]) * s * sw[o] + bias[o];
    } else {
      for (int64_t o = 0; o < out; ++o) yr[o] = static_cast<T>(a[o]) * s * sw[o];
    }
  }
}

// The int4 product on the tile layout (Int4Tiles): rows r0..r1 (at most kTileRows) of int8
// activations xq [rows, t.in_padded] (zeros in each group's padding), their scales sx and group
// sums asum [rows, groups], against output blocks b0..b1. Per block and group the integer dot
// products are exact in int32; then, per output, f += scale dot and f -= scale zero asum (fused
// multiply-adds, groups in order), and y = f sx + bias. Written with std::fma in the same order as
// the VNNI kernel, so every instruction set gives the same floats.
template <typename T>
BITBYTE_KERNEL_INLINE void Int4TilesRows(const Int4Tiles& t, const int8_t* xq, const T* sx, const T* asum,
                                         const T* bias, int64_t out, T* y, bool accumulate, int64_t r0, int64_t r1,
                                         int64_t b0, int64_t b1) {
  const int64_t groups = static_cast<int64_t>(t.group_start.size()) - 1;
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t r = r0; r < r1; ++r) {
      const int8_t* xr = xq + r * t.in_padded;
      T f[kLanes] = {};
      for (int64_t g = 0; g < groups; ++g) {
        int32_t acc[kLanes] = {};
        for (int64_t k = t.group_start[g] / 8; k < t.group_start[g + 1] / 8; ++k) {
          const uint8_t* w = t.w.data() + (b * t.tiles + k) * 64;
          const int8_t* x = xr + 8 * k;
          for (int lane = 0; lane < kLanes; ++lane)
            for (int j = 0; j < 4; ++j) acc[lane] += (w[4 * lane + j] & 15) * x[j] + (w[4 * lane + j] >> 4) * x[4 + j];
        }
        const T* s = t.scale.data() + (b * groups + g) * kLanes;
        const T* sz = t.scale_zero.data() + (b * groups + g) * kLanes;
        const T a = asum[r * groups + g];
        for (int lane = 0; lane < kLanes; ++lane)
          f[lane] = std::fma(-sz[lane], a, std::fma(s[lane], static_cast<T>(acc[lane]), f[lane]));
      }
      for (int64_t lane = 0; lane < std::min<int64_t>(kLanes, out - b * kLanes); ++lane) {
        const int64_t o = b * kLanes + lane;
        const T v = std::fma(f[lane], sx[r], bias != nullptr ? bias[o] : T{0});
        y[r * out + o] = accumulate ? y[r * out + o] + v : v;
      }
    }
}

// Rows o0..o1 of the int4 weight as floats, w [out, in].
template <typename T>
BITBYTE_KERNEL_INLINE void Int4Dequantize(const uint8_t* q, const T* scale, const uint8_t* zero, int64_t in,
                                          int64_t group, T* w, int64_t o0, int64_t o1) {
  const int64_t groups = Groups(in, group), bytes = PackedBytes(in, group);
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t start = g * group, len = std::min(group, in - start), half = (len + 1) / 2;
      const uint8_t* __restrict p = q + o * bytes + start / 2;
      T* __restrict lo = w + o * in + start;
      T* __restrict hi = lo + half;
      const T s = scale[o * groups + g], z = static_cast<T>(zero[o * groups + g]);
      for (int64_t j = 0; j < len / 2; ++j) {
        lo[j] = s * (static_cast<T>(p[j] & 15) - z);
        hi[j] = s * (static_cast<T>(p[j] >> 4) - z);
      }
      if (len % 2 != 0) lo[half - 1] = s * (static_cast<T>(p[half - 1] & 15) - z);
    }
}

// sum_c a[c] b[c] in 16 lanes (a vector of the compiler's: one AVX-512 register, or two AVX2 or four
// SSE ones), the lanes then in order, without contraction (ISO C++: -ffp-contract=off): the same
// floats on every instruction set.
template <typename T>
BITBYTE_KERNEL_INLINE T LaneDot(const T* __restrict a, const T* __restrict b, int64_t n) {
  typedef T Lanes __attribute__((vector_size(kLanes * sizeof(T))));
  Lanes lanes = {};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    Lanes u, v;
    std::memcpy(&u, a + c, sizeof u);
    std::memcpy(&v, b + c, sizeof v);
    lanes += u * v;
  }
  for (; c < n; ++c) lanes[c % kLanes] += a[c] * b[c];
  T sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

// Rows r0..r1 of x [rows, cols] divided by their root mean square (LaneDot), then to int8
// (QuantizeRowsImpl) through `row` (cols floats); with `norm`, each row's 1 / rms.
template <typename T>
BITBYTE_KERNEL_INLINE void TernaryRowsImpl(const T* x, int64_t cols, int8_t* q, T* scale, T* norm, T* row, int64_t r0,
                                           int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict xr = x + r * cols;
    const T inv = T{1} / std::sqrt(LaneDot(xr, xr, cols) / static_cast<T>(cols) + T{1e-6});
    if (norm != nullptr) norm[r] = inv;
    T* __restrict d = row;
    for (int64_t k = 0; k < cols; ++k) d[k] = xr[k] * inv;
    QuantizeRowsImpl<T>(row, 1, cols, q + r * cols, scale + r, T{0});
  }
}

BITBYTE_KERNEL_DISPATCH(QuantizeKernel, QuantizeRowsImpl)
BITBYTE_KERNEL_DISPATCH(TernaryRowsKernel, TernaryRowsImpl)

// Rows r0..r1 of the gradient through the RMS norm xin = x s (s = norm[r]):
// dx = s g - x s^3 mean(g x).
template <typename T>
BITBYTE_KERNEL_INLINE void RmsGradImpl(const T* x, const T* g, const T* norm, int64_t cols, T* dx, int64_t r0,
                                       int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict xr = x + r * cols;
    const T* __restrict gr = g + r * cols;
    T* __restrict d = dx + r * cols;
    const T s = norm[r], c = s * s * s * (LaneDot(gr, xr, cols) / static_cast<T>(cols));
    for (int64_t k = 0; k < cols; ++k) d[k] = s * gr[k] - xr[k] * c;
  }
}
BITBYTE_KERNEL_DISPATCH(RmsGradKernel, RmsGradImpl)
BITBYTE_KERNEL_DISPATCH(DequantizeKernel, DequantizeRowsImpl)
BITBYTE_KERNEL_DISPATCH(Int4TilesGenericKernel, Int4TilesRows)

#if defined(__x86_64__)
// Int4TilesRows with AVX-512 VNNI, R rows at once (each 64-byte tile is unpacked once for all of
// them): the low nibbles of a tile are 16 outputs x inputs 8k..8k+3, the high ones 16 x 8k+4..8k+7,
// and vpdpbusd multiplies those unsigned bytes by four activation bytes broadcast to every lane,
// summing into the 16 outputs' int32 lanes.
template <int R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma"))) void Int4TilesVnni(
    const Int4Tiles& t, const int8_t* xq, const float* sx, const float* asum, const float* bias, int64_t out, float* y,
    bool accumulate, int64_t r0, int64_t b0, int64_t b1) {
  const int64_t groups = static_cast<int64_t>(t.group_start.size()) - 1;
  const __m512i mask = _mm512_set1_epi8(0x0f);
  const int8_t* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = xq + (r0 + r) * t.in_padded;
  for (int64_t b = b0; b < b1; ++b) {
    __m512 f[R];
    for (int r = 0; r < R; ++r) f[r] = _mm512_setzero_ps();
    const uint8_t* w = t.w.data() + b * t.tiles * 64;
    for (int64_t g = 0; g < groups; ++g) {
      __m512i acc[R];
      for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
      for (int64_t k = t.group_start[g] / 8; k < t.group_start[g + 1] / 8; ++k) {
        const __m512i v = _mm512_loadu_si512(w + k * 64);
        const __m512i lo = _mm512_and_si512(v, mask), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
        for (int r = 0; r < R; ++r) {
          int32_t a, c;
          std::memcpy(&a, xr[r] + 8 * k, 4);
          std::memcpy(&c, xr[r] + 8 * k + 4, 4);
          acc[r] = _mm512_dpbusd_epi32(acc[r], lo, _mm512_set1_epi32(a));
          acc[r] = _mm512_dpbusd_epi32(acc[r], hi, _mm512_set1_epi32(c));
        }
      }
      // (the masked conversion: GCC 12 warns of the unmasked one's undefined operand)
      const __m512 s = _mm512_loadu_ps(t.scale.data() + (b * groups + g) * kLanes);
      const __m512 sz = _mm512_loadu_ps(t.scale_zero.data() + (b * groups + g) * kLanes);
      for (int r = 0; r < R; ++r)
        f[r] = _mm512_fnmadd_ps(sz, _mm512_set1_ps(asum[(r0 + r) * groups + g]),
                                _mm512_fmadd_ps(s, _mm512_maskz_cvtepi32_ps(0xffff, acc[r]), f[r]));
    }
    const int64_t n = std::min<int64_t>(kLanes, out - b * kLanes);
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1);
    const __m512 bv = bias != nullptr ? _mm512_maskz_loadu_ps(m, bias + b * kLanes) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      float* yr = y + (r0 + r) * out + b * kLanes;
      __m512 v = _mm512_fmadd_ps(f[r], _mm512_set1_ps(sx[r0 + r]), bv);
      if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, yr), v);
      _mm512_mask_storeu_ps(yr, m, v);
    }
  }
}
#endif

// Rows r0..r1 (up to kTileRows) against output blocks b0..b1, on the best kernel this CPU has.
void Int4TilesKernel(const Int4Tiles& t, const int8_t* xq, const float* sx, const float* asum, const float* bias,
                     int64_t out, float* y, bool accumulate, int64_t r0, int64_t r1, int64_t b0, int64_t b1) {
#if defined(__x86_64__)
  if (kernels::CpuIsa() == kernels::Isa::kAvx512 && cpu::This().avx512_vnni) {
    switch (r1 - r0) {
      case 1: return Int4TilesVnni<1>(t, xq, sx, asum, bias, out, y, accumulate, r0, b0, b1);
      case 2: return Int4TilesVnni<2>(t, xq, sx, asum, bias, out, y, accumulate, r0, b0, b1);
      case 3: return Int4TilesVnni<3>(t, xq, sx, asum, bias, out, y, accumulate, r0, b0, b1);
      case 4: return Int4TilesVnni<4>(t, xq, sx, asum, bias, out, y, accumulate, r0, b0, b1);
      case 5: return Int4TilesVnni<5>(t, xq, sx, asum, bias, out, y, accumulate, r0, b0, b1);
      case 6: return Int4TilesVnni<6>(t, xq, sx, asum, bias, out, y, accumulate, r0, b0, b1);
      case 7: return Int4TilesVnni<7>(t, xq, sx, asum, bias, out, y, accumulate, r0, b0, b1);
      case 8: return Int4TilesVnni<8>(t, xq, sx, asum, bias, out, y, accumulate, r0, b0, b1);
      default: break;
    }
  }
#endif
  Int4TilesGenericKernel<float>(t, xq, sx, asum, bias, out, y, accumulate, r0, r1, b0, b1);
}
BITBYTE_KERNEL_DISPATCH(Int4DequantizeKernel, Int4Dequantize)

// Asymmetric 4-bit parameters of each row of w [out, len] (a group): the range [min, max] widened
// to hold 0, in 15 steps; a row of zeros gets scale 1. Returns scale [out] and zero [out] (float).
std::pair<torch::Tensor, torch::Tensor> GroupParams(const torch::Tensor& w) {
  const torch::Tensor lo = w.amin(1).clamp_max(0), hi = w.amax(1).clamp_min(0);
  torch::Tensor scale = (hi - lo) / 15;
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  const torch::Tensor zero = torch::round(-lo / scale).clamp(0, 15);
  return {scale, zero};
}

// q = clamp(round(w / scale) + zero, 0, 15) for w [out, ...] and scale, zero [out] (as floats).
torch::Tensor Round4(const torch::Tensor& w, const torch::Tensor& scale, const torch::Tensor& zero) {
  const auto shape = [&](const torch::Tensor& v) { return w.dim() == 2 ? v.unsqueeze(1) : v; };
  return (torch::round(w / shape(scale)) + shape(zero)).clamp(0, 15);
}

// The int4 form from q [out, in] (values 0..15 as floats) and per-group scale, zero [out, groups].
QuantLinear PackInt4(const torch::Tensor& q, const torch::Tensor& scale, const torch::Tensor& zero, int64_t group,
                     const torch::Tensor& bias) {
  const int64_t out = q.size(0), in = q.size(1), groups = Groups(in, group), bytes = PackedBytes(in, group);
  QuantLinear l;
  l.scheme = Scheme::kInt4;
  l.in = in;
  l.group = group;
  l.scale = scale.to(torch::kFloat).contiguous();
  l.zero = zero.to(torch::kByte).contiguous();
  l.q = torch::zeros({out, bytes}, torch::kByte);
  const torch::Tensor qb = q.to(torch::kByte).contiguous();
  const uint8_t* src = qb.data_ptr<uint8_t>();
  uint8_t* dst = l.q.data_ptr<uint8_t>();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t start = g * group, len = std::min(group, in - start), half = (len + 1) / 2;
      uint8_t* p = dst + o * bytes + start / 2;
      const uint8_t* v = src + o * in + start;
      for (int64_t j = 0; j < half; ++j) p[j] = static_cast<uint8_t>(v[j] | (j + half < len ? v[j + half] << 4 : 0));
    }
  if (bias.defined()) l.bias = bias.detach().to(torch::kCPU, torch::kFloat).contiguous();
  Prepare(l);
  return l;
}

// GPTQ (Frantar et al. 2022) on w [out, in] float32 with Hessian h [in, in]: the columns are
// rounded one at a time, in blocks; each column's rounding error, divided by the diagonal of the
// upper Cholesky factor of the inverse Hessian, is taken off the columns not yet rounded (within
// the block at once, beyond it lazily per block). A group's scale and zero point are chosen from
// its columns as they are when the group's first column comes (blocks hold whole groups, so those
// columns are up to date). Returns q [out, in] (0..15 as floats), scale and zero [out, groups].
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> Gptq(torch::Tensor w, const torch::Tensor& hessian,
                                                             int64_t group) {
  const int64_t out = w.size(0), in = w.size(1), groups = Groups(in, group);
  torch::Tensor h = hessian.to(torch::kDouble).clone();
  const torch::Tensor dead = h.diagonal() == 0;  // inputs never non-zero: their weights do not matter
  h.diagonal().masked_fill_(dead, 1.0);
  w.index_put_({torch::indexing::Slice(), dead}, 0.0f);
  h.diagonal().add_(0.01 * h.diagonal().mean());  // damping: 1% of the mean diagonal
  torch::Tensor u = torch::linalg_cholesky(torch::cholesky_inverse(torch::linalg_cholesky(h)), /*upper=*/true);
  u = u.to(torch::kFloat).contiguous();
  torch::Tensor q = torch::empty({out, in}), scale = torch::empty({out, groups}), zero = torch::empty({out, groups});
  const int64_t block = group * std::max<int64_t>(1, 128 / group);
  torch::Tensor s, z;
  for (int64_t b0 = 0; b0 < in; b0 += block) {
    const int64_t b1 = std::min(in, b0 + block), n = b1 - b0;
    torch::Tensor wb = w.narrow(1, b0, n);  // a view: updated in place
    torch::Tensor err = torch::empty({out, n});
    for (int64_t i = 0; i < n; ++i) {
      const int64_t c = b0 + i;
      if (c % group == 0) {
        std::tie(s, z) = GroupParams(w.narrow(1, c, std::min(group, in - c)));
        scale.select(1, c / group).copy_(s);
        zero.select(1, c / group).copy_(z);
      }
      const torch::Tensor col = wb.select(1, i);
      const torch::Tensor qc = Round4(col, s, z);
      q.select(1, c).copy_(qc);
      const torch::Tensor e = (col - s * (qc - z)) / u[c][c];
      err.select(1, i).copy_(e);
      if (i + 1 < n) wb.narrow(1, i + 1, n - i - 1).addr_(e, u[c].narrow(0, c + 1, n - i - 1), 1.0, -1.0);
    }
    if (b1 < in) w.narrow(1, b1, in - b1).addmm_(err, u.narrow(0, b0, n).narrow(1, b1, in - b1), 1.0, -1.0);
  }
  return {q, scale, zero};
}

}  // namespace

const char* SchemeName(Scheme s) {
  switch (s) {
    case Scheme::kInt4: return "int4";
    case Scheme::kTernary: return "ternary";
    case Scheme::kInt8: break;
  }
  return "int8";
}

Scheme ParseScheme(const std::string& name) {
  if (name == "int8") return Scheme::kInt8;
  if (name == "int4") return Scheme::kInt4;
  if (name == "ternary") return Scheme::kTernary;
  throw UsageError("quantization scheme '" + name + "': the schemes are int8, int4 and ternary");
}

int64_t Groups(int64_t in, int64_t group) { return (in + group - 1) / group; }
int64_t PackedBytes(int64_t in, int64_t group) { return in / group * (group / 2) + ((in % group) + 1) / 2; }

void QuantizeRows(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scale) {
  QuantizeKernel<float>(x, rows, cols, q, scale, 0.0f);
}

void GemmInt8(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t k, int32_t* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::fill(c, c + m * n, 0);
    return;
  }
  const int32_t offset = 0;
  const dnnl_status_t st = dnnl_gemm_s8s8s32('N', 'T', 'F', m, n, k, 1.0f, a, k, 0, b, k, 0, 0.0f, c, n, &offset);
  if (st != dnnl_success) throw InternalError("dnnl_gemm_s8s8s32 failed with status " + std::to_string(st));
}

QuantLinear QuantizeLinear(const torch::Tensor& weight, const torch::Tensor& bias) {
  TORCH_CHECK(weight.dim() == 2, "QuantizeLinear: weight must be [out, in], got ", weight.sizes());
  const torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat).contiguous();
  QuantLinear l;
  l.q = torch::empty(w.sizes(), torch::kInt8);
  l.scale = torch::empty({w.size(0)}, torch::kFloat);
  QuantizeRows(w.data_ptr<float>(), w.size(0), w.size(1), l.q.data_ptr<int8_t>(), l.scale.data_ptr<float>());
  if (bias.defined()) l.bias = bias.detach().to(torch::kCPU, torch::kFloat).contiguous();
  l.in = w.size(1);
  return l;
}

QuantLinear QuantizeLinearInt4(const torch::Tensor& weight, const torch::Tensor& bias, int64_t group,
                               const torch::Tensor& hessian) {
  TORCH_CHECK(weight.dim() == 2, "QuantizeLinearInt4: weight must be [out, in], got ", weight.sizes());
  if (group < 2 || group % 2 != 0)
    throw UsageError("int4 group size must be even and at least 2, got " + std::to_string(group));
  torch::NoGradGuard no_grad;
  torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat).contiguous().clone();
  const int64_t in = w.size(1);
  if (hessian.defined()) {
    TORCH_CHECK(hessian.dim() == 2 && hessian.size(0) == in && hessian.size(1) == in, "GPTQ: Hessian ", hessian.sizes(),
                " for a weight ", w.sizes());
    const auto [q, scale, zero] = Gptq(w, hessian, group);
    return PackInt4(q, scale, zero, group, bias);
  }
  const auto [q, scale, zero] = RoundInt4(w, group);
  return PackInt4(q, scale, zero, group, bias);
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> RoundInt4(const torch::Tensor& w, int64_t group) {
  torch::NoGradGuard no_grad;
  const int64_t in = w.size(1), groups = Groups(in, group);
  torch::Tensor q = torch::empty_like(w), scale = torch::empty({w.size(0), groups}, w.options());
  torch::Tensor zero = torch::empty_like(scale);
  for (int64_t g = 0; g < groups; ++g) {
    const torch::Tensor wg = w.narrow(1, g * group, std::min(group, in - g * group));
    const auto [s, z] = GroupParams(wg);
    scale.select(1, g).copy_(s);
    zero.select(1, g).copy_(z);
    q.narrow(1, g * group, wg.size(1)).copy_(Round4(wg, s, z));
  }
  return {q, scale, zero};
}

std::pair<torch::Tensor, torch::Tensor> RoundTernary(const torch::Tensor& w, bool per_channel) {
  torch::NoGradGuard no_grad;
  const torch::Tensor gamma = (per_channel ? w.abs().mean(1, true) : w.abs().mean()).clamp_min(1e-8);
  return {(w / gamma).round().clamp(-1, 1), gamma};
}

QuantLinear QuantizeLinearTernary(const torch::Tensor& weight, const torch::Tensor& bias, bool per_channel) {
  TORCH_CHECK(weight.dim() == 2, "QuantizeLinearTernary: weight must be [out, in], got ", weight.sizes());
  const torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t out = w.size(0), in = w.size(1);
  const auto [t, gamma] = RoundTernary(w, per_channel);
  QuantLinear l;
  l.scheme = Scheme::kTernary;
  l.in = in;
  l.q = torch::empty({out, ternary::Bytes(in)}, torch::kByte);
  l.scale = gamma.reshape({-1}).contiguous();  // [1] or [out]
  ternary::Pack(t.to(torch::kChar).contiguous().data_ptr<int8_t>(), out, in, l.q.data_ptr<uint8_t>());
  if (bias.defined()) l.bias = bias.detach().to(torch::kCPU, torch::kFloat).contiguous();
  Prepare(l);
  return l;
}

void RmsGrad(const float* x, const float* g, const float* norm, int64_t rows, int64_t cols, float* dx) {
  const auto run = [&](int64_t r0, int64_t r1) { RmsGradKernel<float>(x, g, norm, cols, dx, r0, r1); };
  if (rows * cols < (int64_t{1} << 16)) return run(0, rows);
  at::parallel_for(0, rows, 16, run);
}

void TernaryGemm(const int8_t* xq, const float* sx, int64_t rows, const int8_t* t, const float* gamma,
                 const float* bias, int64_t in, int64_t out, float* y, bool accumulate) {
  constexpr int64_t kRows = 32;  // a block's int32 sums stay in the cache for the epilogue
  at::parallel_for(0, (rows + kRows - 1) / kRows, 1, [&](int64_t b, int64_t e) {
    const std::unique_ptr<int32_t[]> acc(new int32_t[static_cast<size_t>(kRows * out)]);
    for (int64_t block = b; block < e; ++block) {
      const int64_t r0 = block * kRows, r1 = std::min(rows, r0 + kRows);
      GemmInt8(xq + r0 * in, t, r1 - r0, out, in, acc.get());
      ternary::Epilogue(acc.get(), out, sx, gamma, bias, out, y, accumulate, r0, r1, 0, out);
    }
  });
}

void TernaryRows(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scale, float* norm) {
  const auto run = [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols));
    TernaryRowsKernel<float>(x, cols, q, scale, norm, row.data(), r0, r1);
  };
  if (rows * cols < (int64_t{1} << 16)) return run(0, rows);  // a generation step's: on this thread
  at::parallel_for(0, rows, 16, run);
}

torch::Tensor Dequantize(const QuantLinear& l) {
  if (l.scheme == Scheme::kInt8) return l.q.to(torch::kFloat) * l.scale.unsqueeze(1);
  if (l.scheme == Scheme::kTernary) {
    torch::Tensor t = torch::empty({l.out(), l.in}, torch::kFloat);
    const int64_t bytes = ternary::Bytes(l.in);
    const uint8_t* q = l.q.data_ptr<uint8_t>();
    float* d = t.data_ptr<float>();
    for (int64_t o = 0; o < l.out(); ++o)
      for (int64_t i = 0; i < l.in; ++i) d[o * l.in + i] = static_cast<float>(ternary::Weight(q + o * bytes, i));
    return t * l.scale.unsqueeze(1);
  }
  torch::Tensor w = torch::empty({l.out(), l.in}, torch::kFloat);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, l.in));
  at::parallel_for(0, l.out(), grain, [&](int64_t b, int64_t e) {
    Int4DequantizeKernel<float>(l.q.data_ptr<uint8_t>(), l.scale.data_ptr<float>(), l.zero.data_ptr<uint8_t>(), l.in,
                                l.group, w.data_ptr<float>(), b, e);
  });
  return w;
}

namespace {

// int8 rows: blocks of rows, each quantized, multiplied and scaled back by one thread while its
// rows are in cache (oneDNN's GEMM runs on the calling thread inside the team). Scratch without
// initialisation: every element is written before it is read.
void ApplyInt8(const QuantLinear& l, const float* px, int64_t m, float* py, bool accumulate) {
  const int64_t in = l.in, out = l.out();
  const int8_t* wq = l.q.data_ptr<int8_t>();
  const float* sw = l.scale.data_ptr<float>();
  const float* bias = l.bias.defined() ? l.bias.data_ptr<float>() : nullptr;
  constexpr int64_t kRows = 128;
  at::parallel_for(0, (m + kRows - 1) / kRows, 1, [&](int64_t b, int64_t e) {
    const std::unique_ptr<int8_t[]> xq(new int8_t[static_cast<size_t>(kRows * in)]);
    const std::unique_ptr<int32_t[]> acc(new int32_t[static_cast<size_t>(kRows * out)]);
    float sx[kRows];
    for (int64_t block = b; block < e; ++block) {
      const int64_t r0 = block * kRows, rows = std::min(kRows, m - r0);
      QuantizeKernel<float>(px + r0 * in, rows, in, xq.get(), sx, l.act_scale);
      GemmInt8(xq.get(), wq, rows, out, in, acc.get());
      DequantizeKernel<float>(acc.get(), sx, sw, bias, out, py + r0 * out, int64_t{0}, rows, accumulate);
    }
  });
}

std::shared_ptr<const Int4Tiles> BuildTiles(const QuantLinear& l) {
  const int64_t out = l.out(), in = l.in, groups = Groups(in, l.group), bytes = PackedBytes(in, l.group);
  auto t = std::make_shared<Int4Tiles>();
  t->blocks = (out + kLanes - 1) / kLanes;
  t->group_start.push_back(0);
  for (int64_t g = 0; g < groups; ++g)
    t->group_start.push_back(t->group_start.back() + (std::min(l.group, in - g * l.group) + 7) / 8 * 8);
  t->in_padded = t->group_start.back();
  t->tiles = t->in_padded / 8;
  // q as one value a byte in the padded columns, [blocks * 16, in_padded].
  std::vector<uint8_t> v(static_cast<size_t>(t->blocks * kLanes * t->in_padded), 0);
  const uint8_t* q = l.q.data_ptr<uint8_t>();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t start = g * l.group, len = std::min(l.group, in - start), half = (len + 1) / 2;
      const uint8_t* p = q + o * bytes + start / 2;
      uint8_t* d = v.data() + o * t->in_padded + t->group_start[g];
      for (int64_t j = 0; j < len; ++j) d[j] = j < half ? p[j] & 15 : p[j - half] >> 4;
    }
  t->w.assign(static_cast<size_t>(t->blocks * t->tiles * 64), 0);
  for (int64_t b = 0; b < t->blocks; ++b)
    for (int64_t k = 0; k < t->tiles; ++k)
      for (int lane = 0; lane < kLanes; ++lane)
        for (int j = 0; j < 4; ++j) {
          const uint8_t* row = v.data() + (b * kLanes + lane) * t->in_padded + 8 * k;
          t->w[(b * t->tiles + k) * 64 + 4 * lane + j] = static_cast<uint8_t>(row[j] | row[4 + j] << 4);
        }
  t->scale.assign(static_cast<size_t>(t->blocks * groups * kLanes), 0.0f);
  t->scale_zero.assign(t->scale.size(), 0.0f);
  const float* scale = l.scale.data_ptr<float>();
  const uint8_t* zero = l.zero.data_ptr<uint8_t>();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const size_t at = static_cast<size_t>(((o / kLanes) * groups + g) * kLanes + o % kLanes);
      t->scale[at] = scale[o * groups + g];
      t->scale_zero[at] = scale[o * groups + g] * static_cast<float>(zero[o * groups + g]);
    }
  return t;
}

// int4 rows: activations to int8 per row (dynamic, as int8's; QuantizeRows) in the tiles' padded
// columns, their group sums, then the tile kernel over chunks of rows x blocks of outputs: a
// chunk's activations stay in cache while each block's tiles (in_padded x 8 bytes) are read once
// for kTileRows rows at a time. Every output is computed by one call in a fixed order: the same
// floats whatever the thread count.
constexpr int64_t kTileRows = 8, kRowChunk = 64, kInt4InlineMacs = int64_t{1} << 20;
void ApplyInt4(const QuantLinear& l, const float* x, int64_t m, float* y, bool accumulate) {
  std::shared_ptr<const Int4Tiles> own = l.tiles;
  if (own == nullptr) own = BuildTiles(l);  // a form nobody prepared (Prepare)
  const Int4Tiles& t = *own;
  const int64_t in = l.in, groups = Groups(in, l.group), padded = t.in_padded;
  const std::unique_ptr<int8_t[]> xq(new int8_t[static_cast<size_t>(m * padded)]);
  std::vector<float> sx(static_cast<size_t>(m)), asum(static_cast<size_t>(m * groups));
  at::parallel_for(0, m, 16, [&](int64_t r0, int64_t r1) {
    std::vector<int8_t> row(static_cast<size_t>(in));
    for (int64_t r = r0; r < r1; ++r) {
      QuantizeKernel<float>(x + r * in, int64_t{1}, in, row.data(), sx.data() + r, 0.0f);
      int8_t* d = xq.get() + r * padded;
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t start = g * l.group, len = std::min(l.group, in - start);
        const int64_t pad = t.group_start[g + 1] - t.group_start[g];
        int32_t sum = 0;
        for (int64_t j = 0; j < len; ++j) sum += row[start + j];
        std::memcpy(d + t.group_start[g], row.data() + start, static_cast<size_t>(len));
        std::memset(d + t.group_start[g] + len, 0, static_cast<size_t>(pad - len));
        asum[r * groups + g] = static_cast<float>(sum);
      }
    }
  });
  const float* bias = l.bias.defined() ? l.bias.data_ptr<float>() : nullptr;
  const int64_t per = std::max<int64_t>(1, (int64_t{1} << 14) / (t.tiles * 64));  // blocks a task: ~16 KiB
  const int64_t row_chunks = (m + kRowChunk - 1) / kRowChunk, block_chunks = (t.blocks + per - 1) / per;
  const auto run = [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t rb = u / block_chunks * kRowChunk, re = std::min(m, rb + kRowChunk);
      const int64_t bb = u % block_chunks * per, be = std::min(t.blocks, bb + per);
      for (int64_t b = bb; b < be; ++b)
        for (int64_t r = rb; r < re; r += kTileRows)
          Int4TilesKernel(t, xq.get(), sx.data(), asum.data(), bias, l.out(), y, accumulate, r,
                          std::min(re, r + kTileRows), b, b + 1);
    }
  };
  // Products under kInt4InlineMacs multiply-adds (a generation step's, on small models) take
  // microseconds: handing half to another thread costs more than it saves.
  if (m * t.blocks * kLanes * t.in_padded < kInt4InlineMacs) return run(0, row_chunks * block_chunks);
  at::parallel_for(0, row_chunks * block_chunks, 1, run);
}

std::shared_ptr<const ternary::Tiles> BuildTernary(const QuantLinear& l) {
  return std::make_shared<const ternary::Tiles>(
      ternary::Build(l.q.data_ptr<uint8_t>(), l.out(), l.in, l.scale.data_ptr<float>(), l.scale.numel()));
}

// ternary rows: activations normalised and to int8 per row (TernaryRows), then the lookup kernel,
// or, from kTernaryGemmRows rows on (where it is faster: quant_bench), the same integer sums on
// oneDNN's int8 GEMM with the weights one a byte.
constexpr int64_t kTernaryGemmRows = 16;
void ApplyTernary(const QuantLinear& l, const float* x, int64_t m, float* y, bool accumulate) {
  std::shared_ptr<const ternary::Tiles> own = l.ternary;
  if (own == nullptr) own = BuildTernary(l);  // a form nobody prepared (Prepare)
  const std::unique_ptr<int8_t[]> xq(new int8_t[static_cast<size_t>(m * l.in)]);
  std::vector<float> sx(static_cast<size_t>(m));
  TernaryRows(x, m, l.in, xq.get(), sx.data());
  const float* bias = l.bias.defined() ? l.bias.data_ptr<float>() : nullptr;
  if (m >= kTernaryGemmRows)
    return TernaryGemm(xq.get(), sx.data(), m, own->dense.data(), own->gamma.data(), bias, l.in, l.out(), y,
                       accumulate);
  ternary::Product(*own, xq.get(), sx.data(), m, bias, y, accumulate);
}

}  // namespace

void ApplyRows(const QuantLinear& l, const float* x, int64_t rows, float* y, bool accumulate) {
  if (rows == 0) return;
  switch (l.scheme) {
    case Scheme::kInt8: return ApplyInt8(l, x, rows, y, accumulate);
    case Scheme::kInt4: return ApplyInt4(l, x, rows, y, accumulate);
    case Scheme::kTernary: return ApplyTernary(l, x, rows, y, accumulate);
  }
}

void Prepare(QuantLinear& l) {
  if (l.scheme == Scheme::kInt4) l.tiles = BuildTiles(l);
  if (l.scheme == Scheme::kTernary) l.ternary = BuildTernary(l);
}

torch::Tensor Apply(const QuantLinear& l, const torch::Tensor& input) {
  TORCH_CHECK(input.size(-1) == l.in, SchemeName(l.scheme), " Linear: input has ", input.size(-1),
              " features, the layer ", l.in);
  const torch::Tensor x = input.detach().to(torch::kCPU, torch::kFloat).reshape({-1, l.in}).contiguous();
  const int64_t m = x.size(0);
  torch::Tensor y = torch::empty({m, l.out()}, torch::kFloat);
  ApplyRows(l, x.data_ptr<float>(), m, y.data_ptr<float>(), false);
  std::vector<int64_t> shape = input.sizes().vec();
  shape.back() = l.out();
  return y.view(shape).to(input.device());
}

Calibrator::Calibrator(torch::nn::Module& model, const QuantizeOptions& options) {
  try {
    for (const auto& [name, linear] : Covered(model, options)) {
      auto layer = std::make_shared<Layer>();
      layer->hessian = options.scheme == Scheme::kInt4;
      Observed().Add(linear->weight, layer, name, "being calibrated");
      keys_.push_back(ByWeight<Layer>::Key(linear->weight));
      layers_.emplace_back(name, std::move(layer));
    }
  } catch (...) {
    Observed().Remove(keys_);  // no destructor runs for a constructor that throws
    throw;
  }
}

Calibrator::~Calibrator() { Observed().Remove(keys_); }

std::shared_ptr<Calibrator::Layer> Calibrator::Find(const std::string& name) const {
  for (const auto& [n, layer] : layers_)
    if (n == name) return layer;
  return nullptr;
}

float Calibrator::AbsMax(const std::string& name) const {
  const auto layer = Find(name);
  if (layer == nullptr) return 0;
  std::lock_guard lock(layer->mu);
  return layer->abs_max;
}

torch::Tensor Calibrator::Hessian(const std::string& name) const {
  const auto layer = Find(name);
  if (layer == nullptr) return {};
  std::lock_guard lock(layer->mu);
  return layer->h;
}

int64_t Calibrator::Rows(const std::string& name) const {
  const auto layer = Find(name);
  if (layer == nullptr) return 0;
  std::lock_guard lock(layer->mu);
  return layer->rows;
}

void Observe(const torch::Tensor& weight, const torch::Tensor& input) {
  const std::shared_ptr<Calibrator::Layer> layer = Observed().Find(weight);
  if (layer == nullptr) return;
  torch::NoGradGuard no_grad;
  const torch::Tensor x = input.detach().to(torch::kCPU, torch::kFloat).reshape({-1, input.size(-1)});
  std::lock_guard lock(layer->mu);
  if (layer->hessian) {
    if (!layer->h.defined()) layer->h = torch::zeros({x.size(1), x.size(1)});
    // Every kHessianStride-th row, in float32 (also under bf16 autocast: sums rounded to bf16 left
    // Hessians that were not positive definite).
    const torch::Tensor rows = x.slice(0, 0, x.size(0), kHessianStride).contiguous();
    layer->h.addmm_(rows.t(), rows);  // in place: autocast leaves it in float32
    layer->rows += rows.size(0);
  } else {
    layer->abs_max = std::max(layer->abs_max, x.abs().max().item<float>());
    layer->rows += x.size(0);
  }
}

QuantizedModel::QuantizedModel(torch::nn::Module& model, const QuantizeOptions& options) {
  try {
    for (const auto& [name, linear] : Covered(model, options)) {
      if (options.scheme == Scheme::kTernary) {
        Register(name, *linear,
                 std::make_shared<const QuantLinear>(
                     QuantizeLinearTernary(linear->weight, linear->bias, options.per_channel)));
        continue;
      }
      if (options.scheme == Scheme::kInt4) {
        torch::Tensor h;
        if (options.calibration != nullptr) {
          h = options.calibration->Hessian(name);
          if (!h.defined())
            throw UsageError("calibration saw no input for Linear layer '" + name + "': GPTQ needs its Hessian");
        }
        Register(
            name, *linear,
            std::make_shared<const QuantLinear>(QuantizeLinearInt4(linear->weight, linear->bias, options.group, h)));
        continue;
      }
      QuantLinear form = QuantizeLinear(linear->weight, linear->bias);
      if (options.calibration != nullptr) {
        const float m = options.calibration->AbsMax(name);
        if (!(m > 0) || !std::isfinite(m))
          throw UsageError("calibration saw no usable input for Linear layer '" + name + "' (max |x| " +
                           std::to_string(m) + ")");
        form.act_scale = m / 127.0f;
      }
      Register(name, *linear, std::make_shared<const QuantLinear>(std::move(form)));
    }
  } catch (...) {
    Unregister();  // no destructor runs for a constructor that throws
    throw;
  }
}

QuantizedModel::QuantizedModel(torch::nn::Module& model,
                               const std::vector<std::pair<std::string, QuantLinear>>& forms) {
  try {
    Add(model, forms);
  } catch (...) {
    Unregister();
    throw;
  }
}

void QuantizedModel::Add(torch::nn::Module& model, const std::vector<std::pair<std::string, QuantLinear>>& forms) {
  const auto modules = model.named_modules("", /*include_self=*/false);
  for (const auto& [name, form] : forms) {
    const auto* found = modules.find(name);
    auto* linear = found != nullptr ? dynamic_cast<torch::nn::LinearImpl*>(found->get()) : nullptr;
    const std::string what = std::string(SchemeName(form.scheme)) + " form of '" + name + "'";
    if (linear == nullptr) throw UsageError(what + ": the model has no Linear layer of that name");
    const int64_t out = linear->weight.size(0), in = linear->weight.size(1);
    bool fits = form.in == in && form.scale.scalar_type() == torch::kFloat;
    if (form.scheme == Scheme::kInt8) {
      fits = fits && form.q.scalar_type() == torch::kInt8 && form.q.sizes() == linear->weight.sizes() &&
             form.scale.dim() == 1 && form.scale.size(0) == out;
    } else if (form.scheme == Scheme::kTernary) {
      fits = fits && form.q.scalar_type() == torch::kByte && form.q.dim() == 2 && form.q.size(0) == out &&
             form.q.size(1) == ternary::Bytes(in) && form.scale.dim() == 1 &&
             (form.scale.size(0) == out || form.scale.size(0) == 1);
      if (fits) {
        const int64_t at = ternary::FindInvalid(form.q.contiguous().data_ptr<uint8_t>(), out, in);
        if (at >= 0)
          throw UsageError(what + ": byte " + std::to_string(at) +
                           " of its packed weights holds code 3, not a ternary value");
      }
    } else {
      const int64_t g = form.group;
      fits = fits && g >= 2 && g % 2 == 0 && form.q.scalar_type() == torch::kByte && form.q.dim() == 2 &&
             form.q.size(0) == out && form.q.size(1) == PackedBytes(in, g) && form.scale.dim() == 2 &&
             form.scale.size(0) == out && form.scale.size(1) == Groups(in, g) && form.zero.defined() &&
             form.zero.scalar_type() == torch::kByte && form.zero.sizes() == form.scale.sizes() &&
             form.zero.max().item<int>() <= 15;
    }
    if (!fits)
      throw UsageError(what + ": weight " + c10::str(form.q.sizes()) + ", scale " + c10::str(form.scale.sizes()) +
                       (form.scheme == Scheme::kInt4 ? ", group " + std::to_string(form.group) : std::string()) +
                       " do not fit the layer's weight " + c10::str(linear->weight.sizes()));
    QuantLinear prepared = form;
    if (prepared.tiles == nullptr && prepared.ternary == nullptr) Prepare(prepared);
    Register(name, *linear, std::make_shared<const QuantLinear>(std::move(prepared)));
  }
}

void QuantizedModel::Register(const std::string& name, torch::nn::LinearImpl& linear,
                              std::shared_ptr<const QuantLinear> form) {
  Quantized().Add(linear.weight, form, name, "quantized by another QuantizedModel");
  bytes_ += form->q.numel() + 4 * form->scale.numel() + (form->zero.defined() ? form->zero.numel() : 0);
  keys_.push_back(ByWeight<const QuantLinear>::Key(linear.weight));
  layers_.push_back(name);
  forms_.push_back(std::move(form));
}

QuantizedModel::~QuantizedModel() { Unregister(); }

void QuantizedModel::Unregister() {
  Quantized().Remove(keys_);
  keys_.clear();
}

std::shared_ptr<const QuantLinear> Find(const torch::Tensor& weight) { return Quantized().Find(weight); }

}  // namespace bitbyte::models::quant
