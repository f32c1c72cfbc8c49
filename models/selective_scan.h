#pragma once
// Mamba's selective scan (S6), three ways behind one function:
//   kReference: plain tensor ops, one step per position (clear, slow; kept for tests).
//   kFused:     CPU loops with a hand-written backward. Never materialises [B, D, T, N]: the
//               forward keeps each channel's N states in a per-thread buffer of N; the backward
//               recomputes one channel's T x N states into a per-task buffer and runs the reverse
//               recurrence.
//   kChunked:   tensor ops for other devices: chunks of L = 16 positions, decays within a chunk
//               from cumulative sums of delta * A in log space (segsum), the state carried from
//               chunk to chunk. Memory B * D * T * L * N.
#include <torch/torch.h>

namespace bitbyte::models {

enum class ScanImpl { kAuto, kReference, kFused, kChunked };

// Selective scan, per batch b and channel d, state h in R^N, h_{-1} = 0:
//   h_t = exp(delta_t * A[d]) ⊙ h_{t-1} + delta_t * B_t * u_t      (A[d], B_t, h in R^N)
//   y_t = <C_t, h_t> + Dskip[d] * u_t
// u, delta: [B, D, T]; A: [D, N]; Bm, C: [B, N, T]; Dskip: [D]; all float or all double, on one
// device. Returns y: [B, D, T], differentiable in all six.
// kAuto: kFused for CPU tensors, kChunked otherwise. Throws UsageError naming the
// argument on bad shapes/dtypes/devices (and for kFused on a non-CPU device).
// kFused in float computes exp with its own vectorisable polynomial (within 2 ulp; arguments
// are clamped to [-87, 88], so exp(x) for x < -87 is 1.6e-38 rather than smaller).
torch::Tensor SelectiveScan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                            const torch::Tensor& Bm, const torch::Tensor& C, const torch::Tensor& Dskip,
                            ScanImpl impl = ScanImpl::kAuto);

// One recurrent step for generation (O(1) state per byte): h [B, D, N] updated in place; u, delta
// [B, D]; Bm, C [B, N]. Returns y [B, D]. Equals the t-th output of SelectiveScan run on the
// whole sequence (h starts at zeros). Same checks as SelectiveScan; h must match u's dtype and
// device.
torch::Tensor SelectiveScanStep(torch::Tensor& h, const torch::Tensor& u, const torch::Tensor& delta,
                                const torch::Tensor& A, const torch::Tensor& Bm, const torch::Tensor& C,
                                const torch::Tensor& Dskip);

}  // namespace bitbyte::models
