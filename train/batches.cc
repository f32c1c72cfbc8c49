#include "train/batches.h"

#include "base/error.h"
#include "train/config.h"

namespace bitbyte::train {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

BatchSampler::BatchSampler(const shard::Dataset& data, uint64_t seed, int rows, int seq_len,
                           std::vector<std::pair<int64_t, int64_t>> seq_stages)
    : data_(data),
      seed_(seed),
      rows_(rows),
      cols_(seq_len + 1),
      bytes_(data.SplitBytes(shard::Split::kTrain)),
      stages_(std::move(seq_stages)) {
  if (bytes_ < static_cast<uint64_t>(cols_))
    throw Error("dataset " + data.dir() + ": the train split has " + std::to_string(bytes_) +
                " bytes, fewer than one training window (data.seq_len + 1 = " + std::to_string(cols_) + ")");
}

int BatchSampler::SeqLen(int64_t step) const { return static_cast<int>(StageValue(stages_, step, cols_ - 1)); }

uint64_t BatchSampler::Offset(int64_t step, int row) const {
  const uint64_t span = bytes_ - static_cast<uint64_t>(SeqLen(step)) - 1 + 1;  // possible window starts
  const uint64_t h = Mix(Mix(Mix(seed_) ^ static_cast<uint64_t>(step)) ^ static_cast<uint64_t>(row));
  return static_cast<uint64_t>((static_cast<unsigned __int128>(h) * span) >> 64);  // uniform in [0, span)
}

void BatchSampler::Fill(int64_t step, Batch& out) const {
  const int cols = SeqLen(step) + 1;
  out.step = step;
  out.rows = rows_;
  out.cols = cols;
  out.bytes.resize(static_cast<size_t>(rows_) * cols);
  for (int r = 0; r < rows_; ++r)
    data_.Read(shard::Split::kTrain, Offset(step, r), cols,
               reinterpret_cast<char*>(out.bytes.data()) + size_t(r) * cols);
}

}  // namespace bitbyte::train
