#pragma once
// The pieces of the shard job that the flow graph wires together (sharding/shard_job.cc):
// a producer of frame work items in order, the parallel per-frame work, the serial shard
// assembler, and the manifest. No TBB here.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/file_io.h"
#include "base/hash.h"
#include "sharding/manifest.pb.h"
#include "sharding/plan.h"
#include "sharding/shard_file.h"

namespace bitbyte::shard {

inline constexpr char kManifestName[] = "manifest.pb";
// Manifest format: 2 adds the whole-file checksum (Manifest.manifest_xxh64, the last 9 bytes).
inline constexpr uint32_t kManifestFormatVersion = 2;
inline constexpr size_t kManifestTrailerBytes = 9;
inline constexpr unsigned char kManifestTrailerTag = (11 << 3) | 1;  // field 11, wire type fixed64
// Protobuf messages are limited to 2 GiB; keep a margin.
inline constexpr uint64_t kMaxManifestBytes = uint64_t{2000} << 20;
// Upper bound of the serialised bytes one document adds to the manifest (a Document message:
// tag and length, source, split, offset, length as varints, the fixed64 hash).
inline constexpr uint64_t kManifestBytesPerDocument = 2 + 6 + 2 + 11 + 11 + 9;

struct ShardResult {
  const ShardPlan* plan = nullptr;
  uint64_t file_bytes = 0;
  uint64_t raw_xxh64 = 0;
  uint64_t file_xxh64 = 0;
  bool reused = false;  // kept from an earlier (interrupted or identical) run
};

// One unit of work on its way through the graph: a frame to compress, or a whole shard from an
// earlier run to check and keep.
struct FrameWork {
  uint64_t seq = 0;
  const ShardPlan* shard = nullptr;
  uint64_t frame = 0;  // index within the shard
  bool last_in_shard = false;
  bool keep_existing = false;
  std::string raw, compressed;
  uint64_t raw_xxh64 = 0;
  ShardResult kept;  // set by ProcessWork for keep_existing items
};

// Writes one shard file: header, frames, index, footer, to "<name>.tmp", then fsync and rename.
class ShardFileBuilder {
 public:
  ShardFileBuilder(io::FileSystem& fs, const std::string& dir, const ShardPlan& plan);
  void Add(std::string_view raw, uint64_t raw_xxh64, std::string_view compressed);
  ShardResult Finish();

 private:
  void Append(std::string_view data);
  io::FileSystem& fs_;
  const ShardPlan& plan_;
  std::string tmp_path_, final_path_;
  std::unique_ptr<io::WritableFile> file_;
  std::vector<FrameEntry> frames_;
  Xxh64Stream raw_hash_, file_hash_;
  uint64_t raw_bytes_ = 0;
};

// Yields the work items in sequence order; shards listed in `keep` become one item each.
class WorkProducer {
 public:
  WorkProducer(const DatasetPlan& plan, std::vector<bool> keep);
  bool Next(FrameWork& w);
  uint64_t items() const;

 private:
  const DatasetPlan& plan_;
  std::vector<bool> keep_;
  size_t shard_ = 0;
  uint64_t frame_ = 0, seq_ = 0;
};

// True when `dir` holds a file named for the planned shard whose footer matches the plan
// (a cheap check; ProcessWork verifies every frame before the shard is kept).
bool LooksFinished(io::FileSystem& fs, const std::string& dir, const ShardPlan& plan);

// The parallel stage: reads and compresses a frame, or verifies a kept shard (rewriting it
// when it does not verify).
void ProcessWork(const DatasetPlan& plan, io::FileSystem& fs, const std::string& dir, FrameWork& w);

// The serial stage: frames arrive in sequence order; returns the result when a shard is done.
class ShardAssembler {
 public:
  ShardAssembler(io::FileSystem& fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}
  std::optional<ShardResult> Consume(FrameWork& w);

 private:
  io::FileSystem& fs_;
  std::string dir_;
  std::unique_ptr<ShardFileBuilder> open_;
};

pb::Manifest BuildManifest(const DatasetPlan& plan, const std::vector<ShardResult>& shards,
                           const std::vector<std::string>& source_paths);

// The manifest's file bytes: the message, then its checksum as the last field (format 2).
std::string SerializeManifest(const pb::Manifest& m);

// Serialises and writes the manifest atomically (the dataset's commit point).
void WriteManifest(io::FileSystem& fs, const std::string& dir, const pb::Manifest& m);

}  // namespace bitbyte::shard
