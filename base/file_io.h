#pragma once
// The one small I/O interface of the sharding library. Everything that writes a dataset goes
// through FileSystem, so tests can inject failures (disk full, failed fsync) without real disks
// failing. Reads use pread and are safe to share between threads.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bitbyte::io {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual void Append(std::string_view data) = 0;  // throws Error on failure
  virtual void Sync() = 0;                          // fsync
  virtual void StartSync() {}                       // start writeback without waiting for it
  virtual void Close() = 0;
  virtual uint64_t Size() const = 0;
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
  virtual std::unique_ptr<ReadableFile> OpenReadable(const std::string& path) = 0;
  virtual void Rename(const std::string& from, const std::string& to) = 0;
  virtual void Remove(const std::string& path) = 0;  // no error if missing
  virtual void SyncDir(const std::string& dir) = 0;
  virtual void SyncFile(const std::string& path) = 0;  // fsync a closed file by path
  virtual void CreateDirs(const std::string& dir) = 0;
  virtual bool Exists(const std::string& path) = 0;
  virtual std::vector<std::string> ListDir(const std::string& dir) = 0;  // names, sorted
};

// The real file system. A process-wide instance.
FileSystem& Posix();

// The whole file (throws Error naming it when it cannot be read).
std::string ReadFile(FileSystem& fs, const std::string& path);

// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
void WriteFileAtomic(FileSystem& fs, const std::string& path, std::string_view data);

// XXH64 (seed 0) of bytes [offset, offset + length) of a file, read in 1 MiB chunks.
uint64_t HashRange(const ReadableFile& file, uint64_t offset, uint64_t length);

std::string JoinPath(const std::string& dir, const std::string& name);
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
