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

#include "base/error.h"
#include "models/cpu_kernels.h"
#include "models/linear.h"
#include "models/precision.h"

namespace bitbyte::models::quant {
namespace {

// Values by the TensorImpl of a Linear layer's float32 weight, for models::Linear to look up on
// every call: `count` lets the calls of a model nothing covers skip the lock.
template <typename V>
class ByWeight {
 public:
  // Adds `value` for `weight`; UsageError naming `layer` when another one covers it already.
  void Add(const torch::Tensor& weight, std::shared_ptr<V> value, const std::string& layer, const char* what) {
    std::unique_lock lock(mu_);
    if (!map_.emplace(Key(weight), std::move(value)).second)
      throw UsageError("Linear layer '" + layer + "' is already " + what);
    count_ += 1;
  }
  void Remove(const std::vector<const void*>& keys) {
    std::unique_lock lock(mu_);
    for (const void* key : keys) count_ -= static_cast<int64_t>(map_.erase(key));
  }
  std::shared_ptr<V> Find(const torch::Tensor& weight) const {
    if (count_.load(std::memory_order_acquire) == 0) return nullptr;
    std::shared_lock lock(mu_);
    const auto it = map_.find(Key(weight));
    return it == map_.end() ? nullptr : it->second;
  }
  static const void* Key(const torch::Tensor& weight) { return weight.unsafeGetTensorImpl(); }

 private:
  mutable std::shared_mutex mu_;
  std::unordered_map<const void*, std::shared_ptr<V>> map_;
  std::atomic<int64_t> count_{0};
};

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

// Rows o0..o1 of y = x w^T (+ bias) with w in int4, for `rows` rows of x; xsum[r, g] is the sum of
// row r's inputs in group g (the zero points' share: scale (sum q x - zero sum x)). Four output
// rows at a time share each load of x; nibbles become floats and meet x in lanes of 16 so that the
// loops vectorise (byte to int to float conversions, FMAs), and each group's scale is applied to
// the lanes, which are summed once a row.
template <typename T>
BITBYTE_KERNEL_INLINE void Int4Rows(const uint8_t* q, const T* scale, const uint8_t* zero, const T* bias, int64_t in,
                                    int64_t group, int64_t out, const T* x, const T* xsum, int64_t rows, T* y,
                                    bool accumulate, int64_t o0, int64_t o1) {
  const int64_t groups = Groups(in, group), bytes = PackedBytes(in, group);
  for (int64_t o = o0; o < o1; o += 4) {
    const int64_t n = std::min<int64_t>(4, o1 - o);
    int64_t row[4];
    for (int k = 0; k < 4; ++k) row[k] = o + std::min<int64_t>(k, n - 1);  // past o1: row o1 - 1 again
    for (int64_t r = 0; r < rows; ++r) {
      T a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
      T rest[4] = {};  // the tails and the zero points' share
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t start = g * group, len = std::min(group, in - start), half = (len + 1) / 2, pairs = len / 2;
        const T* __restrict lo = x + r * in + start;
        const T* __restrict hi = lo + half;
        const uint8_t* __restrict p0 = q + row[0] * bytes + start / 2;
        const uint8_t* __restrict p1 = q + row[1] * bytes + start / 2;
        const uint8_t* __restrict p2 = q + row[2] * bytes + start / 2;
        const uint8_t* __restrict p3 = q + row[3] * bytes + start / 2;
        const T s0 = scale[row[0] * groups + g], s1 = scale[row[1] * groups + g];
        const T s2 = scale[row[2] * groups + g], s3 = scale[row[3] * groups + g];
        T l0[kLanes] = {}, l1[kLanes] = {}, l2[kLanes] = {}, l3[kLanes] = {};
        int64_t j = 0;
        for (; j + kLanes <= pairs; j += kLanes)
          for (int t = 0; t < kLanes; ++t) {
            const T a = lo[j + t], b = hi[j + t];
            l0[t] += static_cast<T>(p0[j + t] & 15) * a + static_cast<T>(p0[j + t] >> 4) * b;
            l1[t] += static_cast<T>(p1[j + t] & 15) * a + static_cast<T>(p1[j + t] >> 4) * b;
            l2[t] += static_cast<T>(p2[j + t] & 15) * a + static_cast<T>(p2[j + t] >> 4) * b;
            l3[t] += static_cast<T>(p3[j + t] & 15) * a + static_cast<T>(p3[j + t] >> 4) * b;
          }
        for (int t = 0; t < kLanes; ++t) {
          a0[t] += s0 * l0[t];
          a1[t] += s1 * l1[t];
          a2[t] += s2 * l2[t];
          a3[t] += s3 * l3[t];
        }
        const uint8_t* p[4] = {p0, p1, p2, p3};
        const T sc[4] = {s0, s1, s2, s3};
        const T xs = xsum[r * groups + g];
        for (int k = 0; k < 4; ++k) {
          T d = -static_cast<T>(zero[row[k] * groups + g]) * xs;
          for (int64_t i = j; i < pairs; ++i)
            d += static_cast<T>(p[k][i] & 15) * lo[i] + static_cast<T>(p[k][i] >> 4) * hi[i];
          if (half != pairs) d += static_cast<T>(p[k][pairs] & 15) * lo[pairs];  // odd length: a low nibble alone
          rest[k] += sc[k] * d;
        }
      }
      const T* acc[4] = {a0, a1, a2, a3};
      for (int64_t k = 0; k < n; ++k) {
        T v = rest[k] + (bias != nullptr ? bias[o + k] : T{0});
        for (int t = 0; t < kLanes; ++t) v += acc[k][t];
        y[r * out + o + k] = accumulate ? y[r * out + o + k] + v : v;
      }
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

BITBYTE_KERNEL_DISPATCH(QuantizeKernel, QuantizeRowsImpl)
BITBYTE_KERNEL_DISPATCH(DequantizeKernel, DequantizeRowsImpl)
BITBYTE_KERNEL_DISPATCH(Int4GenericKernel, Int4Rows)

#if defined(__x86_64__)
// Int4Rows in AVX-512 by hand (the compiler vectorises the generic loop with 128-bit conversions):
// 16 packed bytes (32 weights) of each of four rows a step: low and high nibbles masked out,
// widened to 16 int32 and converted to 16 floats each, two FMAs against the group's two halves
// of x. The same arithmetic as Int4Rows up to the order of the float sums.
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) void Int4RowsAvx512(
    const uint8_t* q, const float* scale, const uint8_t* zero, const float* bias, int64_t in, int64_t group,
    int64_t out, const float* x, const float* xsum, int64_t rows, float* y, bool accumulate, int64_t o0, int64_t o1) {
  const int64_t groups = Groups(in, group), bytes = PackedBytes(in, group);
  const __m128i mask = _mm_set1_epi8(0x0f);
  for (int64_t o = o0; o < o1; o += 4) {
    const int64_t n = std::min<int64_t>(4, o1 - o);
    int64_t row[4];
    for (int k = 0; k < 4; ++k) row[k] = o + std::min<int64_t>(k, n - 1);
    for (int64_t r = 0; r < rows; ++r) {
      __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      float rest[4] = {};
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t start = g * group, len = std::min(group, in - start), half = (len + 1) / 2, pairs = len / 2;
        const float* lo = x + r * in + start;
        const float* hi = lo + half;
        const uint8_t* p[4];
        for (int k = 0; k < 4; ++k) p[k] = q + row[k] * bytes + start / 2;
        __m512 l[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        int64_t j = 0;
        for (; j + 16 <= pairs; j += 16) {
          const __m512 xa = _mm512_loadu_ps(lo + j), xb = _mm512_loadu_ps(hi + j);
          for (int k = 0; k < 4; ++k) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[k] + j));
            const __m512 wl = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(b, mask)));
            const __m512 wh = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(b, 4), mask)));
            l[k] = _mm512_fmadd_ps(wh, xb, _mm512_fmadd_ps(wl, xa, l[k]));
          }
        }
        const float xs = xsum[r * groups + g];
        for (int k = 0; k < 4; ++k) {
          const float sc = scale[row[k] * groups + g];
          acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(sc), l[k], acc[k]);
          float d = -static_cast<float>(zero[row[k] * groups + g]) * xs;
          for (int64_t i = j; i < pairs; ++i)
            d += static_cast<float>(p[k][i] & 15) * lo[i] + static_cast<float>(p[k][i] >> 4) * hi[i];
          if (half != pairs) d += static_cast<float>(p[k][pairs] & 15) * lo[pairs];
          rest[k] += sc * d;
        }
      }
      for (int64_t k = 0; k < n; ++k) {
        const float v = _mm512_reduce_add_ps(acc[k]) + rest[k] + (bias != nullptr ? bias[o + k] : 0.0f);
        y[r * out + o + k] = accumulate ? y[r * out + o + k] + v : v;
      }
    }
  }
}
#endif

template <typename T, typename... A>
void Int4Kernel(A&&... a) {
#if defined(__x86_64__)
  if (kernels::CpuIsa() == kernels::Isa::kAvx512) return Int4RowsAvx512(std::forward<A>(a)...);
#endif
  Int4GenericKernel<T>(std::forward<A>(a)...);
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

const char* SchemeName(Scheme s) { return s == Scheme::kInt4 ? "int4" : "int8"; }

Scheme ParseScheme(const std::string& name) {
  if (name == "int8") return Scheme::kInt8;
  if (name == "int4") return Scheme::kInt4;
  throw UsageError("quantization scheme '" + name + "': the schemes are int8 and int4");
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
  const int64_t in = w.size(1), groups = Groups(in, group);
  if (hessian.defined()) {
    TORCH_CHECK(hessian.dim() == 2 && hessian.size(0) == in && hessian.size(1) == in, "GPTQ: Hessian ", hessian.sizes(),
                " for a weight ", w.sizes());
    const auto [q, scale, zero] = Gptq(w, hessian, group);
    return PackInt4(q, scale, zero, group, bias);
  }
  torch::Tensor q = torch::empty_like(w), scale = torch::empty({w.size(0), groups}), zero = torch::empty_like(scale);
  for (int64_t g = 0; g < groups; ++g) {
    const torch::Tensor wg = w.narrow(1, g * group, std::min(group, in - g * group));
    const auto [s, z] = GroupParams(wg);
    scale.select(1, g).copy_(s);
    zero.select(1, g).copy_(z);
    q.narrow(1, g * group, wg.size(1)).copy_(Round4(wg, s, z));
  }
  return PackInt4(q, scale, zero, group, bias);
}

torch::Tensor Dequantize(const QuantLinear& l) {
  if (l.scheme == Scheme::kInt8) return l.q.to(torch::kFloat) * l.scale.unsqueeze(1);
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

// int4 rows, a few: the packed kernel split over threads by output rows (about 16 KiB of packed
// weights a task at the least).
void ApplyInt4Packed(const QuantLinear& l, const float* x, int64_t rows, float* y, bool accumulate) {
  const int64_t in = l.in, groups = Groups(in, l.group);
  std::vector<float> xsum(static_cast<size_t>(rows * groups));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      float s = 0;
      for (int64_t i = g * l.group; i < std::min(in, (g + 1) * l.group); ++i) s += x[r * in + i];
      xsum[r * groups + g] = s;
    }
  const int64_t grain = std::max<int64_t>(4, ((int64_t{1} << 15) / std::max<int64_t>(1, in)) & ~int64_t{3});
  const float* bias = l.bias.defined() ? l.bias.data_ptr<float>() : nullptr;
  at::parallel_for(0, (l.out() + 3) / 4, grain / 4, [&](int64_t b, int64_t e) {
    Int4Kernel<float>(l.q.data_ptr<uint8_t>(), l.scale.data_ptr<float>(), l.zero.data_ptr<uint8_t>(), bias, in, l.group,
                      l.out(), x, xsum.data(), rows, y, accumulate, 4 * b, std::min(l.out(), 4 * e));
  });
}

// Up to this many rows the int4 product reads the packed weights in its own kernel; beyond, the
// weight is dequantized once (out x in floats) and the rows go through a float32 GEMM.
constexpr int64_t kInt4PackedRows = 4;

}  // namespace

void ApplyRows(const QuantLinear& l, const float* x, int64_t rows, float* y, bool accumulate) {
  if (rows == 0) return;
  if (l.scheme == Scheme::kInt8) return ApplyInt8(l, x, rows, y, accumulate);
  if (rows <= kInt4PackedRows) return ApplyInt4Packed(l, x, rows, y, accumulate);
  const torch::Tensor w = Dequantize(l);
  const torch::Tensor xt = torch::from_blob(const_cast<float*>(x), {rows, l.in});
  torch::Tensor yt = torch::from_blob(y, {rows, l.out()});
  const torch::Tensor r = models::Linear(xt, w, l.bias);  // the float32 GEMM path of linear.h
  if (accumulate) {
    yt.add_(r);
  } else {
    yt.copy_(r);
  }
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
    Register(name, *linear, std::make_shared<const QuantLinear>(form));
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
