#pragma once
// Causal scaled dot-product attention behind one function: LibTorch 2.x uses its fused
// scaled_dot_product_attention; 1.13 computes the same thing with a cached additive mask.
#include <torch/torch.h>

namespace bitbyte::models {

// q, k, v: [B, H, T, D]. Returns softmax(q k^T / sqrt(D) + causal mask) v, [B, H, T, D].
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

// The same from a fused projection, qkv [B, T, 3 d] (q, k, v, each [H, d / H] in the last
// dimension), to [B, T, d]: the composed ops, as FusedCausalAttention (models/fused_attention.h)
// computes it fused on the CPU. BitByteLM uses this on other devices; tests and benchmarks
// compare the two.
torch::Tensor ComposedAttention(const torch::Tensor& qkv, int64_t n_head);
// The composed ops with FusedAttention's masks (models/fused_attention.h): causal with a local
// window (0: none) or bidirectional. Holds the T x T scores; the reference of the tests.
torch::Tensor MaskedAttention(const torch::Tensor& qkv, int64_t n_head, bool causal, int64_t window);

}  // namespace bitbyte::models
