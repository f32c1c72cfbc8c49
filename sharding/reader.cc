#include "sharding/reader.h"

#include <algorithm>
#include <atomic>

#include "base/error.h"
#include "base/hash.h"
#include "sharding/writer.h"

namespace bitbyte::shard {
namespace {

[[noreturn]] void Bad(const std::string& path, const std::string& what) {
  throw DataError("manifest '" + path + "': " + what);
}

std::string Field(const char* repeated, int i, const char* field) {
  return std::string(repeated) + "[" + std::to_string(i) + "]." + field;
}

}  // namespace

std::string ReadManifestBytes(io::FileSystem& fs, const std::string& path) {
  auto f = fs.OpenReadable(path);
  if (f->Size() > kMaxManifestBytes)
    throw DataError("manifest '" + path + "' is " + std::to_string(f->Size()) + " bytes, over the " +
                    std::to_string(kMaxManifestBytes) + "-byte limit of a protobuf message");
  std::string bytes(f->Size(), '\0');
  if (!bytes.empty()) f->ReadAt(0, bytes.size(), bytes.data());
  return bytes;
}

pb::Manifest ParseManifest(const std::string& bytes, const std::string& path) {
  // The checksum first: nothing of a file that fails it is trusted, so no single changed,
  // added or removed byte can turn into other bytes or other parameters downstream.
  const size_t n = bytes.size();
  if (n < kManifestTrailerBytes ||
      static_cast<unsigned char>(bytes[n - kManifestTrailerBytes]) != kManifestTrailerTag) {
    pb::Manifest old;
    if (old.ParseFromString(bytes) && old.format_version() == 1 && old.has_params())
      Bad(path,
          "is format 1, written by an older bitbyte without a manifest checksum; run the same "
          "`bitbyte shard` command with --overwrite to rebuild the dataset");
    Bad(path, "has no checksum at its end (truncated, or not a bitbyte manifest)");
  }
  uint64_t stored = 0;
  for (int i = 7; i >= 0; --i)
    stored = (stored << 8) | static_cast<unsigned char>(bytes[n - 8 + static_cast<size_t>(i)]);
  const uint64_t actual = Xxh64(std::string_view(bytes.data(), n - kManifestTrailerBytes));
  if (stored != actual)
    Bad(path, "checksum mismatch (XXH64 of its first " + std::to_string(n - kManifestTrailerBytes) +
                  " bytes does not match the one stored at offset " + std::to_string(n - 8) +
                  "): altered or damaged after it was written");
  pb::Manifest m;
  if (!m.ParseFromString(bytes)) Bad(path, "cannot be parsed (truncated or garbled protobuf)");
  if (m.format_version() != kManifestFormatVersion)
    Bad(path, "field format_version is " + std::to_string(m.format_version()) + ", this bitbyte reads " +
                  std::to_string(kManifestFormatVersion));
  if (!m.has_params()) Bad(path, "field params is missing");
  Params p;
  p.frame_bytes = m.params().frame_bytes();
  p.shard_bytes = m.params().shard_bytes();
  p.level = m.params().level();
  p.val_fraction = m.params().val_fraction();
  p.jsonl_field = m.params().jsonl_field();
  p.skip_bad_records = m.params().skip_bad_records();
  try {
    ValidateParams(p);
  } catch (const Error& e) {
    Bad(path, std::string("field params: ") + e.what());
  }
  // The id is a function of the parameters and the sources: recomputed, it catches any of them
  // changed by a writer that also rewrote the checksum.
  std::vector<SourceStamp> stamps;
  stamps.reserve(static_cast<size_t>(m.sources_size()));
  for (const pb::Source& s : m.sources()) stamps.push_back({s.size(), s.xxh64()});
  if (DatasetId(p, stamps) != m.dataset_id())
    Bad(path, "field dataset_id does not match its params and sources (it is computed from them)");
  if (m.splits_size() != kNumSplits) Bad(path, "field splits must list train and val");
  uint64_t split_bytes[kNumSplits];
  for (int s = 0; s < kNumSplits; ++s) {
    if (m.splits(s).split() != s) Bad(path, Field("splits", s, "split") + " is out of order");
    split_bytes[s] = m.splits(s).bytes();
  }
  // Shards: per split contiguous, indexed in order, covering the split's bytes exactly.
  uint64_t next_offset[kNumSplits] = {0, 0};
  uint32_t next_index[kNumSplits] = {0, 0};
  int last_split = 0;
  for (int i = 0; i < m.shards_size(); ++i) {
    const pb::Shard& sh = m.shards(i);
    const int s = sh.split();
    if (s < 0 || s >= kNumSplits) Bad(path, Field("shards", i, "split") + " is invalid");
    if (s < last_split) Bad(path, Field("shards", i, "split") + ": train shards must come before val shards");
    last_split = s;
    if (sh.index() != next_index[s]) Bad(path, Field("shards", i, "index") + " is out of sequence");
    if (sh.raw_offset() != next_offset[s]) Bad(path, Field("shards", i, "raw_offset") + " leaves a gap or overlap");
    if (sh.raw_bytes() == 0 || sh.raw_bytes() > p.shard_bytes)
      Bad(path, Field("shards", i, "raw_bytes") + " is out of range");
    if (sh.frames() != (sh.raw_bytes() + p.frame_bytes - 1) / p.frame_bytes)
      Bad(path, Field("shards", i, "frames") + " does not match raw_bytes and the frame size");
    if (sh.name().empty() || sh.name().find('/') != std::string::npos || sh.name()[0] == '.')
      Bad(path, Field("shards", i, "name") + " is not a plain file name");
    ++next_index[s];
    next_offset[s] += sh.raw_bytes();
  }
  for (int s = 0; s < kNumSplits; ++s)
    if (m.splits(s).shards() != next_index[s])
      Bad(path, Field("splits", s, "shards") + " does not match the shard list");
  for (int s = 0; s < kNumSplits; ++s)
    if (next_offset[s] != split_bytes[s])
      Bad(path, Field("splits", s, "bytes") + " (" + std::to_string(split_bytes[s]) +
                    ") does not equal the sum of its shards' raw_bytes (" + std::to_string(next_offset[s]) + ")");
  // Documents: in input order, so each split's documents tile its byte stream in order.
  uint64_t docs[kNumSplits] = {0, 0}, doc_end[kNumSplits] = {0, 0}, empty = 0;
  std::vector<uint64_t> per_source(static_cast<size_t>(m.sources_size()), 0);
  uint32_t last_source = 0;
  for (int i = 0; i < m.documents_size(); ++i) {
    const pb::Document& d = m.documents(i);
    const int s = d.split();
    if (s < 0 || s >= kNumSplits) Bad(path, Field("documents", i, "split") + " is invalid");
    if (d.source() >= static_cast<uint32_t>(m.sources_size()))
      Bad(path, Field("documents", i, "source") + " is out of range");
    if (d.source() < last_source) Bad(path, Field("documents", i, "source") + " is out of input order");
    last_source = d.source();
    if (d.offset() != doc_end[s])
      Bad(path, Field("documents", i, "offset") + " (" + std::to_string(d.offset()) +
                    ") does not follow the previous document of its split (expected " + std::to_string(doc_end[s]) +
                    ")");
    if (d.length() > split_bytes[s] - d.offset())
      Bad(path, Field("documents", i, "length") + " runs past the end of its split");
    doc_end[s] += d.length();
    ++docs[s];
    ++per_source[d.source()];
    if (d.length() == 0) ++empty;
  }
  for (int s = 0; s < kNumSplits; ++s) {
    if (docs[s] != m.splits(s).documents())
      Bad(path, Field("splits", s, "documents") + " does not match the document list");
    if (doc_end[s] != split_bytes[s])
      Bad(path, Field("splits", s, "bytes") + " is not covered by its documents' lengths");
  }
  for (int i = 0; i < m.sources_size(); ++i)
    if (m.sources(i).documents() != per_source[static_cast<size_t>(i)])
      Bad(path, Field("sources", i, "documents") + " does not match the document list");
  if (m.empty_documents() != empty) Bad(path, "field empty_documents does not match the document list");
  return m;
}

std::unique_ptr<Dataset> Dataset::Open(const std::string& dir, io::FileSystem& fs) {
  static std::atomic<uint64_t> next_id{1};
  auto ds = std::unique_ptr<Dataset>(new Dataset());
  ds->id_ = next_id++;
  ds->dir_ = dir;
  const std::string mpath = io::JoinPath(dir, kManifestName);
  if (!fs.Exists(mpath))
    throw DataError("'" + dir + "' is not a bitbyte dataset: it has no " + kManifestName +
                    " (an unfinished `bitbyte shard` run? run the same command again to complete it)");
  ds->manifest_ = ParseManifest(ReadManifestBytes(fs, mpath), mpath);
  ds->shards_.resize(kNumSplits);
  for (int s = 0; s < kNumSplits; ++s) ds->split_bytes_[s] = ds->manifest_.splits(s).bytes();
  for (const pb::Shard& sh : ds->manifest_.shards()) {
    OpenShard os;
    os.meta = &sh;
    const std::string spath = io::JoinPath(dir, sh.name());
    if (!fs.Exists(spath)) throw DataError("shard '" + spath + "' listed in the manifest is missing");
    os.file = fs.OpenReadable(spath);
    if (os.file->Size() != sh.file_bytes())
      throw DataError("shard '" + spath + "': file is " + std::to_string(os.file->Size()) +
                      " bytes, the manifest says " + std::to_string(sh.file_bytes()) + " (truncated or replaced?)");
    os.index = ReadShardIndex(*os.file);
    if (os.index.footer.raw_bytes != sh.raw_bytes() || os.index.footer.raw_xxh64 != sh.raw_xxh64() ||
        os.index.footer.split != static_cast<uint32_t>(sh.split()) || os.index.footer.shard_index != sh.index())
      throw DataError("shard '" + spath + "': footer does not match the manifest's entry");
    const std::string expect_name =
        ShardFileName(static_cast<Split>(sh.split()), sh.index(), os.index.footer.fingerprint);
    if (sh.name() != expect_name)
      throw DataError("shard '" + spath + "': name does not match its split, index and footer fingerprint (expected " +
                      expect_name + ")");
    ds->shards_[sh.split()].push_back(std::move(os));
  }
  return ds;
}

void Dataset::Read(Split s, uint64_t offset, size_t n, char* out) const {
  const int si = static_cast<int>(s);
  if (offset > split_bytes_[si] || n > split_bytes_[si] - offset)
    throw Error(std::string("read of ") + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                " is past the end of split " + SplitName(s) + " (" + std::to_string(split_bytes_[si]) + " bytes)");
  const auto& shards = shards_[si];
  // A one-frame cache per thread and split: consecutive small reads (documents, training
  // windows) from the same frame decompress it once, also when reads alternate between the
  // splits (`cat --split all`). Keyed by a per-Dataset id that is never reused.
  struct FrameCache {
    std::string frame;
    uint64_t id = 0;
    const OpenShard* shard = nullptr;
    size_t index = 0;
  };
  thread_local FrameCache caches[kNumSplits];
  FrameCache& cache = caches[si];
  const std::string& frame = cache.frame;
  while (n > 0) {
    auto it = std::upper_bound(shards.begin(), shards.end(), offset,
                               [](uint64_t off, const OpenShard& sh) { return off < sh.meta->raw_offset(); });
    const OpenShard& sh = *(it - 1);
    const uint64_t in_shard = offset - sh.meta->raw_offset();
    const auto& ro = sh.index.raw_offsets;
    const size_t fi = static_cast<size_t>(std::upper_bound(ro.begin(), ro.end(), in_shard) - ro.begin() - 1);
    if (cache.id != id_ || cache.shard != &sh || cache.index != fi) {
      cache.id = 0;
      ReadFrame(*sh.file, sh.index, fi, cache.frame);
      cache.id = id_;
      cache.shard = &sh;
      cache.index = fi;
    }
    const uint64_t in_frame = in_shard - ro[fi];
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n, frame.size() - in_frame));
    std::copy_n(frame.data() + in_frame, take, out);
    out += take;
    offset += take;
    n -= take;
  }
}

std::string Dataset::Read(Split s, uint64_t offset, size_t n) const {
  std::string out(n, '\0');
  Read(s, offset, n, out.data());
  return out;
}

void Dataset::ReadDocument(int i, const std::function<void(std::string_view)>& fn) const {
  const pb::Document& d = manifest_.documents(i);
  Xxh64Stream h;
  std::string buf(static_cast<size_t>(std::min<uint64_t>(d.length(), 1 << 20)), '\0');
  for (uint64_t done = 0; done < d.length();) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), d.length() - done));
    Read(static_cast<Split>(d.split()), d.offset() + done, n, buf.data());
    h.Update(std::string_view(buf.data(), n));
    fn(std::string_view(buf.data(), n));
    done += n;
  }
  if (h.Digest() != d.xxh64())
    throw DataError("document " + std::to_string(i) + " (split " + SplitName(static_cast<Split>(d.split())) +
                    ", offset " + std::to_string(d.offset()) + "): XXH64 does not match the manifest");
}

void Dataset::ForEachFrame(Split s, const std::function<void(std::string_view)>& fn) const {
  std::string frame;
  for (const OpenShard& sh : shards_[static_cast<int>(s)]) {
    for (size_t i = 0; i < sh.index.frames.size(); ++i) {
      ReadFrame(*sh.file, sh.index, i, frame);
      fn(frame);
    }
  }
}

VerifyReport Verify(const std::string& dir, const std::function<void(uint64_t, uint64_t)>& progress) {
  // Open checks the manifest and, for every shard it names: presence, size, header, footer,
  // index, and the footer against the manifest entry.
  auto ds = Dataset::Open(dir);
  const pb::Manifest& m = ds->manifest();
  const uint64_t total = ds->SplitBytes(Split::kTrain) + ds->SplitBytes(Split::kVal);
  VerifyReport rep;
  for (const auto& split_shards : ds->shards_) {
    for (const Dataset::OpenShard& sh : split_shards) {
      const pb::Shard& meta = *sh.meta;
      const std::string& spath = sh.file->Path();
      Xxh64Stream raw_hash;
      std::string frame;
      for (size_t i = 0; i < sh.index.frames.size(); ++i) {
        ReadFrame(*sh.file, sh.index, i, frame);
        raw_hash.Update(frame);
        ++rep.frames;
        rep.raw_bytes += frame.size();
        if (progress) progress(rep.raw_bytes, total);
      }
      if (raw_hash.Digest() != meta.raw_xxh64())
        throw DataError("shard '" + spath + "': raw bytes' XXH64 does not match the manifest");
      // The whole-file hash catches a flipped byte anywhere, even in bits zstd ignores.
      if (io::HashRange(*sh.file, 0, sh.file->Size()) != meta.file_xxh64())
        throw DataError("shard '" + spath + "': file XXH64 does not match the manifest (altered after writing)");
      ++rep.shards;
      rep.file_bytes += sh.file->Size();
    }
  }
  // Documents: each one's bytes hash to what the manifest recorded.
  for (int i = 0; i < m.documents_size(); ++i) ds->ReadDocument(i, [](std::string_view) {});
  return rep;
}

}  // namespace bitbyte::shard
