#pragma once
// Reversible residual blocks (RevNet, Gomez et al. 2017; the Reformer's two-stream form): a block
// maps two streams (x1, x2) to
//     y1 = x1 + F(x2),   y2 = x2 + G(y1)
// and its input can be recomputed from its output, x2 = y2 - G(y1), x1 = y1 - F(x2). A stack of
// such blocks therefore needs to keep no activations for the backward pass but the last block's
// outputs: the backward walks the stack from the top, reconstructs each block's inputs and
// recomputes F and G with gradients one block at a time, so activation memory does not grow with
// depth (it costs one more forward pass of F and G). The reconstruction is exact in real numbers;
// in floating point it carries the rounding of (x + f) - f, which is why the gradients equal those
// of the store-everything stack within rounding rather than bit for bit.
#include <torch/torch.h>

#include <vector>

namespace bitbyte::models {

class RevBlock {
 public:
  virtual ~RevBlock() = default;
  virtual torch::Tensor F(const torch::Tensor& x2) = 0;  // the first branch (attention)
  virtual torch::Tensor G(const torch::Tensor& y1) = 0;  // the second (MLP)
  // Every parameter F and G use, in a fixed order.
  virtual std::vector<torch::Tensor> BlockParameters() = 0;
};

// Runs (x1, x2) through `blocks` in order and returns the last (y1, y2). `reversible`: the
// activations are recomputed in the backward pass as above (the blocks must outlive the backward
// pass, and F and G must be deterministic: no dropout); false: plain autograd, which keeps every
// block's activations (the reference the tests compare with, and the memory baseline). Under
// autocast the backward pass recomputes in the precision the forward pass ran in.
std::vector<torch::Tensor> RunRevStack(const std::vector<RevBlock*>& blocks, const torch::Tensor& x1,
                                       const torch::Tensor& x2, bool reversible);

}  // namespace bitbyte::models
