#pragma once
// Training batches as a pure function of (seed, step): window r of step s starts at
// Offset(seed, s, r), uniform over the train split. Resuming needs nothing but the step count,
// and the bytes a step sees do not depend on threads, prefetch depth or timing. Torch-free.
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "sharding/reader.h"

namespace bitbyte::train {

struct Batch {
  int64_t step = -1;           // the optimizer step this feeds (0-based)
  int rows = 0;                // windows: batch_size x grad_accum, micro-batch after micro-batch
  int cols = 0;                // bytes per window: seq_len + 1 (inputs and the shifted targets)
  std::vector<uint8_t> bytes;  // rows x cols, row-major
};

class BatchSampler {
 public:
  // Throws Error when the train split is shorter than one window. `seq_stages`: a sequence-length
  // curriculum (growth.seq_len, train/config.h ParseStages): from each stage's step on, windows
  // of its length; seq_len before the first and without one.
  BatchSampler(const shard::Dataset& data, uint64_t seed, int rows, int seq_len,
               std::vector<std::pair<int64_t, int64_t>> seq_stages = {});

  // Start of window `row` of `step`, in [0, train_bytes - (SeqLen(step) + 1)].
  uint64_t Offset(int64_t step, int row) const;
  // The window length of `step`.
  int SeqLen(int64_t step) const;

  void Fill(int64_t step, Batch& out) const;

 private:
  const shard::Dataset& data_;
  uint64_t seed_;
  int rows_, cols_;
  uint64_t bytes_;  // of the train split
  std::vector<std::pair<int64_t, int64_t>> stages_;
};

}  // namespace bitbyte::train
