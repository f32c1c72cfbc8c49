#include "train/checkpoint.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "base/error.h"
#include "base/hash.h"
#include "base/version.h"
#include "runs/layout.h"
#include "train/checkpoint.pb.h"

namespace bitbyte::train {
namespace {

constexpr char kTensorsFile[] = "tensors.bin";
constexpr char kMetaFile[] = "meta.pb";
constexpr char kCommitFile[] = "COMMIT";
constexpr char kLatestFile[] = "latest";
constexpr char kBestFile[] = "best";
constexpr char kPrefix[] = "step-";
constexpr char kTmpPrefix[] = ".tmp-";
constexpr char kOldPrefix[] = ".old-";

void WriteSynced(io::FileSystem& fs, const std::string& path, std::string_view data) {
  auto f = fs.NewWritableFile(path);
  f->Append(data);
  f->Sync();
  f->Close();
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

// The COMMIT file: the marker, meta.pb's size and XXH64.
std::string CommitText(uint64_t meta_size, uint64_t meta_hash) {
  return "bitbyte-checkpoint 1\nmeta_size " + std::to_string(meta_size) + "\nmeta_xxh64 " + Hex(meta_hash) + "\n";
}

bool ParseStep(const std::string& name, int64_t* step) {
  if (name.rfind(kPrefix, 0) != 0 || name.size() == sizeof(kPrefix) - 1) return false;
  const std::string digits = name.substr(sizeof(kPrefix) - 1);
  if (digits.size() > 18) return false;  // not one of ours (and would overflow)
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  *step = std::stoll(digits);
  return true;
}

}  // namespace

const TensorBlob* Snapshot::Find(const std::string& name) const {
  for (const TensorBlob& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const std::string* Snapshot::FindBlob(const std::string& name) const {
  for (const auto& [n, v] : blobs)
    if (n == name) return &v;
  return nullptr;
}

std::string CheckpointName(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%09" PRId64, kPrefix, step);
  return buf;
}

std::string WriteCheckpoint(io::FileSystem& fs, const std::string& ckpt_dir, const Snapshot& snap) {
  const std::string name = CheckpointName(snap.step);
  const std::string final_dir = io::JoinPath(ckpt_dir, name);
  const std::string tmp = io::JoinPath(ckpt_dir, kTmpPrefix + name);
  fs.CreateDirs(ckpt_dir);
  fs.RemoveAll(tmp);
  fs.CreateDirs(tmp);

  pb::CheckpointMeta meta;
  meta.set_format_version(1);
  meta.set_step(snap.step);
  meta.set_config_text(snap.config_text);
  meta.set_dataset_id(snap.dataset_id);
  meta.set_created_by(kVersionString);
  meta.set_unix_time(static_cast<double>(std::time(nullptr)));
  {
    auto f = fs.NewWritableFile(io::JoinPath(tmp, kTensorsFile));
    uint64_t offset = 0;
    for (const TensorBlob& t : snap.tensors) {
      pb::TensorEntry* e = meta.add_tensors();
      e->set_name(t.name);
      e->set_dtype(t.dtype);
      for (int64_t d : t.shape) e->add_shape(d);
      e->set_offset(offset);
      e->set_size(t.data.size());
      e->set_xxh64(Xxh64(t.data));
      f->Append(t.data);
      offset += t.data.size();
    }
    meta.set_data_size(offset);
    f->Sync();
    f->Close();
  }
  for (const auto& [n, v] : snap.blobs) {
    pb::Blob* b = meta.add_blobs();
    b->set_name(n);
    b->set_value(v);
  }
  const std::string meta_bytes = meta.SerializeAsString();
  WriteSynced(fs, io::JoinPath(tmp, kMetaFile), meta_bytes);
  // Written last: a directory without a valid COMMIT is never taken for a checkpoint.
  WriteSynced(fs, io::JoinPath(tmp, kCommitFile), CommitText(meta_bytes.size(), Xxh64(meta_bytes)));
  fs.SyncDir(tmp);
  if (fs.Exists(final_dir)) {  // the same step again (a resumed run retraced it): swap it out
    const std::string old = io::JoinPath(ckpt_dir, kOldPrefix + name);
    fs.RemoveAll(old);
    fs.Rename(final_dir, old);
    fs.Rename(tmp, final_dir);
    fs.SyncDir(ckpt_dir);
    fs.RemoveAll(old);
  } else {
    fs.Rename(tmp, final_dir);
    fs.SyncDir(ckpt_dir);
  }
  return final_dir;
}

Snapshot ReadCheckpoint(io::FileSystem& fs, const std::string& dir) {
  const std::string commit_path = io::JoinPath(dir, kCommitFile);
  if (!fs.Exists(commit_path)) throw DataError(commit_path + ": missing (the checkpoint was never completed)");
  uint64_t meta_size = 0, meta_hash = 0;
  {
    std::istringstream in(io::ReadFile(fs, commit_path));
    std::string magic, version, k1, k2, hash_hex;
    in >> magic >> version >> k1 >> meta_size >> k2 >> hash_hex;
    if (!in || magic != "bitbyte-checkpoint" || version != "1" || k1 != "meta_size" || k2 != "meta_xxh64" ||
        hash_hex.size() != 16)
      throw DataError(commit_path + ": not a bitbyte checkpoint marker");
    for (char ch : hash_hex) {
      const int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
      if (v < 0) throw DataError(commit_path + ": not a bitbyte checkpoint marker");
      meta_hash = meta_hash << 4 | static_cast<uint64_t>(v);
    }
    // Exactly the text WriteCheckpoint writes: a changed separator, a lost final newline or
    // anything after it is damage too.
    if (in.str() != CommitText(meta_size, meta_hash)) throw DataError(commit_path + ": damaged checkpoint marker");
  }
  const std::string meta_path = io::JoinPath(dir, kMetaFile);
  const std::string meta_bytes = io::ReadFile(fs, meta_path);
  if (meta_bytes.size() != meta_size)
    throw DataError(meta_path + ": size " + std::to_string(meta_bytes.size()) + ", COMMIT says " +
                    std::to_string(meta_size));
  if (Xxh64(meta_bytes) != meta_hash) throw DataError(meta_path + ": checksum mismatch");
  pb::CheckpointMeta meta;
  if (!meta.ParseFromString(meta_bytes)) throw DataError(meta_path + ": cannot parse");
  if (meta.format_version() != 1)
    throw DataError(meta_path + ": format_version " + std::to_string(meta.format_version()) + " is not supported");

  const std::string data_path = io::JoinPath(dir, kTensorsFile);
  const std::string data = io::ReadFile(fs, data_path);
  if (data.size() != meta.data_size())
    throw DataError(data_path + ": size " + std::to_string(data.size()) + ", expected " +
                    std::to_string(meta.data_size()));
  Snapshot snap;
  snap.step = meta.step();
  snap.config_text = meta.config_text();
  snap.dataset_id = meta.dataset_id();
  for (const pb::TensorEntry& e : meta.tensors()) {
    if (e.offset() > data.size() || e.size() > data.size() - e.offset())
      throw DataError(data_path + ": tensor '" + e.name() + "' lies outside the file");
    if (Xxh64(std::string_view(data.data() + e.offset(), e.size())) != e.xxh64())
      throw DataError(data_path + ": tensor '" + e.name() + "' at offset " + std::to_string(e.offset()) +
                      " fails its checksum");
    TensorBlob t;
    t.name = e.name();
    t.dtype = e.dtype();
    t.shape.assign(e.shape().begin(), e.shape().end());
    t.data.assign(data.data() + e.offset(), e.size());
    snap.tensors.push_back(std::move(t));
  }
  for (const pb::Blob& b : meta.blobs()) snap.blobs.emplace_back(b.name(), b.value());
  return snap;
}

std::vector<std::string> ListCheckpoints(io::FileSystem& fs, const std::string& ckpt_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  if (!fs.Exists(ckpt_dir)) return {};
  for (const std::string& n : fs.ListDir(ckpt_dir)) {
    int64_t step;
    if (ParseStep(n, &step)) found.emplace_back(step, n);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> names;
  for (auto& f : found) names.push_back(std::move(f.second));
  return names;
}

std::optional<LoadedCheckpoint> LoadNewestGood(io::FileSystem& fs, const std::string& ckpt_dir,
                                               const std::function<void(const std::string&)>& warn) {
  // Newest first. `latest` is only a convenience for people and tools: a crash between the
  // rename and the pointer update leaves a newer complete checkpoint, which is just as good.
  std::vector<std::string> names = ListCheckpoints(fs, ckpt_dir);
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    const std::string dir = io::JoinPath(ckpt_dir, *it);
    try {
      Snapshot snap = ReadCheckpoint(fs, dir);
      if (CheckpointName(snap.step) != *it)
        throw DataError(dir + ": holds step " + std::to_string(snap.step) + ", not the step its name says");
      return LoadedCheckpoint{dir, std::move(snap)};
    } catch (const DataError& e) {  // damage; other errors (permissions, I/O) are not hidden
      if (warn) warn("checkpoint " + dir + " is unusable (" + e.what() + "); trying an older one");
    }
  }
  return std::nullopt;
}

LoadedCheckpoint LoadForInference(const std::string& path, const std::function<void(const std::string&)>& warn) {
  io::FileSystem& fs = io::Posix();
  if (fs.Exists(io::JoinPath(path, kCommitFile)) || fs.Exists(io::JoinPath(path, kMetaFile)))
    return {path, ReadCheckpoint(fs, path)};
  for (const std::string& dir : {io::JoinPath(path, runs::kCheckpointDir), path}) {
    if (!fs.Exists(dir) || ListCheckpoints(fs, dir).empty()) continue;
    if (auto loaded = LoadNewestGood(fs, dir, warn)) return std::move(*loaded);
    throw DataError("no usable checkpoint in " + dir);
  }
  throw Error("'" + path + "' is not a checkpoint, a checkpoints directory or a run directory with checkpoints");
}

// ---- CheckpointSink ----

CheckpointSink::CheckpointSink(io::FileSystem& fs, std::string ckpt_dir, int keep,
                               std::function<void(const std::string&)> log)
    : fs_(fs), dir_(std::move(ckpt_dir)), keep_(keep), log_(std::move(log)) {
  fs_.CreateDirs(dir_);
  for (const std::string& n : fs_.ListDir(dir_))  // leftovers of an interrupted write
    if (n.rfind(kTmpPrefix, 0) == 0 || n.rfind(kOldPrefix, 0) == 0) fs_.RemoveAll(io::JoinPath(dir_, n));
  for (const std::string& n : ListCheckpoints(fs_, dir_)) {
    int64_t step;
    ParseStep(n, &step);
    written_steps_.push_back(step);
  }
  const std::string best_path = io::JoinPath(dir_, kBestFile);
  if (fs_.Exists(best_path)) {
    std::istringstream in(io::ReadFile(fs_, best_path));
    std::string name;
    double bpb;
    int64_t step;
    // Only a best that is still on disk counts (a damaged one may have been set aside).
    if (in >> name >> bpb && ParseStep(name, &step) &&
        std::find(written_steps_.begin(), written_steps_.end(), step) != written_steps_.end())
      best_ = std::make_pair(step, bpb);
  }
  thread_ = std::thread([this] { Loop(); });
}

CheckpointSink::~CheckpointSink() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CheckpointSink::ThrowIfFailed() {
  if (error_) std::rethrow_exception(error_);
}

void CheckpointSink::Submit(std::shared_ptr<const Snapshot> snap) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ThrowIfFailed();
    // Never go back: a snapshot older than the pending one, or than one being written or
    // written, is dropped.
    const int64_t newest = std::max(pending_ ? pending_->step : -1, newest_taken_);
    if (snap->step <= newest) {
      ++stats_.replaced;
      return;
    }
    if (pending_) ++stats_.replaced;
    pending_ = std::move(snap);
  }
  cv_.notify_all();
}

void CheckpointSink::RecordEval(int64_t step, double bpb) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    evals_.emplace_back(step, bpb);
  }
  cv_.notify_all();  // the writer thread updates `best` if this step is on disk
}

void CheckpointSink::HoldUnvouched() {
  std::lock_guard<std::mutex> lock(mu_);
  hold_ = true;
}

void CheckpointSink::Vouch(int64_t step) {
  std::lock_guard<std::mutex> lock(mu_);
  vouched_ = std::max(vouched_, step);
}

void CheckpointSink::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return (!pending_ && !busy_ && evals_seen_ == evals_.size()) || error_; });
  ThrowIfFailed();
}

CheckpointSink::Stats CheckpointSink::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CheckpointSink::Loop() {
  for (;;) {
    std::shared_ptr<const Snapshot> snap;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return pending_ || stop_ || evals_.size() != evals_seen_; });
      if (error_) {  // after a failure nothing more is written; Submit/Flush report it
        pending_.reset();
        if (stop_) return;
        evals_seen_ = evals_.size();
        cv_.notify_all();
        continue;
      }
      if (!pending_ && evals_.size() == evals_seen_) return;  // stop_ and nothing left
      snap = std::move(pending_);
      if (snap) newest_taken_ = std::max(newest_taken_, snap->step);
      evals_seen_ = evals_.size();
      busy_ = true;
    }
    try {
      if (snap) {
        const auto t0 = std::chrono::steady_clock::now();
        WriteCheckpoint(fs_, dir_, *snap);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        uint64_t bytes = 0;
        for (const TensorBlob& t : snap->tensors) bytes += t.data.size();
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++stats_.written;
          stats_.write_seconds += secs;
          stats_.last_write_seconds = secs;
          stats_.bytes += bytes;
        }
        AfterWrite(snap->step);
      } else {
        UpdateBest();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = false;
    }
    cv_.notify_all();
  }
}

void CheckpointSink::AfterWrite(int64_t step) {
  io::WriteFileAtomic(fs_, io::JoinPath(dir_, kLatestFile), CheckpointName(step) + "\n");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (std::find(written_steps_.begin(), written_steps_.end(), step) == written_steps_.end())
      written_steps_.push_back(step);
    std::sort(written_steps_.begin(), written_steps_.end());
  }
  UpdateBest();
  // Keep the newest `keep`, the best and what is held (HoldUnvouched); remove the rest (oldest first).
  std::vector<int64_t> remove;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t n = written_steps_.size();
    int64_t newest_vouched = -1;  // the newest checkpoint at or before the vouched step
    for (int64_t s : written_steps_)
      if (s <= vouched_) newest_vouched = s;
    std::vector<int64_t> kept;
    for (size_t i = 0; i < n; ++i) {
      const int64_t s = written_steps_[i];
      const bool recent = i + static_cast<size_t>(keep_) >= n;
      const bool held = hold_ && (s > vouched_ || s == newest_vouched);
      if (recent || held || (best_ && best_->first == s))
        kept.push_back(s);
      else
        remove.push_back(s);
    }
    written_steps_ = kept;
  }
  // A removal that fails is the sink's error like a failed write (the new checkpoint is
  // committed by now, so nothing is lost).
  for (int64_t s : remove) fs_.RemoveAll(io::JoinPath(dir_, CheckpointName(s)));
}

void CheckpointSink::UpdateBest() {
  std::optional<std::pair<int64_t, double>> best;
  {
    std::lock_guard<std::mutex> lock(mu_);
    best = best_;
    for (const auto& [step, bpb] : evals_) {
      const bool on_disk = std::find(written_steps_.begin(), written_steps_.end(), step) != written_steps_.end();
      if (on_disk && (!best || bpb < best->second)) best = std::make_pair(step, bpb);
    }
    if (best == best_) return;
  }
  char line[96];
  std::snprintf(line, sizeof line, "%s %.6f\n", CheckpointName(best->first).c_str(), best->second);
  io::WriteFileAtomic(fs_, io::JoinPath(dir_, kBestFile), line);
  std::lock_guard<std::mutex> lock(mu_);
  best_ = best;
}

}  // namespace bitbyte::train
