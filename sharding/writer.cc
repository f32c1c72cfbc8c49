#include "sharding/writer.h"

#include "base/error.h"
#include "base/version.h"

namespace bitbyte::shard {

ShardFileBuilder::ShardFileBuilder(io::FileSystem& fs, const std::string& dir, const ShardPlan& plan)
    : fs_(fs),
      plan_(plan),
      tmp_path_(io::JoinPath(dir, plan.name + ".tmp")),
      final_path_(io::JoinPath(dir, plan.name)) {
  file_ = fs_.NewWritableFile(tmp_path_);
  Append(EncodeHeader());
}

void ShardFileBuilder::Append(std::string_view data) {
  file_->Append(data);
  file_hash_.Update(data);
}

void ShardFileBuilder::Add(std::string_view raw, uint64_t raw_xxh64, std::string_view compressed) {
  FrameEntry e;
  e.file_offset = file_->Size();
  e.compressed_bytes = static_cast<uint32_t>(compressed.size());
  e.raw_bytes = static_cast<uint32_t>(raw.size());
  e.raw_xxh64 = raw_xxh64;
  frames_.push_back(e);
  raw_hash_.Update(raw);
  raw_bytes_ += raw.size();
  Append(compressed);
}

ShardResult ShardFileBuilder::Finish() {
  if (raw_bytes_ != plan_.raw_bytes || frames_.size() != plan_.frames)
    throw InternalError("shard " + plan_.name + " got " + std::to_string(raw_bytes_) + " bytes in " +
                        std::to_string(frames_.size()) + " frames, planned " + std::to_string(plan_.raw_bytes));
  Footer f;
  f.index_offset = file_->Size();
  f.frame_count = frames_.size();
  f.raw_bytes = raw_bytes_;
  f.raw_xxh64 = raw_hash_.Digest();
  f.fingerprint = plan_.fingerprint;
  const std::string index = EncodeIndex(frames_);
  f.index_xxh64 = Xxh64(index);
  f.split = static_cast<uint32_t>(plan_.split);
  f.shard_index = plan_.index;
  Append(index);
  Append(EncodeFooter(f));
  // Writeback starts now; WriteManifest fsyncs every shard before the manifest names it. A
  // shard renamed but not yet durable when the machine dies is caught on resume, which verifies
  // every frame of a shard before keeping it.
  file_->StartSync();
  file_->Close();
  fs_.Rename(tmp_path_, final_path_);
  ShardResult r;
  r.plan = &plan_;
  r.file_bytes = file_->Size();
  r.raw_xxh64 = f.raw_xxh64;
  r.file_xxh64 = file_hash_.Digest();
  return r;
}

WorkProducer::WorkProducer(const DatasetPlan& plan, std::vector<bool> keep) : plan_(plan), keep_(std::move(keep)) {
  keep_.resize(plan_.shards().size(), false);
}

uint64_t WorkProducer::items() const {
  uint64_t n = 0;
  for (size_t i = 0; i < plan_.shards().size(); ++i) n += keep_[i] ? 1 : plan_.shards()[i].frames;
  return n;
}

bool WorkProducer::Next(FrameWork& w) {
  const auto& shards = plan_.shards();
  if (shard_ >= shards.size()) return false;
  const ShardPlan& sp = shards[shard_];
  w = FrameWork{};
  w.seq = seq_++;
  w.shard = &sp;
  if (keep_[shard_]) {
    w.keep_existing = true;
    w.last_in_shard = true;
    ++shard_;
    return true;
  }
  w.frame = frame_;
  w.last_in_shard = frame_ + 1 == sp.frames;
  if (w.last_in_shard) {
    ++shard_;
    frame_ = 0;
  } else {
    ++frame_;
  }
  return true;
}

bool LooksFinished(io::FileSystem& fs, const std::string& dir, const ShardPlan& plan) {
  const std::string path = io::JoinPath(dir, plan.name);
  if (!fs.Exists(path)) return false;
  try {
    auto f = fs.OpenReadable(path);
    ShardIndex idx = ReadShardIndex(*f);
    return idx.footer.fingerprint == plan.fingerprint && idx.footer.raw_bytes == plan.raw_bytes &&
           idx.footer.split == static_cast<uint32_t>(plan.split) && idx.footer.shard_index == plan.index &&
           idx.frames.size() == plan.frames;
  } catch (const Error&) {
    return false;
  }
}

namespace {

// Verifies every frame of an existing shard and hashes the file; nullopt when it does not verify.
std::optional<ShardResult> CheckExisting(io::FileSystem& fs, const std::string& dir, const ShardPlan& plan) {
  try {
    auto f = fs.OpenReadable(io::JoinPath(dir, plan.name));
    ShardIndex idx = ReadShardIndex(*f);
    if (idx.footer.fingerprint != plan.fingerprint || idx.frames.size() != plan.frames) return std::nullopt;
    Xxh64Stream raw_hash;
    std::string raw;
    for (size_t i = 0; i < idx.frames.size(); ++i) {
      ReadFrame(*f, idx, i, raw);
      raw_hash.Update(raw);
    }
    if (raw_hash.Digest() != idx.footer.raw_xxh64) return std::nullopt;
    ShardResult r;
    r.plan = &plan;
    r.file_bytes = f->Size();
    r.raw_xxh64 = idx.footer.raw_xxh64;
    r.file_xxh64 = io::HashRange(*f, 0, f->Size());
    r.reused = true;
    return r;
  } catch (const DataError&) {
    return std::nullopt;
  }
}

void ReadAndHash(const DatasetPlan& plan, const ShardPlan& sp, uint64_t frame, std::string& raw, uint64_t& hash) {
  const uint64_t start = frame * plan.params().frame_bytes;
  const uint64_t n = std::min(plan.params().frame_bytes, sp.raw_bytes - start);
  raw.resize(n);
  plan.ReadRange(sp.split, sp.raw_offset + start, n, raw.data());
  hash = Xxh64(raw);
}

}  // namespace

void ProcessWork(const DatasetPlan& plan, io::FileSystem& fs, const std::string& dir, FrameWork& w) {
  const ShardPlan& sp = *w.shard;
  if (!w.keep_existing) {
    ReadAndHash(plan, sp, w.frame, w.raw, w.raw_xxh64);
    CompressFrame(w.raw, plan.params().level, w.compressed);
    return;
  }
  if (auto kept = CheckExisting(fs, dir, sp)) {
    w.kept = *kept;
    return;
  }
  // The file from the earlier run is damaged: rebuild the whole shard here, frame by frame.
  ShardFileBuilder b(fs, dir, sp);
  for (uint64_t i = 0; i < sp.frames; ++i) {
    ReadAndHash(plan, sp, i, w.raw, w.raw_xxh64);
    CompressFrame(w.raw, plan.params().level, w.compressed);
    b.Add(w.raw, w.raw_xxh64, w.compressed);
  }
  w.kept = b.Finish();
  w.raw.clear();
  w.compressed.clear();
}

std::optional<ShardResult> ShardAssembler::Consume(FrameWork& w) {
  if (w.keep_existing) return w.kept;
  if (!open_) open_ = std::make_unique<ShardFileBuilder>(fs_, dir_, *w.shard);
  open_->Add(w.raw, w.raw_xxh64, w.compressed);
  if (!w.last_in_shard) return std::nullopt;
  ShardResult r = open_->Finish();
  open_.reset();
  return r;
}

pb::Manifest BuildManifest(const DatasetPlan& plan, const std::vector<ShardResult>& shards,
                           const std::vector<std::string>& source_paths) {
  pb::Manifest m;
  m.set_format_version(kManifestFormatVersion);
  m.set_generator(kVersionString);
  const Params& p = plan.params();
  auto* cp = m.mutable_params();
  cp->set_frame_bytes(p.frame_bytes);
  cp->set_shard_bytes(p.shard_bytes);
  cp->set_level(p.level);
  cp->set_val_fraction(p.val_fraction);
  cp->set_jsonl_field(p.jsonl_field);
  cp->set_skip_bad_records(p.skip_bad_records);
  std::vector<uint64_t> docs_per_source(plan.sources().size(), 0);
  uint64_t empty = 0;
  for (const PlannedDoc& d : plan.docs()) {
    auto* pd = m.add_documents();
    pd->set_source(d.source);
    pd->set_split(static_cast<pb::Split>(d.split));
    pd->set_offset(d.split_offset);
    pd->set_length(d.ref.length);
    pd->set_xxh64(d.ref.xxh64);
    ++docs_per_source[d.source];
    if (d.ref.length == 0) ++empty;
  }
  for (size_t i = 0; i < plan.sources().size(); ++i) {
    const ScannedSource& s = plan.sources()[i];
    auto* ps = m.add_sources();
    ps->set_path(i < source_paths.size() ? source_paths[i] : s.path);
    ps->set_size(s.size);
    ps->set_xxh64(s.xxh64);
    ps->set_documents(docs_per_source[i]);
    ps->set_bad_records(s.bad_records);
  }
  uint64_t shard_count[kNumSplits] = {0, 0};
  for (const ShardResult& r : shards) {
    const ShardPlan& sp = *r.plan;
    auto* ps = m.add_shards();
    ps->set_name(sp.name);
    ps->set_split(static_cast<pb::Split>(sp.split));
    ps->set_index(sp.index);
    ps->set_raw_offset(sp.raw_offset);
    ps->set_raw_bytes(sp.raw_bytes);
    ps->set_file_bytes(r.file_bytes);
    ps->set_frames(sp.frames);
    ps->set_documents(sp.documents);
    ps->set_raw_xxh64(r.raw_xxh64);
    ps->set_file_xxh64(r.file_xxh64);
    ++shard_count[static_cast<int>(sp.split)];
  }
  for (int s = 0; s < kNumSplits; ++s) {
    auto* ss = m.add_splits();
    ss->set_split(static_cast<pb::Split>(s));
    ss->set_bytes(plan.split_bytes(static_cast<Split>(s)));
    ss->set_documents(plan.split_docs(static_cast<Split>(s)));
    ss->set_shards(shard_count[s]);
  }
  m.set_dataset_id(plan.dataset_id());
  m.set_val_tail_fallback(plan.tail_fallback());
  m.set_empty_documents(empty);
  return m;
}

std::string SerializeManifest(const pb::Manifest& manifest) {
  pb::Manifest m = manifest;
  m.clear_manifest_xxh64();  // proto3: a zero fixed64 is not written, so the trailer is the only copy
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw Error("cannot serialise the manifest");
  const uint64_t h = Xxh64(bytes);
  bytes.push_back(static_cast<char>(kManifestTrailerTag));
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((h >> (8 * i)) & 0xff));
  return bytes;
}

void WriteManifest(io::FileSystem& fs, const std::string& dir, const pb::Manifest& m) {
  const std::string bytes = SerializeManifest(m);
  for (const auto& sh : m.shards()) fs.SyncFile(io::JoinPath(dir, sh.name()));
  fs.SyncDir(dir);  // the shards and their renames are durable before the manifest names them
  io::WriteFileAtomic(fs, io::JoinPath(dir, kManifestName), bytes);
}

}  // namespace bitbyte::shard
