#include "models/attention.h"

#include <torch/version.h>  // TORCH_VERSION_MAJOR

#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "models/precision.h"

namespace bitbyte::models {

#if TORCH_VERSION_MAJOR >= 2

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true);
}

#else

namespace {

// [T, T] with 0 on and below the diagonal and -inf above: a view of one cached mask per
// (device, dtype), grown to the longest T seen (generation walks T up to the context).
torch::Tensor CausalMask(int64_t t, const torch::TensorOptions& opts) {
  static std::mutex mu;
  static std::map<std::pair<std::string, int>, torch::Tensor> cache;
  const auto key = std::make_pair(opts.device().str(), static_cast<int>(opts.dtype().toScalarType()));
  std::lock_guard<std::mutex> lock(mu);
  torch::Tensor& mask = cache[key];
  if (!mask.defined() || mask.size(0) < t)
    mask = torch::full({t, t}, -std::numeric_limits<float>::infinity(), opts).triu(1);
  return mask.narrow(0, 0, t).narrow(1, 0, t);
}

}  // namespace

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), d = q.size(3);
  const auto q3 = q.reshape({b * h, t, d});
  const auto k3 = k.reshape({b * h, t, d});
  const auto v3 = v.reshape({b * h, t, d});
  // One fused op for scores, scale and mask: mask + (1/sqrt(D)) q k^T.
  const torch::Tensor scores = torch::baddbmm(CausalMask(t, q.options().requires_grad(false)), q3, k3.transpose(1, 2),
                                              /*beta=*/1.0, /*alpha=*/1.0 / std::sqrt(double(d)));
  // Softmax in float32 even when bf16 autocast made the scores bf16 (models/precision.h).
  const torch::Tensor probs =
      IsReduced(scores) ? torch::softmax(scores, -1, torch::kFloat) : torch::softmax(scores, -1);
  return torch::bmm(probs, v3).view({b, h, t, d});
}

#endif

torch::Tensor MaskedAttention(const torch::Tensor& qkv, int64_t n_head, bool causal, int64_t window) {
  const int64_t b = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / 3, dh = d / n_head;
  const std::vector<torch::Tensor> parts = qkv.view({b, t, 3, n_head, dh}).unbind(2);
  const torch::Tensor q = parts[0].transpose(1, 2), k = parts[1].transpose(1, 2), v = parts[2].transpose(1, 2);
  torch::Tensor scores = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(dh));
  if (causal) {
    const torch::Tensor i = torch::arange(t, qkv.options().dtype(torch::kLong)).unsqueeze(1);
    const torch::Tensor j = torch::arange(t, qkv.options().dtype(torch::kLong)).unsqueeze(0);
    torch::Tensor hidden = j > i;
    if (window > 0) hidden = hidden | (j <= i - window);
    scores = scores.masked_fill(hidden, -std::numeric_limits<double>::infinity());
  }
  const torch::Tensor p = torch::softmax(FullPrecision(scores), -1);
  return torch::matmul(p.to(v.scalar_type()), v).transpose(1, 2).reshape({b, t, d});
}

torch::Tensor ComposedAttention(const torch::Tensor& qkv, int64_t n_head) {
  const int64_t b = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / 3;
  // [B, T, 3, H, D/H] -> q, k, v: [B, H, T, D/H]. unbind, not indexing: its backward is one
  // stack instead of three zero-filled full-size tensors.
  const std::vector<torch::Tensor> parts = qkv.view({b, t, 3, n_head, d / n_head}).unbind(2);
  return CausalAttention(parts[0].transpose(1, 2), parts[1].transpose(1, 2), parts[2].transpose(1, 2))
      .transpose(1, 2)
      .reshape({b, t, d});
}

}  // namespace bitbyte::models
