#pragma once
// Helpers of bitbyte's own CPU kernels (the fused selective scan, the fused causal attention):
// the instruction set to run, and vectorisable loops. Internal to models/.
//
// Each kernel's entry points are compiled for several instruction sets (the build targets
// baseline x86-64, SSE2) with __attribute__((target(...))) and chosen at run time by CpuIsa().
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

namespace bitbyte::models::kernels {

enum class Isa { kBase, kAvx2, kAvx512 };

// The best instruction set this CPU runs (probed once). BITBYTE_KERNEL_ISA=base|avx2 caps it, to
// test and time the other builds.
Isa CpuIsa();

// Defines the function template NAME<T>(args...), which calls IMPL<T>(args...) compiled for the
// best instruction set CpuIsa() names: the build targets baseline x86-64 (SSE2), so IMPL is
// compiled three times, as is everything it calls (BITBYTE_KERNEL_INLINE helpers).
#if defined(__x86_64__) && defined(__GNUC__)
#define BITBYTE_KERNEL_DISPATCH(NAME, IMPL)                                                            \
  template <typename T, typename... A>                                                                 \
  void NAME##Base(A&&... a) {                                                                          \
    IMPL<T>(std::forward<A>(a)...);                                                                    \
  }                                                                                                    \
  template <typename T, typename... A>                                                                 \
  __attribute__((target("avx2,fma"))) void NAME##Avx2(A&&... a) {                                      \
    IMPL<T>(std::forward<A>(a)...);                                                                    \
  }                                                                                                    \
  template <typename T, typename... A>                                                                 \
  __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"))) void NAME##Avx512(A&&... a) { \
    IMPL<T>(std::forward<A>(a)...);                                                                    \
  }                                                                                                    \
  template <typename T, typename... A>                                                                 \
  void NAME(A&&... a) {                                                                                \
    switch (::bitbyte::models::kernels::CpuIsa()) {                                                    \
      case ::bitbyte::models::kernels::Isa::kAvx512: return NAME##Avx512<T>(std::forward<A>(a)...);    \
      case ::bitbyte::models::kernels::Isa::kAvx2: return NAME##Avx2<T>(std::forward<A>(a)...);        \
      case ::bitbyte::models::kernels::Isa::kBase: break;                                              \
    }                                                                                                  \
    NAME##Base<T>(std::forward<A>(a)...);                                                              \
  }
#else
#define BITBYTE_KERNEL_DISPATCH(NAME, IMPL) \
  template <typename T, typename... A>      \
  void NAME(A&&... a) {                     \
    IMPL<T>(std::forward<A>(a)...);         \
  }
#endif

// Every helper is forced inline so that it is compiled for the instruction set of the kernel entry
// point that calls it (an entry point compiled with __attribute__((target(...)))).
#define BITBYTE_KERNEL_INLINE inline __attribute__((always_inline))

// exp over a contiguous array. float: Cephes' polynomial with the exponent built by hand, written
// so that the compiler vectorises it (std::exp does not); double: std::exp.
BITBYTE_KERNEL_INLINE void ExpInPlace(float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {  // a loop of its own: the clamp would stop the next from vectorising
    const float v = x[i] < -87.0f ? -87.0f : x[i];
    x[i] = v > 88.0f ? 88.0f : v;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    // k = round(v / ln 2), exactly, by adding 1.5 * 2^23: k is then the low bits of `shifted`
    // (no float-to-int conversion: a NaN stays a NaN, without undefined behaviour).
    const float shifted = v * 1.44269504088896341f + 12582912.0f;
    const float k = shifted - 12582912.0f;
    const float r = (v - k * 0.693359375f) - k * -2.12194440e-4f;  // v - k ln 2, |r| <= ln 2 / 2
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits;
    std::memcpy(&bits, &shifted, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23;  // 2^k, k in [-126, 127]
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    x[i] = p * scale;
  }
}

BITBYTE_KERNEL_INLINE void ExpInPlace(double* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

// Sum of p[0..n) over 8 independent lanes (vectorisable without reassociation).
template <typename T>
BITBYTE_KERNEL_INLINE T LaneSum(const T* __restrict p, int64_t n) {
  T lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += p[i + j];
  T s = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
  for (; i < n; ++i) s += p[i];
  return s;
}

}  // namespace bitbyte::models::kernels
