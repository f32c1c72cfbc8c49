#pragma once
// Causal scaled dot-product attention behind one function: LibTorch 2.x uses its fused
// scaled_dot_product_attention; 1.13 computes the same thing with a cached additive mask.
#include <torch/torch.h>

namespace bitbyte::models {

// q, k, v: [B, H, T, D]. Returns softmax(q k^T / sqrt(D) + causal mask) v, [B, H, T, D].
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

}  // namespace bitbyte::models
