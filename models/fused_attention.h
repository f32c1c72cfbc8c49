#pragma once
// Fused causal self-attention for the CPU (FlashAttention-style): softmax(q k^T / sqrt(D) +
// causal mask) v, computed tile by tile with an online softmax, never holding the T x T matrix;
// the backward recomputes the tiles from the saved log-sum-exp of each row.
//
// Works on the fused projection as BitByteLM's qkv Linear lays it out, so that no head transpose
// or copy is needed on either side: qkv [B, T, 3 d] holds q, k, v one after the other in its last
// dimension, each [H, d / H]; the result is [B, T, d] with the heads side by side (the input of
// the output projection). float32 and float64 are computed in their own type; bf16 and fp16 inputs
// (autocast) in float32, with the output in the input's type. Tiles of 256 queries x 256 keys; the
// tile products run on the BLAS LibTorch uses (single-threaded inside the OpenMP team that
// splits the work over batch, heads and query tiles).
#include <torch/torch.h>

namespace bitbyte::models {

torch::Tensor FusedCausalAttention(const torch::Tensor& qkv, int64_t n_head);
// The same kernel with other masks: causal with a local `window` (query i sees keys i - window + 1
// .. i; 0: all from 0), or bidirectional (causal false: every query sees every key; no window).
torch::Tensor FusedAttention(const torch::Tensor& qkv, int64_t n_head, bool causal, int64_t window);

// Causal self-attention of a fused projection qkv [B, T, 3 d] as the tracks run it: on the CPU
// FusedCausalAttention, except for bf16 windows of up to 256 positions (the composed ops' bf16
// products measured faster there); on other devices ComposedAttention (models/attention.h).
// BITBYTE_ATTENTION=fused|composed forces one.
torch::Tensor SelfAttention(const torch::Tensor& qkv, int64_t n_head);
// With a local window or bidirectional (FusedAttention's masks): FusedAttention on the CPU,
// MaskedAttention elsewhere.
torch::Tensor SelfAttention(const torch::Tensor& qkv, int64_t n_head, bool causal, int64_t window);

}  // namespace bitbyte::models
