#include "models/cross_entropy.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "base/error.h"
#include "models/cpu_kernels.h"

namespace bitbyte::models {
namespace {

using kernels::ExpInPlace;
using kernels::LaneSum;

// Row r of the logits as float32 into buf; returns its log-sum-exp (buf then holds exp(x - max)).
template <typename T>
BITBYTE_KERNEL_INLINE float RowLse(const T* x, float* buf, int64_t v) {
  for (int64_t j = 0; j < v; ++j) buf[j] = static_cast<float>(x[j]);
  float mx = buf[0];
  for (int64_t j = 1; j < v; ++j) mx = std::max(mx, buf[j]);
  for (int64_t j = 0; j < v; ++j) buf[j] -= mx;
  ExpInPlace(buf, v);
  return mx + std::log(LaneSum(buf, v));
}

template <typename T>
BITBYTE_KERNEL_INLINE void ForwardRows(const T* x, const int64_t* t, float* lse, float* loss, int64_t v, int64_t begin,
                                       int64_t end) {
  std::vector<float> buf(v);
  for (int64_t r = begin; r < end; ++r) {
    lse[r] = RowLse(x + r * v, buf.data(), v);
    loss[r] = lse[r] - static_cast<float>(x[r * v + t[r]]);
  }
}

template <typename T>
BITBYTE_KERNEL_INLINE void BackwardRows(const T* x, const int64_t* t, const float* lse, float scale, T* gx, int64_t v,
                                        int64_t begin, int64_t end) {
  std::vector<float> buf(v);
  for (int64_t r = begin; r < end; ++r) {
    const T* row = x + r * v;
    for (int64_t j = 0; j < v; ++j) buf[j] = static_cast<float>(row[j]) - lse[r];
    ExpInPlace(buf.data(), v);
    buf[t[r]] -= 1.0f;
    for (int64_t j = 0; j < v; ++j) gx[r * v + j] = static_cast<T>(buf[j] * scale);
  }
}

BITBYTE_KERNEL_DISPATCH(Forward, ForwardRows)
BITBYTE_KERNEL_DISPATCH(Backward, BackwardRows)

constexpr int64_t kRowGrain = 64;

class CrossEntropyFn : public torch::autograd::Function<CrossEntropyFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits_in,
                               const torch::Tensor& targets_in) {
    const torch::Tensor logits = logits_in.contiguous(), targets = targets_in.contiguous();
    const int64_t n = logits.size(0), v = logits.size(1);
    const int64_t* t = targets.data_ptr<int64_t>();
    for (int64_t r = 0; r < n; ++r)
      if (t[r] < 0 || t[r] >= v)
        throw InternalError("CrossEntropy: target " + std::to_string(t[r]) + " of row " + std::to_string(r) +
                            " is outside [0, " + std::to_string(v) + ")");
    torch::Tensor lse = torch::empty({n}, logits.options().dtype(torch::kFloat));
    std::vector<float> loss(n);
    float* pl = lse.data_ptr<float>();
    if (logits.scalar_type() == torch::kFloat) {
      const float* x = logits.data_ptr<float>();
      at::parallel_for(0, n, kRowGrain, [&](int64_t b, int64_t e) { Forward<float>(x, t, pl, loss.data(), v, b, e); });
    } else {
      const auto* x = logits.data_ptr<c10::BFloat16>();
      at::parallel_for(0, n, kRowGrain,
                       [&](int64_t b, int64_t e) { Forward<c10::BFloat16>(x, t, pl, loss.data(), v, b, e); });
    }
    double sum = 0;
    for (const float l : loss) sum += l;
    ctx->save_for_backward({logits, targets, lse});
    return torch::full({}, n > 0 ? sum / static_cast<double>(n) : 0.0, logits.options().dtype(torch::kFloat));
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &logits = saved[0], &targets = saved[1], &lse = saved[2];
    const int64_t n = logits.size(0), v = logits.size(1);
    const float scale = n > 0 ? grads[0].item<float>() / static_cast<float>(n) : 0.0f;
    torch::Tensor gx = torch::empty_like(logits);
    const int64_t* t = targets.data_ptr<int64_t>();
    const float* pl = lse.data_ptr<float>();
    if (logits.scalar_type() == torch::kFloat) {
      const float* x = logits.data_ptr<float>();
      float* g = gx.data_ptr<float>();
      at::parallel_for(0, n, kRowGrain, [&](int64_t b, int64_t e) { Backward<float>(x, t, pl, scale, g, v, b, e); });
    } else {
      const auto* x = logits.data_ptr<c10::BFloat16>();
      auto* g = gx.data_ptr<c10::BFloat16>();
      at::parallel_for(0, n, kRowGrain,
                       [&](int64_t b, int64_t e) { Backward<c10::BFloat16>(x, t, pl, scale, g, v, b, e); });
    }
    return {gx, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor CrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  const bool ours = logits.device().is_cpu() && logits.dim() == 2 && logits.size(1) > 0 &&
                    (logits.scalar_type() == torch::kFloat || logits.scalar_type() == torch::kBFloat16) &&
                    targets.scalar_type() == torch::kLong && targets.dim() == 1 && targets.size(0) == logits.size(0);
  if (!ours) return torch::nn::functional::cross_entropy(logits.to(torch::kFloat), targets);
  return CrossEntropyFn::apply(logits, targets);
}

}  // namespace bitbyte::models
