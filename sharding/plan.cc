#include "sharding/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/error.h"
#include "base/file_io.h"
#include "base/hash.h"
#include "sharding/shard_file.h"

namespace bitbyte::shard {

const char* SplitName(Split s) { return s == Split::kTrain ? "train" : "val"; }

std::string ShardFileName(Split split, uint32_t index, uint64_t fingerprint) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-%05u-%016llx.bbs", SplitName(split), index,
                static_cast<unsigned long long>(fingerprint));
  return name;
}

void ValidateParams(const Params& p) {
  if (p.frame_bytes < 1024 || p.frame_bytes > (uint64_t{256} << 20))
    throw Error("frame size " + std::to_string(p.frame_bytes) + " is out of range (1 KiB to 256 MiB)");
  if (p.shard_bytes < p.frame_bytes || p.shard_bytes % p.frame_bytes != 0)
    throw Error("shard size " + std::to_string(p.shard_bytes) + " must be a positive multiple of the frame size " +
                std::to_string(p.frame_bytes));
  if (p.level < 1 || p.level > 22) throw Error("zstd level " + std::to_string(p.level) + " is out of range (1 to 22)");
  if (!(p.val_fraction >= 0.0 && p.val_fraction < 1.0))
    throw Error("validation fraction " + std::to_string(p.val_fraction) + " must be in [0, 1)");
}

Split RouteByHash(uint64_t xxh64, double val_fraction) {
  // Top 53 bits as a double in [0, 1).
  const double u = static_cast<double>(xxh64 >> 11) * 0x1.0p-53;
  return u < val_fraction ? Split::kVal : Split::kTrain;
}

DatasetPlan::DatasetPlan(Params params) : params_(std::move(params)), by_split_(kNumSplits) { ValidateParams(params_); }

void DatasetPlan::AddSource(ScannedSource src) {
  if (finished_) throw InternalError("AddSource after Finish");
  for (input::DocRef& d : src.docs) {
    PlannedDoc pd;
    pd.source = src.index;
    pd.split = RouteByHash(d.xxh64, params_.val_fraction);
    const int s = static_cast<int>(pd.split);
    pd.split_offset = split_bytes_[s];
    split_bytes_[s] += d.length;
    pd.ref = std::move(d);
    by_split_[s].push_back(docs_.size());
    docs_.push_back(std::move(pd));
  }
  src.docs.clear();
  src.docs.shrink_to_fit();
  sources_.push_back(std::move(src));
}

uint64_t DatasetPlan::split_docs(Split s) const { return by_split_[static_cast<int>(s)].size(); }

void DatasetPlan::Finish() {
  if (finished_) return;
  if (total_bytes() == 0)
    throw Error(docs_.empty() ? "empty corpus: the inputs hold no documents"
                              : "empty corpus: every document is empty (0 bytes)");
  // Every later bpb figure is measured on the validation split, so it must not be empty; nor
  // may training be. When hash routing leaves either empty, cut the last document (in input
  // order) into a train head and a validation tail of val_fraction of its bytes.
  if (split_bytes_[0] == 0 || split_bytes_[1] == 0) {
    size_t cut = docs_.size();
    while (cut > 0 && docs_[cut - 1].ref.length < 2) --cut;
    if (cut == 0)
      throw Error("corpus too small: no document has the 2 bytes needed to cut a train head and a validation tail");
    const PlannedDoc doc = docs_[cut - 1];
    const double f = params_.val_fraction > 0 ? params_.val_fraction : 0.05;
    const uint64_t tail = std::clamp<uint64_t>(
        static_cast<uint64_t>(std::ceil(static_cast<double>(doc.ref.length) * f)), 1, doc.ref.length - 1);
    auto hash_range = [](const input::DocRef& r) {
      return io::HashRange(*io::Posix().OpenReadable(r.file->path), r.offset, r.length);
    };
    PlannedDoc head = doc, tail_doc = doc;
    head.split = Split::kTrain;
    head.ref.length = doc.ref.length - tail;
    head.ref.xxh64 = hash_range(head.ref);
    tail_doc.split = Split::kVal;
    tail_doc.ref.offset = doc.ref.offset + head.ref.length;
    tail_doc.ref.length = tail;
    tail_doc.ref.xxh64 = hash_range(tail_doc.ref);
    docs_[cut - 1] = head;
    docs_.insert(docs_.begin() + static_cast<long>(cut), tail_doc);
    // Lay the split streams out again in input order.
    split_bytes_[0] = split_bytes_[1] = 0;
    for (auto& v : by_split_) v.clear();
    for (size_t i = 0; i < docs_.size(); ++i) {
      const int s = static_cast<int>(docs_[i].split);
      docs_[i].split_offset = split_bytes_[s];
      split_bytes_[s] += docs_[i].ref.length;
      by_split_[s].push_back(i);
    }
    tail_fallback_ = true;
  }

  for (int s = 0; s < kNumSplits; ++s) {
    const Split split = static_cast<Split>(s);
    const uint64_t bytes = split_bytes_[s];
    const auto& order = by_split_[s];
    size_t first_doc = 0;  // first doc (in stream order) that may overlap the current shard
    for (uint64_t start = 0, index = 0; start < bytes; start += params_.shard_bytes, ++index) {
      ShardPlan sp;
      sp.split = split;
      sp.index = static_cast<uint32_t>(index);
      sp.raw_offset = start;
      sp.raw_bytes = std::min(params_.shard_bytes, bytes - start);
      sp.frames = (sp.raw_bytes + params_.frame_bytes - 1) / params_.frame_bytes;
      Xxh64Stream fp;
      fp.UpdatePod(kFormatVersion);
      fp.UpdatePod(params_.frame_bytes);
      fp.UpdatePod(params_.level);
      fp.UpdatePod(static_cast<uint32_t>(s));
      fp.UpdatePod(sp.index);
      fp.UpdatePod(sp.raw_offset);
      fp.UpdatePod(sp.raw_bytes);
      const uint64_t end = start + sp.raw_bytes;
      while (first_doc < order.size()) {
        const PlannedDoc& d = docs_[order[first_doc]];
        if (d.split_offset + d.ref.length > start) break;
        ++first_doc;
      }
      for (size_t k = first_doc; k < order.size(); ++k) {
        const PlannedDoc& d = docs_[order[k]];
        if (d.split_offset >= end) break;
        if (d.ref.length == 0) continue;
        const uint64_t from = std::max(start, d.split_offset);
        const uint64_t to = std::min(end, d.split_offset + d.ref.length);
        fp.UpdatePod(d.ref.xxh64);
        fp.UpdatePod(d.ref.length);
        fp.UpdatePod(from - d.split_offset);
        fp.UpdatePod(to - from);
        ++sp.documents;
      }
      sp.fingerprint = fp.Digest();
      sp.name = ShardFileName(split, sp.index, sp.fingerprint);
      shards_.push_back(std::move(sp));
    }
  }
  finished_ = true;
}

uint64_t DatasetId(const Params& params, const std::vector<SourceStamp>& sources) {
  Xxh64Stream h;
  h.UpdatePod(kFormatVersion);
  h.UpdatePod(params.frame_bytes);
  h.UpdatePod(params.shard_bytes);
  h.UpdatePod(params.level);
  h.UpdatePod(params.val_fraction);
  h.UpdatePod(static_cast<uint64_t>(params.jsonl_field.size()));
  h.Update(params.jsonl_field);
  h.UpdatePod(static_cast<uint8_t>(params.skip_bad_records));
  for (const SourceStamp& s : sources) {
    h.UpdatePod(s.size);
    h.UpdatePod(s.xxh64);
  }
  return h.Digest();
}

uint64_t DatasetPlan::dataset_id() const {
  std::vector<SourceStamp> stamps;
  stamps.reserve(sources_.size());
  for (const auto& s : sources_) stamps.push_back({s.size, s.xxh64});
  return DatasetId(params_, stamps);
}

void DatasetPlan::ReadRange(Split s, uint64_t offset, size_t n, char* out) const {
  const auto& order = by_split_[static_cast<int>(s)];
  if (offset + n > split_bytes_[static_cast<int>(s)]) throw InternalError("ReadRange past the split's end");
  // First document whose end is beyond offset.
  auto it = std::partition_point(order.begin(), order.end(),
                                 [&](size_t i) { return docs_[i].split_offset + docs_[i].ref.length <= offset; });
  // Files are opened per call (not cached across calls): spool files are re-created between
  // runs, and a cached descriptor would read a deleted file.
  std::string open_path;
  std::unique_ptr<io::ReadableFile> open_file;
  while (n > 0) {
    if (it == order.end()) throw InternalError("ReadRange ran out of documents");
    const PlannedDoc& d = docs_[*it++];
    if (d.ref.length == 0) continue;
    const uint64_t in_doc = offset - d.split_offset;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n, d.ref.length - in_doc));
    const input::DataFile& df = *d.ref.file;
    if (!open_file || open_path != df.path) {
      open_file.reset();
      open_file = io::Posix().OpenReadable(df.path);
      open_path = df.path;
    }
    if (open_file->Size() < d.ref.offset + d.ref.length)
      throw Error("input '" + df.path + "' changed while sharding (it is shorter than when it was read)");
    open_file->ReadAt(d.ref.offset + in_doc, take, out);
    // Checked after the read: a write that raced with it has updated the stamp by now.
    if (!df.spool && open_file->Stamp() != df.stamp)
      throw Error("input '" + df.path +
                  "' changed while sharding (size, time or inode differ from the scan); "
                  "run again once it is stable");
    out += take;
    offset += take;
    n -= take;
  }
}

}  // namespace bitbyte::shard
