#include "sharding/shard_file.h"

#include <zstd.h>

#include <cstring>
#include <memory>

#include "base/error.h"
#include "base/hash.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the shard format is little-endian");

namespace bitbyte::shard {
namespace {

void Put32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void Put64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
uint32_t Get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t Get64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

[[noreturn]] void Corrupt(const io::ReadableFile& f, uint64_t offset, const std::string& what) {
  throw DataError("shard '" + f.Path() + "' at offset " + std::to_string(offset) + ": " + what);
}

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

}  // namespace

std::string EncodeHeader() {
  std::string s(kHeaderMagic, 8);
  Put32(s, kFormatVersion);
  Put32(s, static_cast<uint32_t>(kHeaderBytes));
  return s;
}

std::string EncodeIndex(const std::vector<FrameEntry>& frames) {
  std::string s;
  s.reserve(frames.size() * kIndexEntryBytes);
  for (const auto& f : frames) {
    Put64(s, f.file_offset);
    Put32(s, f.compressed_bytes);
    Put32(s, f.raw_bytes);
    Put64(s, f.raw_xxh64);
  }
  return s;
}

std::string EncodeFooter(const Footer& f) {
  std::string s;
  Put64(s, f.index_offset);
  Put64(s, f.frame_count);
  Put64(s, f.raw_bytes);
  Put64(s, f.raw_xxh64);
  Put64(s, f.fingerprint);
  Put64(s, f.index_xxh64);
  Put32(s, f.split);
  Put32(s, f.shard_index);
  Put64(s, Xxh64(s));
  s.append(kFooterMagic, 8);
  return s;
}

ShardIndex ReadShardIndex(const io::ReadableFile& file) {
  ShardIndex idx;
  const uint64_t size = file.Size();
  idx.file_bytes = size;
  if (size < kHeaderBytes + kFooterBytes)
    Corrupt(file, 0, "file is " + std::to_string(size) + " bytes, too short for a shard (truncated?)");
  char header[kHeaderBytes];
  file.ReadAt(0, kHeaderBytes, header);
  if (std::memcmp(header, kHeaderMagic, 8) != 0) Corrupt(file, 0, "bad magic, not a bitbyte shard");
  if (Get32(header + 8) != kFormatVersion)
    Corrupt(file, 8, "unsupported format version " + std::to_string(Get32(header + 8)));
  if (Get32(header + 12) != kHeaderBytes) Corrupt(file, 12, "bad header size");

  const uint64_t footer_at = size - kFooterBytes;
  char fb[kFooterBytes];
  file.ReadAt(footer_at, kFooterBytes, fb);
  if (std::memcmp(fb + 64, kFooterMagic, 8) != 0)
    Corrupt(file, footer_at + 64, "bad footer magic (truncated or not a complete shard)");
  if (Get64(fb + 56) != Xxh64(std::string_view(fb, 56))) Corrupt(file, footer_at, "footer checksum mismatch");
  Footer& f = idx.footer;
  f.index_offset = Get64(fb);
  f.frame_count = Get64(fb + 8);
  f.raw_bytes = Get64(fb + 16);
  f.raw_xxh64 = Get64(fb + 24);
  f.fingerprint = Get64(fb + 32);
  f.index_xxh64 = Get64(fb + 40);
  f.split = Get32(fb + 48);
  f.shard_index = Get32(fb + 52);
  if (f.frame_count > (footer_at - kHeaderBytes) / kIndexEntryBytes ||
      f.index_offset != footer_at - f.frame_count * kIndexEntryBytes || f.index_offset < kHeaderBytes)
    Corrupt(file, footer_at, "footer's index offset/frame count do not fit the file size");

  std::string raw_index(f.frame_count * kIndexEntryBytes, '\0');
  if (!raw_index.empty()) file.ReadAt(f.index_offset, raw_index.size(), raw_index.data());
  if (Xxh64(raw_index) != f.index_xxh64) Corrupt(file, f.index_offset, "frame index checksum mismatch");
  idx.frames.resize(f.frame_count);
  idx.raw_offsets.resize(f.frame_count + 1);
  uint64_t expect_offset = kHeaderBytes, raw = 0;
  for (uint64_t i = 0; i < f.frame_count; ++i) {
    const char* p = raw_index.data() + i * kIndexEntryBytes;
    FrameEntry& e = idx.frames[i];
    e.file_offset = Get64(p);
    e.compressed_bytes = Get32(p + 8);
    e.raw_bytes = Get32(p + 12);
    e.raw_xxh64 = Get64(p + 16);
    if (e.file_offset != expect_offset || e.compressed_bytes == 0 || e.raw_bytes == 0 || e.raw_bytes > kMaxFrameBytes)
      Corrupt(file, f.index_offset + i * kIndexEntryBytes,
              "frame " + std::to_string(i) + " index entry is inconsistent");
    idx.raw_offsets[i] = raw;
    raw += e.raw_bytes;
    expect_offset += e.compressed_bytes;
  }
  idx.raw_offsets[f.frame_count] = raw;
  if (expect_offset != f.index_offset) Corrupt(file, f.index_offset, "frames do not end where the index starts");
  if (raw != f.raw_bytes) Corrupt(file, footer_at + 16, "frame raw sizes do not add up to the shard's raw size");
  return idx;
}

void ReadFrame(const io::ReadableFile& file, const ShardIndex& index, size_t i, std::string& out) {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  thread_local std::string compressed;
  const FrameEntry& e = index.frames.at(i);
  compressed.resize(e.compressed_bytes);
  file.ReadAt(e.file_offset, e.compressed_bytes, compressed.data());
  const std::string where =
      "frame " + std::to_string(i) + " (raw offset " + std::to_string(index.raw_offsets[i]) + " in the shard)";
  unsigned long long content = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  if (content != e.raw_bytes) Corrupt(file, e.file_offset, where + ": zstd frame header does not match the index");
  out.resize(e.raw_bytes);
  size_t n = ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(n)) Corrupt(file, e.file_offset, where + ": zstd: " + ZSTD_getErrorName(n));
  if (n != e.raw_bytes) Corrupt(file, e.file_offset, where + ": decompressed size mismatch");
  if (Xxh64(out) != e.raw_xxh64) Corrupt(file, e.file_offset, where + ": checksum mismatch");
}

void CompressFrame(std::string_view raw, int level, std::string& out) {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx(ZSTD_createCCtx());
  out.resize(ZSTD_compressBound(raw.size()));
  size_t n = ZSTD_compressCCtx(cctx.get(), out.data(), out.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(n)) throw Error(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  out.resize(n);
}

}  // namespace bitbyte::shard
