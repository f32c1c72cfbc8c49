#include "models/fused_attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "base/error.h"
#include "models/attention.h"
#include "models/cpu_kernels.h"
#include "models/linear.h"
#include "models/precision.h"

namespace bitbyte::models {
namespace {

using kernels::ExpInPlace;
using kernels::LaneSum;

constexpr int64_t kTile = 256;  // queries and keys per tile

// Row-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, op = transpose when t*. float32:
// oneDNN's sgemm, which picks its own JIT kernel for this CPU (measured on 128 x 128 x 128 tiles,
// 2 threads, AMD EPYC family 26: 364 GFLOPS against 189 for OpenBLAS's Haswell kernels that the
// environment set there); called inside the OpenMP team it runs on the calling thread alone.
void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  OneDnnGemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
// float64 (the tests' exact comparison): plain loops.
void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p)
        acc += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * acc + (beta == 0 ? 0 : beta * c[i * ldc + j]);
    }
}

struct Shape {
  int64_t batch, steps, heads, head_dim, width;  // width = heads * head_dim
  bool causal = true;
  int64_t window = 0;  // causal: keys i - window + 1 .. i (0: all from 0)
  int64_t tiles() const { return (steps + kTile - 1) / kTile; }
  // The keys query i sees: [KeyBegin(i), KeyEnd(i)).
  int64_t KeyBegin(int64_t i) const { return causal && window > 0 ? std::max<int64_t>(0, i - window + 1) : 0; }
  int64_t KeyEnd(int64_t i) const { return causal ? i + 1 : steps; }
  // The queries that see key j: [QueryBegin(j), QueryEnd(j)).
  int64_t QueryBegin(int64_t j) const { return causal ? j : 0; }
  int64_t QueryEnd(int64_t j) const { return causal && window > 0 ? std::min(steps, j + window) : steps; }
};

// One tile row of the forward: queries [i0, i0 + nr) of head h of batch b. s: kTile x kTile,
// acc: kTile x head_dim scratch.
template <typename T>
BITBYTE_KERNEL_INLINE void ForwardTile(const Shape& sh, const T* qkv, T* out, T* lse, int64_t b, int64_t h, int64_t i0,
                                       T* s, T* acc, T* m, T* l) {
  const int64_t ld = 3 * sh.width, dh = sh.head_dim, nr = std::min(kTile, sh.steps - i0);
  const T scale = T(1) / std::sqrt(static_cast<T>(dh));
  const T* base = qkv + b * sh.steps * ld + h * dh;
  const T *q = base + i0 * ld, *k = base + sh.width, *v = base + 2 * sh.width;
  std::fill(acc, acc + nr * dh, T(0));
  std::fill(m, m + nr, -std::numeric_limits<T>::infinity());
  std::fill(l, l + nr, T(0));
  const int64_t k_end = sh.KeyEnd(i0 + nr - 1);
  for (int64_t j0 = sh.KeyBegin(i0) / kTile * kTile; j0 < k_end; j0 += kTile) {
    const int64_t nc = std::min(kTile, k_end - j0);
    Gemm(false, true, nr, nc, dh, scale, q, ld, k + j0 * ld, ld, T(0), s, kTile);
    for (int64_t r = 0; r < nr; ++r) {
      T* row = s + r * kTile;
      // The keys of this tile the query sees: columns [lo, hi).
      const int64_t lo = std::max<int64_t>(0, sh.KeyBegin(i0 + r) - j0);
      const int64_t hi = std::min(nc, sh.KeyEnd(i0 + r) - j0);
      if (hi <= lo) {  // none: the row adds nothing
        std::fill(row, row + nc, T(0));
        continue;
      }
      T mx = row[lo];
      for (int64_t c = lo + 1; c < hi; ++c) mx = std::max(mx, row[c]);
      const T mnew = std::max(m[r], mx);
      for (int64_t c = lo; c < hi; ++c) row[c] -= mnew;
      ExpInPlace(row + lo, hi - lo);
      std::fill(row, row + lo, T(0));
      std::fill(row + hi, row + nc, T(0));
      const T alpha = std::exp(m[r] - mnew);  // 0 on the first tile (m = -inf)
      l[r] = l[r] * alpha + LaneSum(row + lo, hi - lo);
      m[r] = mnew;
      if (alpha != T(1))
        for (int64_t c = 0; c < dh; ++c) acc[r * dh + c] *= alpha;
    }
    Gemm(false, false, nr, dh, nc, T(1), s, kTile, v + j0 * ld, ld, T(1), acc, dh);
  }
  for (int64_t r = 0; r < nr; ++r) {
    T* o = out + (b * sh.steps + i0 + r) * sh.width + h * dh;
    const T inv = T(1) / l[r];
    for (int64_t c = 0; c < dh; ++c) o[c] = acc[r * dh + c] * inv;
    lse[(b * sh.heads + h) * sh.steps + i0 + r] = m[r] + std::log(l[r]);
  }
}

template <typename T>
BITBYTE_KERNEL_INLINE void ForwardTasks(const Shape& sh, const T* qkv, T* out, T* lse, int64_t begin, int64_t end) {
  std::vector<T> s(kTile * kTile), acc(kTile * sh.head_dim), m(kTile), l(kTile);
  const int64_t tiles = sh.tiles();
  for (int64_t task = begin; task < end; ++task) {
    const int64_t bh = task / tiles, i = task % tiles;
    ForwardTile<T>(sh, qkv, out, lse, bh / sh.heads, bh % sh.heads, i * kTile, s.data(), acc.data(), m.data(),
                   l.data());
  }
}

// The backward of one (batch, head): key tiles outside, the query tiles that see them inside;
// dK and dV of a key tile accumulate in scratch, dQ of all queries in dq (steps x head_dim).
template <typename T>
BITBYTE_KERNEL_INLINE void BackwardHead(const Shape& sh, const T* qkv, const T* out, const T* lse, const T* gout,
                                        T* gqkv, int64_t b, int64_t h, T* p, T* dp, T* dk, T* dv, T* dq, T* dsum) {
  const int64_t ld = 3 * sh.width, dh = sh.head_dim, t = sh.steps, w = sh.width;
  const T scale = T(1) / std::sqrt(static_cast<T>(dh));
  const T* base = qkv + b * t * ld + h * dh;
  const T *q = base, *k = base + w, *v = base + 2 * w;
  const T* go = gout + b * t * w + h * dh;
  const T* o = out + b * t * w + h * dh;
  const T* rl = lse + (b * sh.heads + h) * t;
  for (int64_t r = 0; r < t; ++r) {  // D_r = sum_c dO[r, c] O[r, c]
    T acc = 0;
    for (int64_t c = 0; c < dh; ++c) acc += go[r * w + c] * o[r * w + c];
    dsum[r] = acc;
  }
  std::fill(dq, dq + t * dh, T(0));
  for (int64_t j0 = 0; j0 < t; j0 += kTile) {
    const int64_t nc = std::min(kTile, t - j0);
    std::fill(dk, dk + nc * dh, T(0));
    std::fill(dv, dv + nc * dh, T(0));
    const int64_t q_end = sh.QueryEnd(j0 + nc - 1);
    for (int64_t i0 = sh.QueryBegin(j0) / kTile * kTile; i0 < q_end; i0 += kTile) {
      const int64_t nr = std::min(kTile, t - i0);
      // P = exp(scale q k^T - lse), 0 where a query does not see the key.
      Gemm(false, true, nr, nc, dh, scale, q + i0 * ld, ld, k + j0 * ld, ld, T(0), p, kTile);
      for (int64_t r = 0; r < nr; ++r) {
        T* row = p + r * kTile;
        const int64_t lo = std::clamp<int64_t>(sh.KeyBegin(i0 + r) - j0, 0, nc);
        const int64_t hi = std::clamp<int64_t>(sh.KeyEnd(i0 + r) - j0, lo, nc);
        const T shift = rl[i0 + r];
        for (int64_t c = lo; c < hi; ++c) row[c] -= shift;
        ExpInPlace(row + lo, hi - lo);
        std::fill(row, row + lo, T(0));
        std::fill(row + hi, row + nc, T(0));
      }
      Gemm(true, false, nc, dh, nr, T(1), p, kTile, go + i0 * w, w, T(1), dv, dh);            // dV += P^T dO
      Gemm(false, true, nr, nc, dh, T(1), go + i0 * w, w, v + j0 * ld, ld, T(0), dp, kTile);  // dP = dO V^T
      for (int64_t r = 0; r < nr; ++r) {                                                      // dS = P (dP - D)
        T* prow = p + r * kTile;
        const T* dprow = dp + r * kTile;
        const T d = dsum[i0 + r];
        for (int64_t c = 0; c < nc; ++c) prow[c] *= dprow[c] - d;
      }
      Gemm(false, false, nr, dh, nc, scale, p, kTile, k + j0 * ld, ld, T(1), dq + i0 * dh, dh);  // dQ += s dS K
      Gemm(true, false, nc, dh, nr, scale, p, kTile, q + i0 * ld, ld, T(1), dk, dh);             // dK += s dS^T Q
    }
    T* gk = gqkv + (b * t + j0) * ld + w + h * dh;
    T* gv = gk + w;
    for (int64_t r = 0; r < nc; ++r)
      for (int64_t c = 0; c < dh; ++c) {
        gk[r * ld + c] = dk[r * dh + c];
        gv[r * ld + c] = dv[r * dh + c];
      }
  }
  T* gq = gqkv + b * t * ld + h * dh;
  for (int64_t r = 0; r < t; ++r)
    for (int64_t c = 0; c < dh; ++c) gq[r * ld + c] = dq[r * dh + c];
}

template <typename T>
BITBYTE_KERNEL_INLINE void BackwardTasks(const Shape& sh, const T* qkv, const T* out, const T* lse, const T* gout,
                                         T* gqkv, int64_t begin, int64_t end) {
  const int64_t dh = sh.head_dim;
  std::vector<T> p(kTile * kTile), dp(kTile * kTile), dk(kTile * dh), dv(kTile * dh), dq(sh.steps * dh), dsum(sh.steps);
  for (int64_t bh = begin; bh < end; ++bh)
    BackwardHead<T>(sh, qkv, out, lse, gout, gqkv, bh / sh.heads, bh % sh.heads, p.data(), dp.data(), dk.data(),
                    dv.data(), dq.data(), dsum.data());
}

// Entry points per instruction set (models/cpu_kernels.h): the exp and row loops vectorise for
// the widest one the CPU has.
BITBYTE_KERNEL_DISPATCH(Forward, ForwardTasks)
BITBYTE_KERNEL_DISPATCH(Backward, BackwardTasks)

Shape ShapeOf(const torch::Tensor& qkv, int64_t n_head, bool causal, int64_t window) {
  if (qkv.dim() != 3 || qkv.size(2) % 3 != 0 || n_head < 1 || (qkv.size(2) / 3) % n_head != 0)
    throw InternalError("FusedCausalAttention: qkv must be [B, T, 3 d] with d divisible by " + std::to_string(n_head) +
                        " heads, got " + c10::str(qkv.sizes()));
  if (!qkv.device().is_cpu()) throw InternalError("FusedCausalAttention: CPU tensors only, got " + qkv.device().str());
  const int64_t w = qkv.size(2) / 3;
  return {qkv.size(0), qkv.size(1), n_head, w / n_head, w, causal, window};
}

// Computes in float32 (float64 stays float64).
torch::Tensor Widened(const torch::Tensor& t) {
  return (t.scalar_type() == torch::kDouble ? t : t.to(torch::kFloat)).contiguous();
}

class FusedAttentionFn : public torch::autograd::Function<FusedAttentionFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& qkv, int64_t n_head,
                               bool causal, int64_t window) {
    const Shape sh = ShapeOf(qkv, n_head, causal, window);
    const torch::Tensor x = Widened(qkv);
    torch::Tensor out = torch::empty({sh.batch, sh.steps, sh.width}, x.options());
    torch::Tensor lse = torch::empty({sh.batch, sh.heads, sh.steps}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "FusedCausalAttention", [&] {
      const scalar_t* px = x.data_ptr<scalar_t>();
      scalar_t *po = out.data_ptr<scalar_t>(), *pl = lse.data_ptr<scalar_t>();
      at::parallel_for(0, sh.batch * sh.heads * sh.tiles(), 1,
                       [&](int64_t begin, int64_t end) { Forward<scalar_t>(sh, px, po, pl, begin, end); });
    });
    ctx->save_for_backward({x, out, lse});
    ctx->saved_data["n_head"] = n_head;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["window"] = window;
    ctx->saved_data["dtype"] = static_cast<int64_t>(qkv.scalar_type());
    return out.to(qkv.scalar_type());
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &out = saved[1], &lse = saved[2];
    const Shape sh = ShapeOf(x, ctx->saved_data["n_head"].toInt(), ctx->saved_data["causal"].toBool(),
                             ctx->saved_data["window"].toInt());
    const torch::Tensor g = grads[0].to(x.scalar_type()).contiguous();
    torch::Tensor gx = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "FusedCausalAttention backward", [&] {
      const scalar_t *px = x.data_ptr<scalar_t>(), *po = out.data_ptr<scalar_t>(), *pl = lse.data_ptr<scalar_t>(),
                     *pg = g.data_ptr<scalar_t>();
      scalar_t* pgx = gx.data_ptr<scalar_t>();
      at::parallel_for(0, sh.batch * sh.heads, 1,
                       [&](int64_t begin, int64_t end) { Backward<scalar_t>(sh, px, po, pl, pg, pgx, begin, end); });
    });
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {gx.to(dtype), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor FusedAttention(const torch::Tensor& qkv, int64_t n_head, bool causal, int64_t window) {
  return FusedAttentionFn::apply(qkv, n_head, causal, window);
}

torch::Tensor FusedCausalAttention(const torch::Tensor& qkv, int64_t n_head) {
  return FusedAttention(qkv, n_head, true, 0);
}

namespace {

// On the CPU the fused kernel, except for bf16 (autocast) windows of up to 256 positions, where the
// composed ops' bf16 batched products (oneDNN) were measured faster (docs/benchmarks.md: 14.5
// against 17.2 ms forward + backward at T 256; the fused kernel wins from T 512 on, 6.7x there).
// BITBYTE_ATTENTION=fused|composed forces one (to measure them end to end).
bool UseFused(const torch::Tensor& qkv) {
  static const std::string forced = [] {
    const char* v = std::getenv("BITBYTE_ATTENTION");
    return std::string(v != nullptr ? v : "");
  }();
  if (forced == "fused" || forced == "composed") return forced == "fused";
  return !(IsReduced(qkv) && qkv.size(1) <= 256);
}

}  // namespace

torch::Tensor SelfAttention(const torch::Tensor& qkv, int64_t n_head) {
  return qkv.device().is_cpu() && UseFused(qkv) ? FusedCausalAttention(qkv, n_head) : ComposedAttention(qkv, n_head);
}

torch::Tensor SelfAttention(const torch::Tensor& qkv, int64_t n_head, bool causal, int64_t window) {
  if (causal && window <= 0) return SelfAttention(qkv, n_head);
  return qkv.device().is_cpu() ? FusedAttention(qkv, n_head, causal, window)
                               : MaskedAttention(qkv, n_head, causal, window);
}

}  // namespace bitbyte::models
