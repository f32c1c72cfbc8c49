#include "models/gelu.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <cmath>

#include "models/cpu_kernels.h"

namespace bitbyte::models {
namespace {

using kernels::ExpInPlace;

constexpr int64_t kBlock = 256;  // elements per pass through the stack buffers

template <typename T>
BITBYTE_KERNEL_INLINE float ToFloat(T v) {
  return static_cast<float>(v);
}
template <typename T>
BITBYTE_KERNEL_INLINE T FromFloat(float v) {
  return static_cast<T>(v);
}

// For n <= kBlock elements of x (as float): cdf[i] = 0.5 (1 + erf(x / sqrt 2)) and
// pdf[i] = exp(-x^2 / 2) / sqrt(2 pi), the two halves of GELU and of its derivative.
BITBYTE_KERNEL_INLINE void CdfPdf(const float* __restrict x, float* __restrict cdf, float* __restrict pdf, int64_t n) {
  for (int64_t i = 0; i < n; ++i) pdf[i] = -0.5f * x[i] * x[i];
  ExpInPlace(pdf, n);  // exp(-z^2), z = |x| / sqrt 2
  for (int64_t i = 0; i < n; ++i) {
    const float z = std::fabs(x[i]) * 0.70710678118654752f;
    const float t = 1.0f / (1.0f + 0.3275911f * z);
    const float poly =
        t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    const float erf_abs = 1.0f - poly * pdf[i];
    cdf[i] = 0.5f + 0.5f * (x[i] < 0 ? -erf_abs : erf_abs);
    pdf[i] *= 0.39894228040143268f;
  }
}

template <typename T>
BITBYTE_KERNEL_INLINE void ForwardRange(const T* x, T* y, int64_t begin, int64_t end) {
  float xf[kBlock], cdf[kBlock], pdf[kBlock];
  for (int64_t b = begin; b < end; b += kBlock) {
    const int64_t n = std::min(kBlock, end - b);
    for (int64_t i = 0; i < n; ++i) xf[i] = ToFloat(x[b + i]);
    CdfPdf(xf, cdf, pdf, n);
    for (int64_t i = 0; i < n; ++i) y[b + i] = FromFloat<T>(xf[i] * cdf[i]);
  }
}

template <typename T>
BITBYTE_KERNEL_INLINE void BackwardRange(const T* x, const T* gy, T* gx, int64_t begin, int64_t end) {
  float xf[kBlock], cdf[kBlock], pdf[kBlock];
  for (int64_t b = begin; b < end; b += kBlock) {
    const int64_t n = std::min(kBlock, end - b);
    for (int64_t i = 0; i < n; ++i) xf[i] = ToFloat(x[b + i]);
    CdfPdf(xf, cdf, pdf, n);
    for (int64_t i = 0; i < n; ++i) gx[b + i] = FromFloat<T>(ToFloat(gy[b + i]) * (cdf[i] + xf[i] * pdf[i]));
  }
}

BITBYTE_KERNEL_DISPATCH(Forward, ForwardRange)
BITBYTE_KERNEL_DISPATCH(Backward, BackwardRange)

constexpr int64_t kGrain = 1 << 14;

class GeluFn : public torch::autograd::Function<GeluFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input) {
    const torch::Tensor x = input.contiguous();
    torch::Tensor y = torch::empty_like(x);
    const int64_t n = x.numel();
    if (x.scalar_type() == torch::kFloat) {
      const float* px = x.data_ptr<float>();
      float* py = y.data_ptr<float>();
      at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { Forward<float>(px, py, b, e); });
    } else {
      const auto* px = x.data_ptr<c10::BFloat16>();
      auto* py = y.data_ptr<c10::BFloat16>();
      at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { Forward<c10::BFloat16>(px, py, b, e); });
    }
    ctx->save_for_backward({x});
    return y;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const torch::Tensor x = ctx->get_saved_variables()[0];
    const torch::Tensor gy = grads[0].to(x.scalar_type()).contiguous();
    torch::Tensor gx = torch::empty_like(x);
    const int64_t n = x.numel();
    if (x.scalar_type() == torch::kFloat) {
      const float *px = x.data_ptr<float>(), *pg = gy.data_ptr<float>();
      float* po = gx.data_ptr<float>();
      at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { Backward<float>(px, pg, po, b, e); });
    } else {
      const auto *px = x.data_ptr<c10::BFloat16>(), *pg = gy.data_ptr<c10::BFloat16>();
      auto* po = gx.data_ptr<c10::BFloat16>();
      at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { Backward<c10::BFloat16>(px, pg, po, b, e); });
    }
    return {gx};
  }
};

}  // namespace

void GeluForward(const float* x, float* y, int64_t n) { Forward<float>(x, y, int64_t{0}, n); }

torch::Tensor Gelu(const torch::Tensor& x) {
  const bool ours = x.device().is_cpu() && (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16);
  return ours ? GeluFn::apply(x) : torch::gelu(x);
}

}  // namespace bitbyte::models
