#pragma once
// The one small I/O interface of bitbyte. Every write of every job (dataset shards and manifest,
// run.json, config, metrics.jsonl, TensorBoard events, checkpoints, pipeline.json, reports) goes
// through a FileSystem, so tests can inject failures (disk full, failed fsync) at any of them
// without real disks failing: derive from FileSystemWrapper and override what should fail.
// Reads use pread and are safe to share between threads.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bitbyte::io {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Throws Error on failure; after a short write the message says how much of `data` landed
  // ("after 50 of 223 bytes"), and Size() still counts only the appends that completed.
  virtual void Append(std::string_view data) = 0;
  virtual void Sync() = 0;     // fsync
  virtual void StartSync() {}  // start writeback without waiting for it
  virtual void Close() = 0;
  // Cuts the file back to `size` bytes (a partial record off the end of an append-only file).
  virtual void Truncate(uint64_t size) = 0;
  virtual uint64_t Size() const = 0;  // the file's size as this object knows it
};

// What identifies a file's contents cheaply: a change of any field means it was replaced or
// modified (mtime has nanosecond resolution on the file systems we run on).
struct FileStamp {
  uint64_t dev = 0, ino = 0, size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns;
  }
  bool operator!=(const FileStamp& o) const { return !(*this == o); }
};

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads exactly n bytes at offset into out; throws Error naming the file on a short read.
  virtual void ReadAt(uint64_t offset, size_t n, char* out) const = 0;
  virtual uint64_t Size() const = 0;
  virtual const std::string& Path() const = 0;
  virtual FileStamp Stamp() const = 0;  // as of now (fstat)
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual std::unique_ptr<WritableFile> NewWritableFile(const std::string& path) = 0;  // truncates
  // Opens `path` for appending: every Append lands whole at the end (O_APPEND), so a kill tears
  // at most the last record. Size() starts at the file's size. must_create: fail when it exists.
  virtual std::unique_ptr<WritableFile> NewAppendableFile(const std::string& path, bool must_create) = 0;
  virtual std::unique_ptr<ReadableFile> OpenReadable(const std::string& path) = 0;
  virtual void Rename(const std::string& from, const std::string& to) = 0;
  virtual void Remove(const std::string& path) = 0;     // a file; no error if missing
  virtual void RemoveAll(const std::string& path) = 0;  // a file or a whole tree; no error if missing
  virtual void SyncDir(const std::string& dir) = 0;
  virtual void SyncFile(const std::string& path) = 0;  // fsync a closed file by path
  virtual void CreateDirs(const std::string& dir) = 0;
  virtual bool Exists(const std::string& path) = 0;
  virtual std::vector<std::string> ListDir(const std::string& dir) = 0;  // names, sorted
};

// The real file system. A process-wide instance.
FileSystem& Posix();

// What jobs write through unless told otherwise: Posix(), or, when the environment sets
// BITBYTE_CRASH_AFTER_WRITES=N (crash-consistency tests), Posix() with a hook that SIGKILLs the
// process at its N-th durable operation (file_io.cc says which operations count).
FileSystem& Default();

// Forwards everything to another file system (leveldb's EnvWrapper): a test double overrides
// only what it changes.
class FileSystemWrapper : public FileSystem {
 public:
  explicit FileSystemWrapper(FileSystem& target = Posix()) : target_(target) {}
  FileSystem& target() const { return target_; }

  std::unique_ptr<WritableFile> NewWritableFile(const std::string& path) override {
    return target_.NewWritableFile(path);
  }
  std::unique_ptr<WritableFile> NewAppendableFile(const std::string& path, bool must_create) override {
    return target_.NewAppendableFile(path, must_create);
  }
  std::unique_ptr<ReadableFile> OpenReadable(const std::string& path) override { return target_.OpenReadable(path); }
  void Rename(const std::string& from, const std::string& to) override { target_.Rename(from, to); }
  void Remove(const std::string& path) override { target_.Remove(path); }
  void RemoveAll(const std::string& path) override { target_.RemoveAll(path); }
  void SyncDir(const std::string& dir) override { target_.SyncDir(dir); }
  void SyncFile(const std::string& path) override { target_.SyncFile(path); }
  void CreateDirs(const std::string& dir) override { target_.CreateDirs(dir); }
  bool Exists(const std::string& path) override { return target_.Exists(path); }
  std::vector<std::string> ListDir(const std::string& dir) override { return target_.ListDir(dir); }

 private:
  FileSystem& target_;
};

// The same for one open file.
class WritableFileWrapper : public WritableFile {
 public:
  explicit WritableFileWrapper(std::unique_ptr<WritableFile> target) : target_(std::move(target)) {}
  void Append(std::string_view data) override { target_->Append(data); }
  void Sync() override { target_->Sync(); }
  void StartSync() override { target_->StartSync(); }
  void Close() override { target_->Close(); }
  void Truncate(uint64_t size) override { target_->Truncate(size); }
  uint64_t Size() const override { return target_->Size(); }

 private:
  std::unique_ptr<WritableFile> target_;
};

// The whole file (throws Error naming it when it cannot be read).
std::string ReadFile(FileSystem& fs, const std::string& path);

// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
void WriteFileAtomic(FileSystem& fs, const std::string& path, std::string_view data);

// Replaces `path` with `data` through a temp file and a rename, without fsync: a reader never sees
// half a document, but a crash may lose the newest version. For live views (pipeline.json), not data.
void ReplaceFile(FileSystem& fs, const std::string& path, std::string_view data);

// XXH64 (seed 0) of bytes [offset, offset + length) of a file, read in 1 MiB chunks.
uint64_t HashRange(const ReadableFile& file, uint64_t offset, uint64_t length);

std::string JoinPath(const std::string& dir, const std::string& name);
// Where bitbyte keeps what it can recompute (corpora, measured probes): $BITBYTE_CACHE, else
// $XDG_CACHE_HOME/bitbyte, else $HOME/.cache/bitbyte; empty when none of them is set.
std::string UserCacheDir();
std::string DirName(const std::string& path);

// An exclusive flock on a directory for the life of the object: one writing job per directory.
// Throws Error naming the directory when another process holds it.
class DirLock {
 public:
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace bitbyte::io
