#pragma once
// Reading a dataset: open and validate the manifest, random access to (split, offset, length)
// windows across shard boundaries, sequential streaming, whole-dataset verification.
// Every frame read is checked against its checksum. A Dataset is safe to share between
// threads: reads use pread and per-thread decompression contexts.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/file_io.h"
#include "sharding/manifest.pb.h"
#include "sharding/plan.h"
#include "sharding/shard_file.h"

namespace bitbyte::shard {

// Reads manifest bytes, refusing a file over kMaxManifestBytes (DataError) before allocating.
std::string ReadManifestBytes(io::FileSystem& fs, const std::string& path);

// Parses and validates a manifest (field by field; errors name the field). Throws DataError.
pb::Manifest ParseManifest(const std::string& bytes, const std::string& path);

struct VerifyReport {
  uint64_t shards = 0, frames = 0, raw_bytes = 0, file_bytes = 0;
};

class Dataset {
 public:
  // Opens `dir`: parses the manifest, opens every shard and reads its index.
  static std::unique_ptr<Dataset> Open(const std::string& dir, io::FileSystem& fs = io::Posix());

  const pb::Manifest& manifest() const { return manifest_; }
  const std::string& dir() const { return dir_; }
  uint64_t SplitBytes(Split s) const { return split_bytes_[static_cast<int>(s)]; }

  // Copies bytes [offset, offset + n) of the split's stream into out. Throws Error when the
  // window is out of range, DataError when a frame fails its checks.
  void Read(Split s, uint64_t offset, size_t n, char* out) const;
  std::string Read(Split s, uint64_t offset, size_t n) const;

  // Streams document `i` (manifest order) to `fn` in chunks of up to 1 MiB, then checks its
  // XXH64 against the manifest: DataError when it differs (after the chunks were passed on).
  void ReadDocument(int i, const std::function<void(std::string_view)>& fn) const;

  // Streams the whole split, frame by frame, in order.
  void ForEachFrame(Split s, const std::function<void(std::string_view)>& fn) const;

 private:
  friend VerifyReport Verify(const std::string&, const std::function<void(uint64_t, uint64_t)>&);
  struct OpenShard {
    const pb::Shard* meta = nullptr;
    std::unique_ptr<io::ReadableFile> file;
    ShardIndex index;
  };
  uint64_t id_ = 0;
  std::string dir_;
  pb::Manifest manifest_;
  std::vector<std::vector<OpenShard>> shards_;  // per split, in order
  uint64_t split_bytes_[kNumSplits] = {0, 0};
};

// Checks everything: manifest, each shard file's size and XXH64, header, footer, index, name,
// every frame's decompression and checksum, each shard's raw XXH64, and every document's XXH64.
// Throws DataError naming the first bad shard, frame and offset. `progress(done, total)` gets
// raw bytes.
VerifyReport Verify(const std::string& dir, const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace bitbyte::shard
