#include "models/linear.h"

#include <oneapi/dnnl/dnnl.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "base/cpu.h"
#include "base/error.h"
#include "models/blas.h"
#include "models/precision.h"
#include "models/qat.h"
#include "models/quant.h"

namespace bitbyte::models {
namespace {

MatmulChoice Decide() {
  const char* forced = std::getenv("BITBYTE_MATMUL");
  if (forced != nullptr && *forced != '\0') {
    const std::string f = forced;
    if (f == "blas") return {MatmulPath::kBlas, "BITBYTE_MATMUL=blas"};
    if (f == "onednn") return {MatmulPath::kOneDnn, "BITBYTE_MATMUL=onednn"};
    throw Error("BITBYTE_MATMUL='" + f + "': want blas or onednn");
  }
  // OpenBLAS at its best core for this CPU: the training step measured the same on either library
  // (Intel Xeon model 207, SkylakeX kernels: 0.667 s against 0.668 s, docs/benchmarks.md), so
  // LibTorch's own path. Held to a lesser core (an OPENBLAS_CORETYPE the environment set, kept
  // because some OpenBLAS builds are wrong on some CPUs): oneDNN uses the whole CPU (AMD EPYC
  // family 26 with Haswell set: 364 against 189 GFLOPS on 128-wide products).
  const BlasDecision& blas = BlasInUse();
  const std::string best = PreferredOpenBlasCore(cpu::This());
  if (blas.core.empty() || best.empty() || OpenBlasCoreRank(blas.core) >= OpenBlasCoreRank(best))
    return {MatmulPath::kBlas, "OpenBLAS runs its best core here (" + (blas.core.empty() ? "none" : blas.core) + ")"};
  const std::string bad = OneDnnSelfCheck();
  if (!bad.empty()) {
    std::fprintf(stderr, "warning: oneDNN's sgemm failed its self-check (%s); Linear layers run on LibTorch's BLAS\n",
                 bad.c_str());
    return {MatmulPath::kBlas, "oneDNN sgemm failed its self-check: " + bad};
  }
  return {MatmulPath::kOneDnn, "OpenBLAS is held to " + blas.core + " where the CPU runs " + best +
                                   " kernels; oneDNN sgemm (its own CPU detection), self-check passed"};
}

// The float32 CPU product on oneDNN: x [M, in] (any leading shape), w [out, in]. LibTorch's
// custom functions take no undefined tensors: a Linear without a bias is a function of its own.
torch::Tensor Forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input, const torch::Tensor& weight,
                      const torch::Tensor* bias) {
  const int64_t in = weight.size(1), out = weight.size(0);
  const torch::Tensor x = input.reshape({-1, in}).contiguous(), w = weight.contiguous();
  const int64_t m = x.size(0);
  // A copy of the bias to accumulate into, never the bias itself (expand(...).contiguous() of one
  // row is the bias's own storage: the product would have been added to the parameter).
  torch::Tensor y = torch::empty({m, out}, x.options());
  if (bias != nullptr) y.copy_(bias->expand({m, out}));
  if (m > 0 && out > 0)
    OneDnnGemm(false, true, m, out, in, 1.0f, x.data_ptr<float>(), in, w.data_ptr<float>(), in,
               bias != nullptr ? 1.0f : 0.0f, y.data_ptr<float>(), out);
  ctx->save_for_backward({x, w});
  std::vector<int64_t> shape = input.sizes().vec();
  shape.back() = out;
  return y.view(shape);
}

// dX = dY w, dW = dY^T x, db = the column sums of dY (when `bias`).
torch::autograd::tensor_list Backward(torch::autograd::AutogradContext* ctx, const torch::Tensor& grad, bool bias) {
  const auto saved = ctx->get_saved_variables();
  const torch::Tensor &x = saved[0], &w = saved[1];
  const int64_t m = x.size(0), in = w.size(1), out = w.size(0);
  const torch::Tensor gy = grad.reshape({m, out}).contiguous();
  torch::autograd::tensor_list g(bias ? 3 : 2);
  if (ctx->needs_input_grad(0)) {
    torch::Tensor gx = torch::zeros({m, in}, x.options());
    if (m > 0 && out > 0)
      OneDnnGemm(false, false, m, in, out, 1.0f, gy.data_ptr<float>(), out, w.data_ptr<float>(), in, 0.0f,
                 gx.data_ptr<float>(), in);
    std::vector<int64_t> shape = grad.sizes().vec();
    shape.back() = in;
    g[0] = gx.view(shape);
  }
  if (ctx->needs_input_grad(1)) {
    g[1] = torch::zeros({out, in}, x.options());
    if (m > 0)
      OneDnnGemm(true, false, out, in, m, 1.0f, gy.data_ptr<float>(), out, x.data_ptr<float>(), in, 0.0f,
                 g[1].data_ptr<float>(), in);
  }
  if (bias && ctx->needs_input_grad(2)) g[2] = gy.sum(0);
  return g;
}

class OneDnnLinearFn : public torch::autograd::Function<OneDnnLinearFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    return Forward(ctx, input, weight, &bias);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    return Backward(ctx, grads[0], true);
  }
};

class OneDnnLinearNoBiasFn : public torch::autograd::Function<OneDnnLinearNoBiasFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                               const torch::Tensor& weight) {
    return Forward(ctx, input, weight, nullptr);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    return Backward(ctx, grads[0], false);
  }
};

}  // namespace

const MatmulChoice& LinearPath() {
  static const MatmulChoice choice = Decide();
  return choice;
}

const char* MatmulPathName(MatmulPath p) { return p == MatmulPath::kOneDnn ? "onednn" : "blas"; }

void OneDnnGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (st != dnnl_success) throw InternalError("dnnl_sgemm failed with status " + std::to_string(st));
}

std::string CheckMatmul(const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& mm) {
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(1234);
  const int64_t sizes[] = {1, 3, 16, 17, 31, 64, 67};
  for (int i = 0; i < 24; ++i) {
    const int64_t m = sizes[rng() % 7], k = sizes[rng() % 7], n = sizes[rng() % 7];
    const bool ta = rng() % 2, tb = rng() % 2;
    torch::Tensor a = ta ? torch::randn({k, m}).t() : torch::randn({m, k});
    torch::Tensor b = tb ? torch::randn({n, k}).t() : torch::randn({k, n});
    const torch::Tensor got = mm(a, b).to(torch::kDouble);
    const torch::Tensor want = torch::mm(a.to(torch::kDouble), b.to(torch::kDouble));
    const double err = (got - want).abs().max().item<double>();
    const double bound = 1e-4 * std::sqrt(static_cast<double>(k)) * (1 + want.abs().max().item<double>());
    if (!(err <= bound)) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "%lldx%lld by %lldx%lld%s%s: max error %.3g, allowed %.3g", (long long)m,
                    (long long)k, (long long)k, (long long)n, ta ? " (a transposed)" : "", tb ? " (b transposed)" : "",
                    err, bound);
      return buf;
    }
  }
  return "";
}

std::string OneDnnSelfCheck() {
  return CheckMatmul([](const torch::Tensor& a, const torch::Tensor& b) {
    // A transposed operand is the transpose of a contiguous array: oneDNN reads that array.
    const bool ta = !a.is_contiguous(), tb = !b.is_contiguous();
    const torch::Tensor as = ta ? a.t() : a, bs = tb ? b.t() : b;
    const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
    torch::Tensor c = torch::zeros({m, n});  // accumulated into (beta 1), as with a bias
    OneDnnGemm(ta, tb, m, n, k, 1.0f, as.data_ptr<float>(), as.size(1), bs.data_ptr<float>(), bs.size(1), 1.0f,
               c.data_ptr<float>(), n);
    return c;
  });
}

torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  if (const auto q = quant::Find(w)) return quant::Apply(*q, x);       // a quantized model (quant.h)
  quant::Observe(w, x);                                                // a calibration (quant.h)
  if (torch::Tensor y = qat::Forward(x, w, b); y.defined()) return y;  // quantization-aware (qat.h)
  const bool ours = x.device().is_cpu() && x.scalar_type() == torch::kFloat && w.scalar_type() == torch::kFloat &&
                    (!b.defined() || b.scalar_type() == torch::kFloat) && !CpuAutocastEnabled() &&
                    LinearPath().path == MatmulPath::kOneDnn;
  if (!ours) return torch::linear(x, w, b);
  return b.defined() ? OneDnnLinearFn::apply(x, w, b) : OneDnnLinearNoBiasFn::apply(x, w);
}

}  // namespace bitbyte::models
