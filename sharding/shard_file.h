#pragma once
// The shard file layout (docs/shard-format.md): header, independent zstd frames, frame index,
// footer. All integers little-endian. Readers validate everything before trusting an offset.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/file_io.h"

namespace bitbyte::shard {

inline constexpr char kHeaderMagic[9] = "BBSHARD1";
inline constexpr char kFooterMagic[9] = "BBSHEND1";
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kHeaderBytes = 16;
inline constexpr uint64_t kIndexEntryBytes = 24;
inline constexpr uint64_t kFooterBytes = 72;
// Upper bound on frame size accepted by readers (guards allocations on corrupt input).
inline constexpr uint64_t kMaxFrameBytes = uint64_t{1} << 30;

struct FrameEntry {
  uint64_t file_offset = 0;  // where the compressed frame starts in the file
  uint32_t compressed_bytes = 0;
  uint32_t raw_bytes = 0;
  uint64_t raw_xxh64 = 0;  // XXH64 of the frame's raw bytes
};

struct Footer {
  uint64_t index_offset = 0;
  uint64_t frame_count = 0;
  uint64_t raw_bytes = 0;
  uint64_t raw_xxh64 = 0;    // XXH64 of the shard's raw bytes
  uint64_t fingerprint = 0;  // identifies the planned content (see docs)
  uint64_t index_xxh64 = 0;  // XXH64 of the encoded index
  uint32_t split = 0;
  uint32_t shard_index = 0;
};

struct ShardIndex {
  Footer footer;
  std::vector<FrameEntry> frames;
  std::vector<uint64_t> raw_offsets;  // raw offset of each frame within the shard, plus the end
  uint64_t file_bytes = 0;
};

std::string EncodeHeader();
std::string EncodeIndex(const std::vector<FrameEntry>& frames);
std::string EncodeFooter(const Footer& footer);

// Reads and validates header, footer and index. Throws DataError naming the file and offset.
ShardIndex ReadShardIndex(const io::ReadableFile& file);

// Decompresses frame `i` into `out` and checks its size and checksum (DataError on mismatch).
void ReadFrame(const io::ReadableFile& file, const ShardIndex& index, size_t i, std::string& out);

// Compresses `raw` as one zstd frame with a per-thread context.
void CompressFrame(std::string_view raw, int level, std::string& out);

}  // namespace bitbyte::shard
