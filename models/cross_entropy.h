#pragma once
// Mean cross-entropy of logits [N, V] (float32 or bf16; computed in float32) against targets [N]
// (int64), forward and backward as one CPU pass each: row maximum, log-sum-exp and the target's
// log-probability in the forward (the log-sum-exp kept), softmax minus one-hot in the backward,
// written in the logits' type. The mean is summed in a fixed order (rows in parallel, then their
// losses in float64 one after the other), so the loss does not depend on the thread count.
// Anything else (another device, float64) goes to torch's cross_entropy.
#include <torch/torch.h>

namespace bitbyte::models {

torch::Tensor CrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace bitbyte::models
