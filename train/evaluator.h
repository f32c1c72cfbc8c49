#pragma once
// Bits per byte of a model on byte streams.
//
// How windows are laid over a stream of n bytes (docs/training.md): byte 0 has no context and
// is not predicted; bytes 1..n-1 are each predicted exactly once. Window k feeds bytes
// [kC, min(kC + C, n - 1)) (C = the window, the training data.seq_len) and scores the byte after
// each of them, so a byte is predicted from the 1 to C bytes before it in its window. Full
// windows are batched; a stream's last, shorter window runs alone.
// bpb = (sum of NLL in nats) / ln 2 / (predicted bytes). log-softmax is taken in float64.
#include <torch/torch.h>

#include <string_view>
#include <vector>

#include "models/model.h"
#include "train/backend.h"

namespace bitbyte::train {

// Throws InternalError when the streams have no byte to predict (callers check PredictedBytes).
EvalResult EvaluateBpb(models::ByteModel& model, const std::vector<std::string_view>& streams, int64_t context,
                       int batch_size, torch::Device device);

// Predicted bytes for these stream lengths (sum of max(n - 1, 0)): what EvaluateBpb will count.
uint64_t PredictedBytes(const std::vector<std::string_view>& streams);

}  // namespace bitbyte::train
