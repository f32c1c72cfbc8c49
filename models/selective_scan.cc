#include "models/selective_scan.h"

#include <ATen/Config.h>  // AT_PARALLEL_OPENMP
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/error.h"
#include "models/cpu_kernels.h"

namespace bitbyte::models {
namespace {

using kernels::ExpInPlace;
using kernels::LaneSum;

// Chunk length of kChunked.
constexpr int64_t kScanChunk = 16;

// ---------------------------------------------------------------------------------------------
// Checks

std::string Dims(c10::IntArrayRef sizes) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
  s << ']';
  return s.str();
}

[[noreturn]] void Fail(const char* fn, const std::string& what) { throw InternalError(std::string(fn) + ": " + what); }

// t must be defined, float or double like ref (or itself when ref is null), on ref's device, of
// `want` sizes (described by `names`, e.g. "[B, D, T]").
void CheckArg(const char* fn, const torch::Tensor& t, const char* name, const torch::Tensor* ref, c10::IntArrayRef want,
              const char* names) {
  if (!t.defined()) Fail(fn, std::string(name) + " is undefined");
  if (t.scalar_type() != torch::kFloat && t.scalar_type() != torch::kDouble)
    Fail(fn, std::string(name) + " must be float or double, got " + std::string(c10::toString(t.scalar_type())));
  if (ref && t.scalar_type() != ref->scalar_type())
    Fail(fn, std::string(name) + " must have u's dtype " + std::string(c10::toString(ref->scalar_type())) + ", got " +
                 std::string(c10::toString(t.scalar_type())));
  if (ref && t.device() != ref->device())
    Fail(fn, std::string(name) + " must be on u's device " + ref->device().str() + ", got " + t.device().str());
  if (t.sizes() != want)
    Fail(fn, std::string(name) + " must be " + names + " = " + Dims(want) + ", got " + Dims(t.sizes()));
}

void CheckRank(const char* fn, const torch::Tensor& t, const char* name, int64_t rank, const char* names) {
  if (!t.defined()) Fail(fn, std::string(name) + " is undefined");
  if (t.dim() != rank) Fail(fn, std::string(name) + " must be " + names + ", got " + Dims(t.sizes()));
}

// ---------------------------------------------------------------------------------------------
// kReference: one step of tensor ops per position.

torch::Tensor ReferenceScan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                            const torch::Tensor& Bm, const torch::Tensor& C, const torch::Tensor& Dskip) {
  const int64_t b = u.size(0), d = u.size(1), t_len = u.size(2), n = A.size(1);
  torch::Tensor h = torch::zeros({b, d, n}, u.options());
  std::vector<torch::Tensor> ys;
  ys.reserve(t_len);
  for (int64_t t = 0; t < t_len; ++t) {
    const torch::Tensor dt = delta.select(2, t), x = u.select(2, t);        // [B, D]
    const torch::Tensor decay = torch::exp(dt.unsqueeze(-1) * A);           // [B, D, N]
    h = decay * h + (dt * x).unsqueeze(-1) * Bm.select(2, t).unsqueeze(1);  // [B, D, N]
    ys.push_back((h * C.select(2, t).unsqueeze(1)).sum(-1) + Dskip * x);    // [B, D]
  }
  if (ys.empty()) return u * Dskip.view({1, d, 1});  // T = 0: empty
  return torch::stack(ys, 2);
}

// ---------------------------------------------------------------------------------------------
// kChunked: chunks of L positions. With S_t = sum_{r <= t} delta_r A (inclusive, from the chunk's
// start) and x_s = delta_s u_s B_s, the state inside a chunk is
//   h_t = sum_{s <= t} exp(S_t - S_s) x_s + exp(S_t) h_start,
// the first term from a masked [L, L] "segsum" of log decays, the second carried from the previous
// chunk: h_start' = exp(S_{L-1}) h_start + (first term at t = L - 1).

torch::Tensor ChunkedScan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                          const torch::Tensor& Bm, const torch::Tensor& C, const torch::Tensor& Dskip) {
  const int64_t b = u.size(0), d = u.size(1), t_len = u.size(2), n = A.size(1);
  if (t_len == 0) return ReferenceScan(u, delta, A, Bm, C, Dskip);
  const int64_t l = std::min<int64_t>(kScanChunk, t_len), k = (t_len + l - 1) / l, pad = k * l - t_len;
  // Padding with delta = 0 and u = 0 leaves the state as it is; the padded outputs are dropped.
  auto padded = [&](const torch::Tensor& x) { return pad ? torch::constant_pad_nd(x, {0, pad}, 0) : x; };
  const torch::Tensor dt = padded(delta).reshape({b, d, k, l});                                   // [B, D, K, L]
  const torch::Tensor x_in = (dt * padded(u).reshape({b, d, k, l})).unsqueeze(-1);                // [B, D, K, L, 1]
  const torch::Tensor b_c = padded(Bm).reshape({b, n, k, l}).permute({0, 2, 3, 1}).unsqueeze(1);  // [B, 1, K, L, N]
  const torch::Tensor c_c = padded(C).reshape({b, n, k, l}).permute({0, 2, 3, 1}).unsqueeze(1);   // [B, 1, K, L, N]
  const torch::Tensor x = x_in * b_c;                                                             // [B, D, K, L, N]
  const torch::Tensor s = (dt.unsqueeze(-1) * A.view({1, d, 1, 1, n})).cumsum(3);                 // [B, D, K, L, N]
  // seg[..., t, s, :] = S_t - S_s where s <= t, -inf above the diagonal.
  const torch::Tensor upper = torch::ones({l, l}, u.options().dtype(torch::kBool)).triu(1).view({1, 1, 1, l, l, 1});
  const torch::Tensor seg =
      (s.unsqueeze(4) - s.unsqueeze(3)).masked_fill(upper, -std::numeric_limits<double>::infinity());
  const torch::Tensor intra = (seg.exp() * x.unsqueeze(3)).sum(4);  // [B, D, K, L, N]
  // The state entering each chunk, carried chunk to chunk.
  const torch::Tensor chunk_decay = s.select(3, l - 1).exp(), chunk_local = intra.select(3, l - 1);  // [B, D, K, N]
  std::vector<torch::Tensor> starts;
  starts.reserve(k);
  torch::Tensor h = torch::zeros({b, d, n}, u.options());
  for (int64_t c = 0; c < k; ++c) {
    starts.push_back(h);
    if (c + 1 < k) h = chunk_decay.select(2, c) * h + chunk_local.select(2, c);
  }
  const torch::Tensor h0 = torch::stack(starts, 2).unsqueeze(3);  // [B, D, K, 1, N]
  const torch::Tensor states = intra + s.exp() * h0;              // [B, D, K, L, N]
  const torch::Tensor y = (states * c_c).sum(-1).view({b, d, k * l}).narrow(2, 0, t_len);
  return y + Dskip.view({1, d, 1}) * u;
}

// ---------------------------------------------------------------------------------------------
// kFused: loops over (b, d) rows, inner loops over the contiguous N states.

// The inputs, contiguous; B and C transposed to [B, T, N] so that a position's N values are
// contiguous.
template <typename T>
struct Operands {
  const T* u;      // [B, D, T]
  const T* delta;  // [B, D, T]
  const T* a;      // [D, N]
  const T* bt;     // [B, T, N]
  const T* ct;     // [B, T, N]
  const T* dskip;  // [D]
  int64_t batch, channels, steps, states;
};

// h = exp(dt a) h + dtx b; p = c h (elementwise). e holds exp(dt a) afterwards.
template <typename T>
BITBYTE_KERNEL_INLINE void ForwardStep(T* __restrict h_out, const T* __restrict h_in, T* __restrict e, T* __restrict p,
                                       const T* __restrict a, const T* __restrict b, const T* __restrict c, T dt, T dtx,
                                       int64_t n) {
  for (int64_t i = 0; i < n; ++i) e[i] = dt * a[i];
  ExpInPlace(e, n);
  for (int64_t i = 0; i < n; ++i) {
    h_out[i] = e[i] * h_in[i] + dtx * b[i];
    p[i] = c[i] * h_out[i];
  }
}

// Rows [begin, end) of the flattened (b, d); y: [B, D, T].
template <typename T>
BITBYTE_KERNEL_INLINE void ForwardRows(const Operands<T>& o, T* y, int64_t begin, int64_t end) {
  const int64_t n = o.states, steps = o.steps;
  std::vector<T> scratch(4 * n);
  T* h0 = scratch.data();
  T* h1 = h0 + n;
  T* e = h1 + n;
  T* p = e + n;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / o.channels, d = row % o.channels;
    const T* u = o.u + row * steps;
    const T* delta = o.delta + row * steps;
    const T* a = o.a + d * n;
    const T* bt = o.bt + b * steps * n;
    const T* ct = o.ct + b * steps * n;
    const T dskip = o.dskip[d];
    T* yr = y + row * steps;
    std::fill(h0, h0 + n, T(0));
    for (int64_t t = 0; t < steps; ++t) {
      const T dt = delta[t], x = u[t];
      ForwardStep<T>(h1, h0, e, p, a, bt + t * n, ct + t * n, dt, dt * x, n);
      std::swap(h0, h1);
      yr[t] = LaneSum(p, n) + dskip * x;
    }
  }
}

// Recomputes a row's states: h[(t + 1) N + i] = h_t[i] (h[0..N) = 0), e[t N + i] = exp(delta_t a_i).
template <typename T>
BITBYTE_KERNEL_INLINE void RecomputeStates(T* __restrict h, T* __restrict e, const T* __restrict a,
                                           const T* __restrict bt, const T* __restrict u, const T* __restrict delta,
                                           int64_t steps, int64_t n) {
  std::fill(h, h + n, T(0));
  for (int64_t t = 0; t < steps; ++t) {
    const T dt = delta[t], dtx = dt * u[t];
    T* et = e + t * n;
    const T* b = bt + t * n;
    const T* hp = h + t * n;
    T* hc = h + (t + 1) * n;
    for (int64_t i = 0; i < n; ++i) et[i] = dt * a[i];
    ExpInPlace(et, n);
    for (int64_t i = 0; i < n; ++i) hc[i] = et[i] * hp[i] + dtx * b[i];
  }
}

// One reverse step at position t. gh: dL/dh_t from later positions on entry, dL/dh_{t-1} on exit.
template <typename T>
BITBYTE_KERNEL_INLINE void BackwardStep(T* __restrict gh, T* __restrict ga, T* __restrict gb, T* __restrict gc,
                                        T* __restrict pu, T* __restrict pw, const T* __restrict e,
                                        const T* __restrict h_prev, const T* __restrict h_cur, const T* __restrict a,
                                        const T* __restrict b, const T* __restrict c, T g, T dt, T dtx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T ghi = gh[i] + g * c[i];  // dL/dh_t
    gc[i] += g * h_cur[i];
    gb[i] += ghi * dtx;
    pu[i] = ghi * b[i];
    const T w = ghi * e[i] * h_prev[i];  // through exp(dt a_i) h_{t-1}
    ga[i] += w * dt;
    pw[i] = w * a[i];
    gh[i] = ghi * e[i];
  }
}

struct BackwardOut {
  void* gu;      // [B, D, T]
  void* gdelta;  // [B, D, T]
  void* ga;      // [B, D, N]: per b, summed over t (each (b, d) written by one task)
  void* gd;      // [B, D]
  void* gb;      // [B, S, T, N]: per b and slice s of channels, summed over the slice's d
  void* gc;      // [B, S, T, N]
  int64_t slices;
};

// Tasks [begin, end) of the flattened (b, slice): each owns its rows and its partial buffers.
template <typename T>
BITBYTE_KERNEL_INLINE void BackwardTasks(const Operands<T>& o, const T* gy, const BackwardOut& out, int64_t begin,
                                         int64_t end) {
  const int64_t n = o.states, steps = o.steps, dim = o.channels, slices = out.slices;
  std::vector<T> scratch((2 * steps + 1) * n + 4 * n);
  T* hs = scratch.data();        // (T + 1) x N
  T* es = hs + (steps + 1) * n;  // T x N
  T* gh = es + steps * n;
  T* pu = gh + n;
  T* pw = pu + n;
  T* ga_row = pw + n;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / slices, s = task % slices;
    const int64_t d_begin = s * dim / slices, d_end = (s + 1) * dim / slices;
    T* gb = static_cast<T*>(out.gb) + task * steps * n;
    T* gc = static_cast<T*>(out.gc) + task * steps * n;
    const T* bt = o.bt + b * steps * n;
    const T* ct = o.ct + b * steps * n;
    for (int64_t d = d_begin; d < d_end; ++d) {
      const int64_t row = b * dim + d;
      const T* u = o.u + row * steps;
      const T* delta = o.delta + row * steps;
      const T* a = o.a + d * n;
      const T* gyr = gy + row * steps;
      T* gu = static_cast<T*>(out.gu) + row * steps;
      T* gdelta = static_cast<T*>(out.gdelta) + row * steps;
      const T dskip = o.dskip[d];
      RecomputeStates<T>(hs, es, a, bt, u, delta, steps, n);
      std::fill(gh, gh + n, T(0));
      std::fill(ga_row, ga_row + n, T(0));
      T gd = 0;
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T g = gyr[t], x = u[t], dt = delta[t];
        gd += g * x;
        BackwardStep<T>(gh, ga_row, gb + t * n, gc + t * n, pu, pw, es + t * n, hs + t * n, hs + (t + 1) * n, a,
                        bt + t * n, ct + t * n, g, dt, dt * x, n);
        const T su = LaneSum(pu, n), sw = LaneSum(pw, n);
        gu[t] = g * dskip + dt * su;
        gdelta[t] = sw + x * su;
      }
      std::copy(ga_row, ga_row + n, static_cast<T*>(out.ga) + row * n);
      static_cast<T*>(out.gd)[row] = gd;
    }
  }
}

// Instruction sets: the kernels' entry points, compiled three times (the build targets baseline
// x86-64, SSE2) and picked at run time by CpuIsa() (models/cpu_kernels.h).
BITBYTE_KERNEL_DISPATCH(ForwardKernel, ForwardRows)
BITBYTE_KERNEL_DISPATCH(BackwardKernel, BackwardTasks)

template <typename T>
Operands<T> MakeOperands(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& a,
                         const torch::Tensor& bt, const torch::Tensor& ct, const torch::Tensor& dskip) {
  return {u.data_ptr<T>(),     delta.data_ptr<T>(), a.data_ptr<T>(), bt.data_ptr<T>(), ct.data_ptr<T>(),
          dskip.data_ptr<T>(), u.size(0),           u.size(1),       u.size(2),        a.size(1)};
}

// Debian's LibTorch uses the OpenMP backend, whose at::parallel_for is a header template around
// `#pragma omp parallel`: this file is compiled with -fopenmp (models/CMakeLists.txt), or the
// kernel would run on the calling thread alone.
#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "selective_scan.cc needs -fopenmp: at::parallel_for would run on one thread"
#endif

// Rows (or tasks) per parallel chunk: about 16K state updates at least.
int64_t Grain(int64_t steps, int64_t states) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, steps * states));
}

class FusedScan : public torch::autograd::Function<FusedScan> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& u_in,
                               const torch::Tensor& delta_in, const torch::Tensor& a_in, const torch::Tensor& b_in,
                               const torch::Tensor& c_in, const torch::Tensor& d_in) {
    const torch::Tensor u = u_in.contiguous(), delta = delta_in.contiguous(), a = a_in.contiguous(),
                        dskip = d_in.contiguous();
    const torch::Tensor bt = b_in.transpose(1, 2).contiguous(), ct = c_in.transpose(1, 2).contiguous();
    ctx->save_for_backward({u, delta, a, bt, ct, dskip});
    torch::Tensor y = torch::empty_like(u);
    const int64_t rows = u.size(0) * u.size(1);
    AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "SelectiveScan(kFused)", [&] {
      const Operands<scalar_t> o = MakeOperands<scalar_t>(u, delta, a, bt, ct, dskip);
      scalar_t* yp = y.data_ptr<scalar_t>();
      at::parallel_for(0, rows, Grain(o.steps, o.states),
                       [&](int64_t begin, int64_t end) { ForwardKernel<scalar_t>(o, yp, begin, end); });
    });
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &u = saved[0], &delta = saved[1], &a = saved[2], &bt = saved[3], &ct = saved[4],
                        &dskip = saved[5];
    const torch::Tensor gy = grads[0].defined() ? grads[0].contiguous() : torch::zeros_like(u);
    const int64_t batch = u.size(0), dim = u.size(1), steps = u.size(2), n = a.size(1);
    // Channel slices per batch row: enough tasks for every thread, each with its own [T, N]
    // partial sums for B and C (memory max(B, 2 threads) x T x N, never B x D x T x N).
    const int64_t threads = at::get_num_threads();
    const int64_t slices =
        std::clamp<int64_t>((2 * threads + batch - 1) / std::max<int64_t>(batch, 1), 1, std::max<int64_t>(dim, 1));
    torch::Tensor gu = torch::empty_like(u), gdelta = torch::empty_like(u);
    torch::Tensor ga = torch::empty({batch, dim, n}, u.options()), gd = torch::empty({batch, dim}, u.options());
    torch::Tensor gb = torch::zeros({batch, slices, steps, n}, u.options()), gc = torch::zeros_like(gb);
    const BackwardOut out{gu.data_ptr(), gdelta.data_ptr(), ga.data_ptr(), gd.data_ptr(),
                          gb.data_ptr(), gc.data_ptr(),     slices};
    AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "SelectiveScan(kFused) backward", [&] {
      const Operands<scalar_t> o = MakeOperands<scalar_t>(u, delta, a, bt, ct, dskip);
      const scalar_t* gyp = gy.data_ptr<scalar_t>();
      at::parallel_for(0, batch * slices, 1,
                       [&](int64_t begin, int64_t end) { BackwardKernel<scalar_t>(o, gyp, out, begin, end); });
    });
    return {gu,       gdelta, ga.sum(0), gb.sum(1).transpose(1, 2).contiguous(), gc.sum(1).transpose(1, 2).contiguous(),
            gd.sum(0)};
  }
};

}  // namespace

torch::Tensor SelectiveScan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                            const torch::Tensor& Bm, const torch::Tensor& C, const torch::Tensor& Dskip,
                            ScanImpl impl) {
  constexpr const char* kFn = "SelectiveScan";
  CheckRank(kFn, u, "u", 3, "[B, D, T]");
  CheckArg(kFn, u, "u", nullptr, u.sizes(), "[B, D, T]");
  const int64_t b = u.size(0), d = u.size(1), t = u.size(2);
  CheckArg(kFn, delta, "delta", &u, {b, d, t}, "[B, D, T]");
  CheckRank(kFn, A, "A", 2, "[D, N]");
  const int64_t n = A.size(1);
  CheckArg(kFn, A, "A", &u, {d, n}, "[D, N]");
  CheckArg(kFn, Bm, "Bm", &u, {b, n, t}, "[B, N, T]");
  CheckArg(kFn, C, "C", &u, {b, n, t}, "[B, N, T]");
  CheckArg(kFn, Dskip, "Dskip", &u, {d}, "[D]");
  if (impl == ScanImpl::kAuto) impl = u.device().is_cpu() ? ScanImpl::kFused : ScanImpl::kChunked;
  switch (impl) {
    case ScanImpl::kReference: return ReferenceScan(u, delta, A, Bm, C, Dskip);
    case ScanImpl::kChunked: return ChunkedScan(u, delta, A, Bm, C, Dskip);
    case ScanImpl::kFused:
      if (!u.device().is_cpu()) Fail(kFn, "kFused needs CPU tensors, u is on " + u.device().str());
      return FusedScan::apply(u, delta, A, Bm, C, Dskip);
    case ScanImpl::kAuto: break;
  }
  Fail(kFn, "unknown ScanImpl");
}

torch::Tensor SelectiveScanStep(torch::Tensor& h, const torch::Tensor& u, const torch::Tensor& delta,
                                const torch::Tensor& A, const torch::Tensor& Bm, const torch::Tensor& C,
                                const torch::Tensor& Dskip) {
  constexpr const char* kFn = "SelectiveScanStep";
  CheckRank(kFn, u, "u", 2, "[B, D]");
  CheckArg(kFn, u, "u", nullptr, u.sizes(), "[B, D]");
  const int64_t b = u.size(0), d = u.size(1);
  CheckArg(kFn, delta, "delta", &u, {b, d}, "[B, D]");
  CheckRank(kFn, A, "A", 2, "[D, N]");
  const int64_t n = A.size(1);
  CheckArg(kFn, A, "A", &u, {d, n}, "[D, N]");
  CheckArg(kFn, Bm, "Bm", &u, {b, n}, "[B, N]");
  CheckArg(kFn, C, "C", &u, {b, n}, "[B, N]");
  CheckArg(kFn, Dskip, "Dskip", &u, {d}, "[D]");
  CheckArg(kFn, h, "h", &u, {b, d, n}, "[B, D, N]");
  h.mul_(torch::exp(delta.unsqueeze(-1) * A)).add_((delta * u).unsqueeze(-1) * Bm.unsqueeze(1));
  return (h * C.unsqueeze(1)).sum(-1) + Dskip * u;
}

}  // namespace bitbyte::models
