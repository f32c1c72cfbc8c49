#pragma once
// From scanned documents to the dataset layout: which split each document goes to, where it
// lands in its split's byte stream, and how the streams are cut into shards and frames.
// No I/O besides reading document bytes back; no TBB.
#include <cstdint>
#include <string>
#include <vector>

#include "sharding/input.h"

namespace bitbyte::shard {

enum class Split : uint32_t { kTrain = 0, kVal = 1 };
inline constexpr int kNumSplits = 2;
const char* SplitName(Split s);

// "train-00003-1f2e3d4c5b6a7988.bbs": split, index (at least 5 digits), fingerprint in hex.
std::string ShardFileName(Split split, uint32_t index, uint64_t fingerprint);

// Creation parameters, with their defaults (documented in docs/shard-format.md and --help).
struct Params {
  uint64_t frame_bytes = 1 << 20;   // 1 MiB of raw bytes per zstd frame
  uint64_t shard_bytes = 64 << 20;  // 64 MiB of raw bytes per shard (a multiple of frame_bytes)
  int level = 3;                    // zstd level
  double val_fraction = 0.05;       // share of documents (by content hash) for validation
  std::string jsonl_field;          // empty: each file is one document
  bool skip_bad_records = false;
};

// Throws Error naming the bad field.
void ValidateParams(const Params& p);

// A document is routed to validation when its hash, read as a fraction of 2^64, is below
// val_fraction: stable when other documents are added or removed.
Split RouteByHash(uint64_t xxh64, double val_fraction);

struct ScannedSource {
  uint32_t index = 0;
  std::string path;
  uint64_t size = 0;
  uint64_t xxh64 = 0;
  uint64_t bad_records = 0;
  std::vector<input::DocRef> docs;
};

struct PlannedDoc {
  uint32_t source = 0;
  Split split = Split::kTrain;
  uint64_t split_offset = 0;
  input::DocRef ref;
};

struct ShardPlan {
  Split split = Split::kTrain;
  uint32_t index = 0;
  uint64_t raw_offset = 0;
  uint64_t raw_bytes = 0;
  uint64_t frames = 0;
  uint64_t documents = 0;    // documents with at least one byte in the shard
  uint64_t fingerprint = 0;  // hash of the planned content and the parameters that shape the file
  std::string name;          // e.g. "train-00003-1f2e3d4c5b6a7988.bbs"
};

// What identifies a dataset: XXH64 over the format, the parameters and each source's stored
// size and hash, in input order. Writers record it; readers recompute it from the manifest.
struct SourceStamp {
  uint64_t size = 0, xxh64 = 0;
};
uint64_t DatasetId(const Params& params, const std::vector<SourceStamp>& sources);

class DatasetPlan {
 public:
  explicit DatasetPlan(Params params);

  // Sources must arrive in input order.
  void AddSource(ScannedSource src);
  // Applies the tail fallback (see docs) and cuts the shards. Throws Error on an empty corpus.
  void Finish();

  const Params& params() const { return params_; }
  const std::vector<ScannedSource>& sources() const { return sources_; }
  const std::vector<PlannedDoc>& docs() const { return docs_; }     // input order
  const std::vector<ShardPlan>& shards() const { return shards_; }  // train then val
  uint64_t split_bytes(Split s) const { return split_bytes_[static_cast<int>(s)]; }
  uint64_t split_docs(Split s) const;
  bool tail_fallback() const { return tail_fallback_; }
  uint64_t dataset_id() const;
  uint64_t total_bytes() const { return split_bytes_[0] + split_bytes_[1]; }

  // Copies the split's bytes [offset, offset + n) into out, reading the documents' files.
  void ReadRange(Split s, uint64_t offset, size_t n, char* out) const;

 private:
  Params params_;
  std::vector<ScannedSource> sources_;  // docs moved out into docs_
  std::vector<PlannedDoc> docs_;
  std::vector<std::vector<size_t>> by_split_;  // doc indices per split, in stream order
  uint64_t split_bytes_[kNumSplits] = {0, 0};
  std::vector<ShardPlan> shards_;
  bool tail_fallback_ = false;
  bool finished_ = false;
};

}  // namespace bitbyte::shard
