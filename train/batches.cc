#include "train/batches.h"

#include "base/error.h"

namespace bitbyte::train {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

BatchSampler::BatchSampler(const shard::Dataset& data, uint64_t seed, int rows, int seq_len)
    : data_(data), seed_(seed), rows_(rows), cols_(seq_len + 1) {
  const uint64_t n = data.SplitBytes(shard::Split::kTrain);
  if (n < static_cast<uint64_t>(cols_))
    throw Error("dataset " + data.dir() + ": the train split has " + std::to_string(n) +
                " bytes, fewer than one training window (data.seq_len + 1 = " + std::to_string(cols_) + ")");
  span_ = n - static_cast<uint64_t>(cols_) + 1;
}

uint64_t BatchSampler::Offset(int64_t step, int row) const {
  const uint64_t h = Mix(Mix(Mix(seed_) ^ static_cast<uint64_t>(step)) ^ static_cast<uint64_t>(row));
  return static_cast<uint64_t>((static_cast<unsigned __int128>(h) * span_) >> 64);  // uniform in [0, span)
}

void BatchSampler::Fill(int64_t step, Batch& out) const {
  out.step = step;
  out.rows = rows_;
  out.cols = cols_;
  out.bytes.resize(static_cast<size_t>(rows_) * cols_);
  for (int r = 0; r < rows_; ++r)
    data_.Read(shard::Split::kTrain, Offset(step, r), cols_,
               reinterpret_cast<char*>(out.bytes.data()) + size_t(r) * cols_);
}

}  // namespace bitbyte::train
