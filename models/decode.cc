#include "models/decode.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "models/cpu_kernels.h"
#include "models/gelu.h"

namespace bitbyte::models::decode {
namespace {

using kernels::ExpInPlace;
using kernels::LaneSum;

constexpr int kLanes = 16;  // one AVX-512 register of floats; two AVX2 ones

BITBYTE_KERNEL_INLINE float Total(const float* lane) { return LaneSum(lane, kLanes); }

// Rows o0..o1 of y = x w^T (+ bias), four weight rows at a time so that each load of x serves
// four products and four independent sums are in flight.
template <typename T>
BITBYTE_KERNEL_INLINE void LinearRows(const T* w, const T* bias, int64_t in, int64_t out, const T* x, int64_t rows,
                                      T* y, bool accumulate, int64_t o0, int64_t o1) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict xr = x + r * in;
    T* __restrict yr = y + r * out;
    int64_t o = o0;
    for (; o + 4 <= o1; o += 4) {
      const T* __restrict w0 = w + o * in;
      const T* __restrict w1 = w0 + in;
      const T* __restrict w2 = w1 + in;
      const T* __restrict w3 = w2 + in;
      T l0[kLanes] = {}, l1[kLanes] = {}, l2[kLanes] = {}, l3[kLanes] = {};
      int64_t i = 0;
      for (; i + kLanes <= in; i += kLanes)
        for (int j = 0; j < kLanes; ++j) {
          const T v = xr[i + j];
          l0[j] += w0[i + j] * v;
          l1[j] += w1[i + j] * v;
          l2[j] += w2[i + j] * v;
          l3[j] += w3[i + j] * v;
        }
      T s[4] = {Total(l0), Total(l1), Total(l2), Total(l3)};
      for (; i < in; ++i) {
        s[0] += w0[i] * xr[i];
        s[1] += w1[i] * xr[i];
        s[2] += w2[i] * xr[i];
        s[3] += w3[i] * xr[i];
      }
      for (int k = 0; k < 4; ++k) {
        const T v = s[k] + (bias != nullptr ? bias[o + k] : T{0});
        yr[o + k] = accumulate ? yr[o + k] + v : v;
      }
    }
    for (; o < o1; ++o) {
      const T* __restrict wo = w + o * in;
      T lane[kLanes] = {};
      int64_t i = 0;
      for (; i + kLanes <= in; i += kLanes)
        for (int j = 0; j < kLanes; ++j) lane[j] += wo[i + j] * xr[i + j];
      T s = Total(lane);
      for (; i < in; ++i) s += wo[i] * xr[i];
      s += bias != nullptr ? bias[o] : T{0};
      yr[o] = accumulate ? yr[o] + s : s;
    }
  }
}

template <typename T>
BITBYTE_KERNEL_INLINE void AttendHeads(const T* q, const T* keys, const T* values, int64_t n, int64_t heads, int64_t dh,
                                       T* y, T* scores, int64_t h0, int64_t h1) {
  const int64_t d = heads * dh;
  const T scale = T{1} / std::sqrt(static_cast<T>(dh));
  scores += h0 * n;
  for (int64_t h = h0; h < h1; ++h, scores += n) {
    const T* __restrict qh = q + h * dh;
    T m = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      const T* __restrict k = keys + j * d + h * dh;
      T s = 0;
      for (int64_t c = 0; c < dh; ++c) s += qh[c] * k[c];
      scores[j] = s * scale;
      m = std::max(m, scores[j]);
    }
    for (int64_t j = 0; j < n; ++j) scores[j] -= m;
    ExpInPlace(scores, n);
    const T inv = T{1} / LaneSum(scores, n);
    T* __restrict yh = y + h * dh;
    for (int64_t c = 0; c < dh; ++c) yh[c] = 0;
    for (int64_t j = 0; j < n; ++j) {
      const T* __restrict v = values + j * d + h * dh;
      const T p = scores[j] * inv;
      for (int64_t c = 0; c < dh; ++c) yh[c] += p * v[c];
    }
  }
}

BITBYTE_KERNEL_DISPATCH(LinearKernel, LinearRows)
BITBYTE_KERNEL_DISPATCH(AttendKernel, AttendHeads)

}  // namespace

void Linear(const float* w, const float* bias, int64_t in, int64_t out, const float* x, int64_t rows, float* y,
            bool accumulate) {
  // About 64 KiB of weights per task at the least: below that a thread costs more than it saves.
  const int64_t grain = std::max<int64_t>(4, ((int64_t{1} << 14) / std::max<int64_t>(1, in)) & ~int64_t{3});
  at::parallel_for(0, (out + 3) / 4, grain / 4, [&](int64_t b, int64_t e) {
    LinearKernel<float>(w, bias, in, out, x, rows, y, accumulate, 4 * b, std::min(out, 4 * e));
  });
}

void LayerNorm(const float* x, const float* gamma, const float* beta, double eps, int64_t rows, int64_t d, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < d; ++i) sum += xr[i];
    const double mean = sum / static_cast<double>(d);
    for (int64_t i = 0; i < d; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
    const float rstd = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(d) + eps));
    const float m = static_cast<float>(mean);
    for (int64_t i = 0; i < d; ++i) y[r * d + i] = (xr[i] - m) * rstd * gamma[i] + beta[i];
  }
}

void GeluInPlace(float* x, int64_t n) { GeluForward(x, x, n); }

void AttendOne(const float* q, const float* keys, const float* values, int64_t n, int64_t heads, int64_t dh, float* y,
               float* scores) {
  // A head reads 2 n dh floats: split the heads over threads once that is about 64 KiB.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 13) / std::max<int64_t>(1, n * dh));
  at::parallel_for(0, heads, grain,
                   [&](int64_t b, int64_t e) { AttendKernel<float>(q, keys, values, n, heads, dh, y, scores, b, e); });
}

}  // namespace bitbyte::models::decode
