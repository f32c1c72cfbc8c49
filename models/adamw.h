#pragma once
// One AdamW update of a float32 parameter as a single pass over its four tensors (weight,
// gradient, both moments), split over LibTorch's threads: the arithmetic of torch.optim.AdamW
// (decoupled weight decay, bias-corrected moments), without the seven full-tensor passes of the
// composed ops. Elementwise, so the result does not depend on the thread count.
#include <torch/torch.h>

#include <array>
#include <cstdint>

namespace bitbyte::models {

struct AdamWHyper {
  double lr, beta1, beta2, eps;
  double decay;     // weight decay (0: none)
  double bc1;       // 1 - beta1^t
  double bc2_sqrt;  // sqrt(1 - beta2^t)
};

// p, exp_avg, exp_avg_sq: float32, contiguous, on the CPU; g: the gradient, same shape.
// Falls back to the composed ops for anything else (another device or type).
void AdamWUpdate(torch::Tensor& p, const torch::Tensor& g, torch::Tensor& exp_avg, torch::Tensor& exp_avg_sq,
                 const AdamWHyper& h);

// AdamW with its moments stored in 8 bits, block-wise (Dettmers et al. 2022, "8-bit Optimizers
// via Block-wise Quantization"): each block of kStateBlock consecutive elements keeps its largest
// |value| in float32 and every element as the index of the nearest of 256 code values (a dynamic
// map: a sign, a decimal exponent and a linear fraction, dense near zero, sparse near one) times
// that maximum. An update decodes a block to float32, applies the AdamW arithmetic above (the
// weight moves with the float32 moments), and encodes the new moments with the block's new
// maxima. Blocks are independent: the result does not depend on the thread count.
inline constexpr int64_t kStateBlock = 2048;

struct Moments8 {
  torch::Tensor m, v;          // codes, uint8 [numel]: exp_avg in the signed map, exp_avg_sq in the unsigned
  torch::Tensor m_max, v_max;  // float32 [blocks]: each block's largest |exp_avg|, exp_avg_sq
};

// The 256 code values of each map, ascending: the signed one in [-1, 1] with 0 and 1 (its least
// value is just above -1), the unsigned one in [0, 1] with 0 and 1 (adamw.cc builds them).
const std::array<float, 256>& SignedCodes();
const std::array<float, 256>& UnsignedCodes();

// Zero moments for a parameter of `numel` elements (on the CPU).
Moments8 ZeroMoments8(int64_t numel);
// x (float32, contiguous, CPU) encoded block-wise: codes [numel] and maxima [blocks].
void Encode8(const torch::Tensor& x, bool is_signed, torch::Tensor& codes, torch::Tensor& maxima);
// The float32 values codes and maxima stand for, [numel].
torch::Tensor Decode8(const torch::Tensor& codes, const torch::Tensor& maxima, bool is_signed);

// One AdamW update with 8-bit moments. p and g: float32, contiguous, on the CPU (the trainer
// refuses optim.state_bits 8 on other devices).
void AdamW8Update(torch::Tensor& p, const torch::Tensor& g, Moments8& s, const AdamWHyper& h);

}  // namespace bitbyte::models
