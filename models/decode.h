#pragma once
// Kernels for one generated position at a small batch (a few rows), float32 on the CPU, on raw
// arrays: a cached generation step of the default BitByteLM is about 6 MFLOP a byte, where
// LibTorch's per-op cost (dispatch, allocation, a tensor per view) outweighs the arithmetic. Each
// call writes preallocated buffers; the matrix-vector products are split over LibTorch's threads
// by output rows. Compiled per instruction set like the other kernels (cpu_kernels.h).
#include <cstdint>

namespace bitbyte::models::decode {

// y[r, o] = bias[o] + sum_i w[o, i] x[r, i] for r < rows, o < out (w row-major [out, in], as
// torch::nn::Linear stores it; bias may be null). With `accumulate` the result is added to y.
void Linear(const float* w, const float* bias, int64_t in, int64_t out, const float* x, int64_t rows, float* y,
            bool accumulate);

// y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over the d values of each row (biased
// variance, as torch::layer_norm).
void LayerNorm(const float* x, const float* gamma, const float* beta, double eps, int64_t rows, int64_t d, float* y);

// GELU (erf form), in place: the training kernel's arithmetic (gelu.h).
void GeluInPlace(float* x, int64_t n);

// Causal attention of one new position over n cached ones (itself included), per head: q [d]
// (heads side by side, d = heads * dh), keys and values [n, d] row-major; y [d]. `scores` holds
// heads * n floats of scratch. Heads are split over threads.
void AttendOne(const float* q, const float* keys, const float* values, int64_t n, int64_t heads, int64_t dh, float* y,
               float* scores);

}  // namespace bitbyte::models::decode
