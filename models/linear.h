#pragma once
// The matrix products of every track's Linear layers, and which library runs them on the CPU.
//
// LibTorch's torch::linear runs float32 products on its BLAS (Debian's: OpenBLAS, on the core
// models/blas.h chose). oneDNN's sgemm (libdnnl-dev, the oneDNN LibTorch itself links) picks its
// own JIT kernels for the CPU. Where OpenBLAS runs its best core for this CPU the two measured the
// same on the training step, and Linear is torch::linear; where OpenBLAS is held to a lesser core
// (an OPENBLAS_CORETYPE the environment set: bitbyte keeps it), float32 Linear layers on the CPU
// run on oneDNN, forward and backward, once a self-check against a float64 reference has passed.
// BITBYTE_MATMUL=blas|onednn forces a path (to test and time both). Under bf16 autocast, on other
// devices and in float64, Linear is torch::linear.
#include <torch/torch.h>

#include <functional>
#include <string>

namespace bitbyte::models {

enum class MatmulPath { kBlas, kOneDnn };

struct MatmulChoice {
  MatmulPath path = MatmulPath::kBlas;
  std::string detail;  // why, for the start line and run.json
};
// Decided once per process: BITBYTE_MATMUL, else the BLAS core in use, then the self-check.
const MatmulChoice& LinearPath();
const char* MatmulPathName(MatmulPath p);  // "blas", "onednn"

// oneDNN's sgemm on row-major arrays: C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, op a
// transpose when ta / tb. It uses the calling thread's OpenMP team (one thread inside a parallel
// region). Throws InternalError when oneDNN reports a failure.
void OneDnnGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// A float32 matrix product `mm(a, b)` on shapes with tails (1..67 rows and columns, transposed
// operands too) against a float64 reference: "" when every result is within tolerance, else
// which shape differed and by how much.
std::string CheckMatmul(const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& mm);
// CheckMatmul of oneDNN's sgemm (accumulating into C, as with a bias).
std::string OneDnnSelfCheck();

// y = x w^T + b (b may be undefined), x [..., in], w [out, in]: torch::linear's contract, on the
// path above; differentiable. A weight a live quant::QuantizedModel covers runs its int8 form
// instead (inference only).
torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);
inline torch::Tensor Linear(const torch::nn::Linear& l, const torch::Tensor& x) {
  return Linear(x, l->weight, l->bias);
}

}  // namespace bitbyte::models
