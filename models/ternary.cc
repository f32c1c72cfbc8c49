#include "models/ternary.h"

#include <ATen/Parallel.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "models/cpu_kernels.h"

namespace bitbyte::models::ternary {
namespace {

constexpr int64_t kTable = 64;      // table bytes a quad of inputs: two pairs, 16 low + 16 high bytes each
constexpr int64_t kSpanQuads = 64;  // quads summed in 16 bits before widening: 256 inputs
constexpr int64_t kZeroPair = 4;    // the index of the pair (0, 0)
constexpr int64_t kRowChunk = 16;   // rows a task
constexpr int64_t kInlineMacs = int64_t{1} << 20;

// The tables of activation rows r0..r1 of q [rows, in]: [rows, quads, 64] bytes, per quad the first
// pair's 16 low then 16 high bytes, then the second pair's (index 3 (t0 + 1) + (t1 + 1); 9..15 zero).
BITBYTE_KERNEL_INLINE void PairTable(int16_t a, int16_t b, uint8_t* d) {
  const int16_t v[16] = {static_cast<int16_t>(-a - b),
                         static_cast<int16_t>(-a),
                         static_cast<int16_t>(b - a),
                         static_cast<int16_t>(-b),
                         0,
                         b,
                         static_cast<int16_t>(a - b),
                         a,
                         static_cast<int16_t>(a + b)};
  for (int j = 0; j < 16; ++j) {
    d[j] = static_cast<uint8_t>(v[j] & 0xff);
    d[16 + j] = static_cast<uint8_t>((v[j] >> 8) & 0xff);
  }
}

template <typename T>
BITBYTE_KERNEL_INLINE void TablesImpl(const int8_t* q, int64_t in, int64_t quads, int64_t r0, int64_t r1,
                                      uint8_t* tables) {
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* x = q + r * in;
    uint8_t* d = tables + (r - r0) * quads * kTable;
    int64_t pair = 0;
    for (; 2 * pair + 1 < in; ++pair) PairTable(x[2 * pair], x[2 * pair + 1], d + pair * 32);
    for (; pair < quads * 2; ++pair) PairTable(2 * pair < in ? x[2 * pair] : 0, 0, d + pair * 32);
  }
}

// The epilogue of rows r0..r1 and outputs o0..o1 from their integer sums dots [r - r0][o - o0].
template <typename T>
BITBYTE_KERNEL_INLINE void EpilogueImpl(const int32_t* dots, int64_t stride, const T* sx, const T* scale, const T* bias,
                                        int64_t out, T* y, bool accumulate, int64_t r0, int64_t r1, int64_t o0,
                                        int64_t o1) {
  for (int64_t r = r0; r < r1; ++r) {
    const int32_t* d = dots + (r - r0) * stride;
    T* __restrict yr = y + r * out;
    const T s = sx[r];
    for (int64_t o = o0; o < o1; ++o) {
      const T v = std::fma(static_cast<T>(d[o - o0]), s * scale[o], bias != nullptr ? bias[o] : T{0});
      yr[o] = accumulate ? yr[o] + v : v;
    }
  }
}

// The integer sums by scalar lookups in the same tables (the reference for the vector kernels, and
// the kernel of CPUs without AVX2): dots [r - r0][(b - b0) 64 + o] for rows r0..r1, blocks b0..b1.
template <typename T>
BITBYTE_KERNEL_INLINE void DotsImpl(const Tiles& t, const uint8_t* tables, int64_t r0, int64_t r1, int64_t b0,
                                    int64_t b1, int32_t* dots, int64_t stride) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* tr = tables + r * t.quads * kTable;
    for (int64_t b = b0; b < b1; ++b) {
      const uint8_t* w = t.idx.data() + b * t.quads * 64;
      int32_t* d = dots + r * stride + (b - b0) * kBlock;
      for (int p = 0; p < kBlock; ++p) {
        int32_t acc = 0;
        for (int64_t k = 0; k < t.quads; ++k) {
          const uint8_t i = w[k * 64 + p];
          const uint8_t* tb = tr + k * kTable;
          const int lo = i & 15, hi = i >> 4;
          acc += static_cast<int16_t>(tb[lo] | tb[16 + lo] << 8);
          acc += static_cast<int16_t>(tb[32 + hi] | tb[48 + hi] << 8);
        }
        d[Lane(p)] = acc;
      }
    }
  }
}

BITBYTE_KERNEL_DISPATCH(TablesGenericKernel, TablesImpl)
BITBYTE_KERNEL_DISPATCH(EpilogueKernel, EpilogueImpl)
BITBYTE_KERNEL_DISPATCH(DotsGenericKernel, DotsImpl)

#if defined(__x86_64__)
// DotsImpl on AVX-512, R rows at once (a block's indices are split into nibbles once for all). Per
// quad and row: 4 byte shuffles of 64 lanes, 2 interleaves to 16 bits, 2 additions.
template <int R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2"))) void DotsAvx512(const Tiles& t,
                                                                                   const uint8_t* tables, int64_t r0,
                                                                                   int64_t b0, int64_t b1,
                                                                                   int32_t* dots, int64_t stride) {
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  const uint8_t* tr[R];
  for (int r = 0; r < R; ++r) tr[r] = tables + (r0 + r) * t.quads * kTable;
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* w = t.idx.data() + b * t.quads * 64;
    __m512i acc[R][4];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_si512();
    for (int64_t k0 = 0; k0 < t.quads; k0 += kSpanQuads) {
      const int64_t k1 = std::min(t.quads, k0 + kSpanQuads);
      __m512i lo16[R], hi16[R];
      for (int r = 0; r < R; ++r) lo16[r] = hi16[r] = _mm512_setzero_si512();
      for (int64_t k = k0; k < k1; ++k) {
        const __m512i v = _mm512_loadu_si512(w + k * 64);
        const __m512i i0 = _mm512_and_si512(v, nibble), i1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
        for (int r = 0; r < R; ++r) {
          const uint8_t* tb = tr[r] + k * kTable;
          // The quad's four 16-byte tables, each to every 128-bit lane (masked: GCC 12 warns of the
          // unmasked broadcast's undefined operand).
          const __m128i* tq = reinterpret_cast<const __m128i*>(tb);
          __m512i l = _mm512_shuffle_epi8(_mm512_maskz_broadcast_i32x4(0xffff, _mm_loadu_si128(tq)), i0);
          __m512i h = _mm512_shuffle_epi8(_mm512_maskz_broadcast_i32x4(0xffff, _mm_loadu_si128(tq + 1)), i0);
          lo16[r] = _mm512_add_epi16(lo16[r], _mm512_unpacklo_epi8(l, h));
          hi16[r] = _mm512_add_epi16(hi16[r], _mm512_unpackhi_epi8(l, h));
          l = _mm512_shuffle_epi8(_mm512_maskz_broadcast_i32x4(0xffff, _mm_loadu_si128(tq + 2)), i1);
          h = _mm512_shuffle_epi8(_mm512_maskz_broadcast_i32x4(0xffff, _mm_loadu_si128(tq + 3)), i1);
          lo16[r] = _mm512_add_epi16(lo16[r], _mm512_unpacklo_epi8(l, h));
          hi16[r] = _mm512_add_epi16(hi16[r], _mm512_unpackhi_epi8(l, h));
        }
      }
      // Interleaving worked within 128-bit lanes: the 16-bit sums of lo16's low half are outputs
      // 0..15 (Lane), its high half 16..31, hi16's halves 32..47 and 48..63.
      for (int r = 0; r < R; ++r) {
        acc[r][0] = _mm512_add_epi32(
            acc[r][0], _mm512_maskz_cvtepi16_epi32(0xffff, _mm512_maskz_extracti64x4_epi64(0xff, lo16[r], 0)));
        acc[r][1] = _mm512_add_epi32(
            acc[r][1], _mm512_maskz_cvtepi16_epi32(0xffff, _mm512_maskz_extracti64x4_epi64(0xff, lo16[r], 1)));
        acc[r][2] = _mm512_add_epi32(
            acc[r][2], _mm512_maskz_cvtepi16_epi32(0xffff, _mm512_maskz_extracti64x4_epi64(0xff, hi16[r], 0)));
        acc[r][3] = _mm512_add_epi32(
            acc[r][3], _mm512_maskz_cvtepi16_epi32(0xffff, _mm512_maskz_extracti64x4_epi64(0xff, hi16[r], 1)));
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < 4; ++v) _mm512_storeu_si512(dots + (r0 + r) * stride + (b - b0) * kBlock + 16 * v, acc[r][v]);
  }
}

// DotsImpl on AVX2: each block as two halves of 32 outputs, R rows at once.
template <int R>
__attribute__((target("avx2,fma"))) void DotsAvx2(const Tiles& t, const uint8_t* tables, int64_t r0, int64_t b0,
                                                  int64_t b1, int32_t* dots, int64_t stride) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const uint8_t* tr[R];
  for (int r = 0; r < R; ++r) tr[r] = tables + (r0 + r) * t.quads * kTable;
  for (int64_t b = b0; b < b1; ++b)
    for (int half = 0; half < 2; ++half) {
      const uint8_t* w = t.idx.data() + b * t.quads * 64 + 32 * half;
      __m256i acc[R][4];
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < 4; ++v) acc[r][v] = _mm256_setzero_si256();
      for (int64_t k0 = 0; k0 < t.quads; k0 += kSpanQuads) {
        const int64_t k1 = std::min(t.quads, k0 + kSpanQuads);
        __m256i lo16[R], hi16[R];
        for (int r = 0; r < R; ++r) lo16[r] = hi16[r] = _mm256_setzero_si256();
        for (int64_t k = k0; k < k1; ++k) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k * 64));
          const __m256i i0 = _mm256_and_si256(v, nibble), i1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
          for (int r = 0; r < R; ++r) {
            const uint8_t* tb = tr[r] + k * kTable;
            const __m128i* tq = reinterpret_cast<const __m128i*>(tb);
            __m256i l = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(tq)), i0);
            __m256i h = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(tq + 1)), i0);
            lo16[r] = _mm256_add_epi16(lo16[r], _mm256_unpacklo_epi8(l, h));
            hi16[r] = _mm256_add_epi16(hi16[r], _mm256_unpackhi_epi8(l, h));
            l = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(tq + 2)), i1);
            h = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(tq + 3)), i1);
            lo16[r] = _mm256_add_epi16(lo16[r], _mm256_unpacklo_epi8(l, h));
            hi16[r] = _mm256_add_epi16(hi16[r], _mm256_unpackhi_epi8(l, h));
          }
        }
        for (int r = 0; r < R; ++r) {
          acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(lo16[r])));
          acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(lo16[r], 1)));
          acc[r][2] = _mm256_add_epi32(acc[r][2], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(hi16[r])));
          acc[r][3] = _mm256_add_epi32(acc[r][3], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(hi16[r], 1)));
        }
      }
      // Within this half (positions 32 half + 0..31): lo16 holds positions 0..7 and 16..23, hi16
      // 8..15 and 24..31; each run of 8 positions is 8 consecutive outputs.
      static constexpr int kFirst[4] = {0, 16, 8, 24};
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < 4; ++v)
          _mm256_storeu_si256(
              reinterpret_cast<__m256i*>(dots + (r0 + r) * stride + (b - b0) * kBlock + Lane(32 * half + kFirst[v])),
              acc[r][v]);
    }
}
#endif

#if defined(__x86_64__)
// TablesImpl on AVX-512, two pairs a 64-byte store: in 16-bit lanes (0..15 the first pair's
// entries, 16..31 the second's), each pair's a and b spread by a word permute, added or subtracted
// under constant masks (entry e = 3 (t0 + 1) + (t1 + 1)), then the low and high bytes gathered.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2"))) void TablesAvx512(const int8_t* q, int64_t in,
                                                                                     int64_t quads, int64_t r0,
                                                                                     int64_t r1, uint8_t* tables) {
  const auto both = [](uint32_t m) { return static_cast<__mmask32>(m | m << 16); };
  const __mmask32 plus_a = both(0x1c0), minus_a = both(0x007), plus_b = both(0x124), minus_b = both(0x049);
  // Per 128-bit lane: even bytes (low halves) first; then the qwords so that each pair's 16 low
  // bytes precede its 16 high ones.
  const __m512i even_odd =
      _mm512_maskz_broadcast_i32x4(0xffff, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
  const __m512i qwords = _mm512_setr_epi64(0, 2, 1, 3, 4, 6, 5, 7);
  // Lanes 0..15 read word 0 (pair 0's a), lanes 16..31 word 2 (pair 1's a); +1: b; +4 j: pairs 2j, 2j+1.
  const __m512i spread = _mm512_maskz_mov_epi16(0xffff0000u, _mm512_set1_epi16(2));
  const int64_t pairs = quads * 2;
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* x = q + r * in;
    uint8_t* d = tables + (r - r0) * quads * kTable;
    for (int64_t p0 = 0; p0 < pairs; p0 += 16) {                                      // 16 pairs: 32 inputs, 8 stores
      const int64_t left = std::max<int64_t>(0, std::min<int64_t>(32, in - 2 * p0));  // inputs past `in`: 0
      const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint32_t{1} << left) - 1);
      const __m512i w = _mm512_maskz_cvtepi8_epi16(~__mmask32{0}, _mm256_maskz_loadu_epi8(m, x + 2 * p0));
      for (int64_t j = 0; j < std::min<int64_t>(8, (pairs - p0) / 2); ++j) {
        const __m512i ia = _mm512_add_epi16(spread, _mm512_set1_epi16(static_cast<int16_t>(4 * j)));
        const __m512i a = _mm512_permutexvar_epi16(ia, w);
        const __m512i b = _mm512_permutexvar_epi16(_mm512_add_epi16(ia, _mm512_set1_epi16(1)), w);
        __m512i t = _mm512_maskz_mov_epi16(plus_a, a);
        t = _mm512_mask_sub_epi16(t, minus_a, t, a);
        t = _mm512_mask_add_epi16(t, plus_b, t, b);
        t = _mm512_mask_sub_epi16(t, minus_b, t, b);
        t = _mm512_maskz_permutexvar_epi64(0xff, qwords, _mm512_shuffle_epi8(t, even_odd));
        _mm512_storeu_si512(d + (p0 + 2 * j) * 32, t);
      }
    }
  }
}
#endif

void TablesKernel(const int8_t* q, int64_t in, int64_t quads, int64_t r0, int64_t r1, uint8_t* tables) {
#if defined(__x86_64__)
  if (kernels::CpuIsa() == kernels::Isa::kAvx512) return TablesAvx512(q, in, quads, r0, r1, tables);
#endif
  TablesGenericKernel<float>(q, in, quads, r0, r1, tables);
}

// The integer sums of rows r0..r1 (their tables from row 0 of `tables`: rows r0.. of this task)
// against blocks b0..b1 on the best kernel this CPU runs.
void Dots(const Tiles& t, const uint8_t* tables, int64_t rows, int64_t b0, int64_t b1, int32_t* dots, int64_t stride) {
#if defined(__x86_64__)
  const kernels::Isa isa = kernels::CpuIsa();
  if (isa == kernels::Isa::kAvx512) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) DotsAvx512<4>(t, tables, r, b0, b1, dots, stride);
    for (; r + 2 <= rows; r += 2) DotsAvx512<2>(t, tables, r, b0, b1, dots, stride);
    if (r < rows) DotsAvx512<1>(t, tables, r, b0, b1, dots, stride);
    return;
  }
  if (isa == kernels::Isa::kAvx2) {
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) DotsAvx2<2>(t, tables, r, b0, b1, dots, stride);
    if (r < rows) DotsAvx2<1>(t, tables, r, b0, b1, dots, stride);
    return;
  }
#endif
  DotsGenericKernel<float>(t, tables, int64_t{0}, rows, b0, b1, dots, stride);
}

}  // namespace

void Pack(const int8_t* t, int64_t out, int64_t in, uint8_t* packed) {
  const int64_t bytes = Bytes(in);
  std::memset(packed, 0, static_cast<size_t>(out * bytes));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const int8_t v = t[o * in + i];
      const int code = v > 0 ? 1 : v < 0 ? 2 : 0;
      packed[o * bytes + i / 4] = static_cast<uint8_t>(packed[o * bytes + i / 4] | code << (2 * (i % 4)));
    }
}

int Weight(const uint8_t* row, int64_t i) {
  const int code = (row[i / 4] >> (2 * (i % 4))) & 3;
  return code == 1 ? 1 : code == 2 ? -1 : 0;
}

int64_t FindInvalid(const uint8_t* packed, int64_t rows, int64_t in) {
  const int64_t bytes = Bytes(in);
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t j = 0; j < bytes; ++j) {
      const uint8_t v = packed[o * bytes + j];
      for (int s = 0; s < 4; ++s)
        if (((v >> (2 * s)) & 3) == 3) return o * bytes + j;
    }
  return -1;
}

int Lane(int p) {
  const int k = p / 16, j = p % 16;
  return (j < 8 ? 0 : 32) + 16 * (k / 2) + 8 * (k % 2) + j % 8;
}

Tiles Build(const uint8_t* packed, int64_t out, int64_t in, const float* gamma, int64_t scales) {
  Tiles t;
  t.gamma.resize(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) t.gamma[static_cast<size_t>(o)] = gamma[scales == 1 ? 0 : o];
  t.dense.resize(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i)
      t.dense[static_cast<size_t>(o * in + i)] = static_cast<int8_t>(Weight(packed + o * Bytes(in), i));
  t.out = out;
  t.in = in;
  t.blocks = (out + kBlock - 1) / kBlock;
  t.quads = (in + 3) / 4;
  t.idx.assign(static_cast<size_t>(t.blocks * t.quads * 64), static_cast<uint8_t>(kZeroPair | kZeroPair << 4));
  const auto weight = [&](int64_t o, int64_t i) { return i < in ? t.dense[static_cast<size_t>(o * in + i)] : 0; };
  for (int64_t b = 0; b < t.blocks; ++b)
    for (int p = 0; p < kBlock; ++p) {
      const int64_t o = b * kBlock + Lane(p);
      if (o >= out) continue;
      for (int64_t k = 0; k < t.quads; ++k) {
        const int first = 3 * (weight(o, 4 * k) + 1) + weight(o, 4 * k + 1) + 1;
        const int second = 3 * (weight(o, 4 * k + 2) + 1) + weight(o, 4 * k + 3) + 1;
        t.idx[static_cast<size_t>((b * t.quads + k) * 64 + p)] = static_cast<uint8_t>(first | second << 4);
      }
    }
  return t;
}

void Epilogue(const int32_t* dots, int64_t stride, const float* sx, const float* gamma, const float* bias, int64_t out,
              float* y, bool accumulate, int64_t r0, int64_t r1, int64_t o0, int64_t o1) {
  EpilogueKernel<float>(dots, stride, sx, gamma, bias, out, y, accumulate, r0, r1, o0, o1);
}

void Product(const Tiles& t, const int8_t* q, const float* sx, int64_t rows, const float* bias, float* y,
             bool accumulate) {
  if (rows == 0) return;
  const int64_t row_chunks = (rows + kRowChunk - 1) / kRowChunk;
  // Blocks split among the threads only where the rows alone do not occupy them (a task builds its
  // rows' tables, about one block's work per row).
  const int64_t threads = at::get_num_threads();
  const int64_t per = row_chunks >= threads ? t.blocks : std::max<int64_t>(1, t.blocks * row_chunks / threads);
  const int64_t block_chunks = (t.blocks + per - 1) / per;
  const int64_t chunk = std::min(rows, kRowChunk);
  const auto run = [&](int64_t u0, int64_t u1) {
    // Scratch kept by each thread between calls (a generation step makes many small products).
    thread_local std::vector<uint8_t> tables;
    thread_local std::vector<int32_t> dots;
    tables.resize(std::max(tables.size(), static_cast<size_t>(chunk * t.quads * kTable)));
    dots.resize(std::max(dots.size(), static_cast<size_t>(chunk * per * kBlock)));
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t r0 = u / block_chunks * kRowChunk, r1 = std::min(rows, r0 + kRowChunk);
      const int64_t b0 = u % block_chunks * per, b1 = std::min(t.blocks, b0 + per);
      TablesKernel(q, t.in, t.quads, r0, r1, tables.data());
      const int64_t stride = (b1 - b0) * kBlock;
      Dots(t, tables.data(), r1 - r0, b0, b1, dots.data(), stride);
      Epilogue(dots.data(), stride, sx, t.gamma.data(), bias, t.out, y, accumulate, r0, r1, b0 * kBlock,
               std::min(t.out, b1 * kBlock));
    }
  };
  // A product under kInlineMacs multiply-adds (a generation step's, on small models) takes
  // microseconds: handing half to another thread costs more than it saves.
  if (rows * t.blocks * kBlock * t.quads * 4 < kInlineMacs) return run(0, row_chunks * block_chunks);
  at::parallel_for(0, row_chunks * block_chunks, 1, run);
}

}  // namespace bitbyte::models::ternary
