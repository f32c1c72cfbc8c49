#include "base/file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "base/hash.h"

namespace bitbyte::io {
namespace {

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void Append(std::string_view data) override {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
      if (n > 0) {
        done += static_cast<size_t>(n);  // a short write (disk full, file size limit): go on
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      const int err = n < 0 ? errno : ENOSPC;  // no progress on a non-empty write: out of space
      std::string message = ErrnoMessage("write", path_, err);
      if (done > 0) message += " (after " + std::to_string(done) + " of " + std::to_string(data.size()) + " bytes)";
      throw Error(message);
    }
    size_ += data.size();
  }
  void Sync() override {
    if (::fsync(fd_) != 0) throw Error(ErrnoMessage("fsync", path_, errno));
  }
  void StartSync() override {
    // Best effort: the fsync that matters comes before the manifest is written.
    ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
  }
  void Close() override {
    if (fd_ < 0) return;
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw Error(ErrnoMessage("close", path_, errno));
  }
  void Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) throw Error(ErrnoMessage("truncate", path_, errno));
    size_ = size;
  }
  uint64_t Size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixReadableFile() override { ::close(fd_); }
  void ReadAt(uint64_t offset, size_t n, char* out) const override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw Error(ErrnoMessage("read", path_, errno) + " at offset " + std::to_string(offset + done));
      }
      if (r == 0) {
        throw DataError("'" + path_ + "': unexpected end of file at offset " + std::to_string(offset + done) +
                        " (wanted " + std::to_string(n) + " bytes at offset " + std::to_string(offset) + ", file has " +
                        std::to_string(size_) + ")");
      }
      done += static_cast<size_t>(r);
    }
  }
  uint64_t Size() const override { return size_; }
  const std::string& Path() const override { return path_; }
  FileStamp Stamp() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) throw Error(ErrnoMessage("stat", path_, errno));
    FileStamp s;
    s.dev = static_cast<uint64_t>(st.st_dev);
    s.ino = static_cast<uint64_t>(st.st_ino);
    s.size = static_cast<uint64_t>(st.st_size);
    s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    return s;
  }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixFileSystem final : public FileSystem {
 public:
  std::unique_ptr<WritableFile> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(ErrnoMessage("create", path, errno));
    return std::make_unique<PosixWritableFile>(path, fd, 0);
  }
  std::unique_ptr<WritableFile> NewAppendableFile(const std::string& path, bool must_create) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (must_create ? O_EXCL : 0), 0644);
    if (fd < 0) throw Error(ErrnoMessage(must_create ? "create" : "open", path, errno));
    const off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0) {
      const int err = errno;
      ::close(fd);
      throw Error(ErrnoMessage("seek in", path, err));
    }
    return std::make_unique<PosixWritableFile>(path, fd, static_cast<uint64_t>(end));
  }
  std::unique_ptr<ReadableFile> OpenReadable(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(ErrnoMessage("open", path, errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw Error(ErrnoMessage("stat", path, err));
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      throw Error("'" + path + "' is a directory, expected a file");
    }
    return std::make_unique<PosixReadableFile>(path, fd, static_cast<uint64_t>(st.st_size));
  }
  void Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) throw Error(ErrnoMessage("rename", from, errno) + " to '" + to + "'");
  }
  void Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw Error(ErrnoMessage("remove", path, errno));
  }
  void RemoveAll(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return;
      throw Error(ErrnoMessage("stat", path, errno));
    }
    if (S_ISDIR(st.st_mode)) {
      for (const std::string& name : ListDir(path)) RemoveAll(JoinPath(path, name));
      if (::rmdir(path.c_str()) != 0 && errno != ENOENT) throw Error(ErrnoMessage("remove directory", path, errno));
    } else {
      Remove(path);
    }
  }
  void SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw Error(ErrnoMessage("open directory", dir, errno));
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0 && err != EINVAL) throw Error(ErrnoMessage("fsync directory", dir, err));
  }
  void SyncFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(ErrnoMessage("open", path, errno));
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) throw Error(ErrnoMessage("fsync", path, err));
  }
  void CreateDirs(const std::string& dir) override {
    if (dir.empty()) return;
    std::string partial;
    size_t pos = 0;
    while (pos != std::string::npos) {
      pos = dir.find('/', pos + 1);
      partial = dir.substr(0, pos);
      if (partial.empty()) continue;
      if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
        throw Error(ErrnoMessage("create directory", partial, errno));
    }
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw Error("'" + dir + "' exists and is not a directory");
  }
  bool Exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }
  std::vector<std::string> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw Error(ErrnoMessage("list directory", dir, errno));
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }
};

}  // namespace

FileSystem& Posix() {
  static PosixFileSystem fs;
  return fs;
}

namespace {

// Test hook for crash-consistency tests: BITBYTE_CRASH_AFTER_WRITES=N makes the process SIGKILL
// itself at its N-th durable file operation: an append to or fsync of a file being written whole,
// a rename, an fsync by path. Appends to logs (metrics.jsonl, event files) are not counted, so
// the count of a run does not depend on how its threads interleave with the log writers.
class CrashHookFs final : public FileSystemWrapper {
 public:
  explicit CrashHookFs(long limit) : FileSystemWrapper(Posix()), limit_(limit) {}
  std::unique_ptr<WritableFile> NewWritableFile(const std::string& path) override {
    struct File final : WritableFileWrapper {
      File(std::unique_ptr<WritableFile> f, CrashHookFs& fs) : WritableFileWrapper(std::move(f)), fs(fs) {}
      void Append(std::string_view data) override {
        fs.Count();
        WritableFileWrapper::Append(data);
      }
      void Sync() override {
        fs.Count();
        WritableFileWrapper::Sync();
      }
      CrashHookFs& fs;
    };
    return std::make_unique<File>(FileSystemWrapper::NewWritableFile(path), *this);
  }
  void Rename(const std::string& from, const std::string& to) override {
    Count();
    FileSystemWrapper::Rename(from, to);
  }
  void SyncFile(const std::string& path) override {
    Count();
    FileSystemWrapper::SyncFile(path);
  }

 private:
  void Count() {
    if (++count_ >= limit_) std::raise(SIGKILL);
  }
  const long limit_;
  std::atomic<long> count_{0};
};

}  // namespace

FileSystem& Default() {
  static FileSystem* fs = []() -> FileSystem* {
    const char* v = std::getenv("BITBYTE_CRASH_AFTER_WRITES");
    const long limit = v ? std::atol(v) : 0L;
    if (limit <= 0) return &Posix();
    static CrashHookFs hook(limit);
    return &hook;
  }();
  return *fs;
}

std::string UserCacheDir() {
  const auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
  };
  if (!env("BITBYTE_CACHE").empty()) return env("BITBYTE_CACHE");
  if (!env("XDG_CACHE_HOME").empty()) return JoinPath(env("XDG_CACHE_HOME"), "bitbyte");
  if (!env("HOME").empty()) return JoinPath(env("HOME"), ".cache/bitbyte");
  return "";
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string ReadFile(FileSystem& fs, const std::string& path) {
  auto f = fs.OpenReadable(path);
  std::string out(f->Size(), '\0');
  if (!out.empty()) {
    f->ReadAt(0, out.size(), out.data());
    return out;
  }
  // A size of 0 is not always an empty file: procfs and sysfs report 0 for files with content.
  // Read those to their end.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrnoMessage("open", path, errno));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw Error(ErrnoMessage("read", path, err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

namespace {

// `data` to a temp file beside `path`, renamed over it: a reader never sees half of it. `durable`:
// fsync the file before the rename and the directory after it, so a crash keeps old or new.
void ReplaceThroughTemp(FileSystem& fs, const std::string& path, std::string_view data, bool durable) {
  const std::string tmp = path + ".tmp";
  try {
    {
      auto f = fs.NewWritableFile(tmp);
      f->Append(data);
      if (durable) f->Sync();
      f->Close();
    }
    fs.Rename(tmp, path);
  } catch (...) {
    // Leave nothing behind: a failed write or rename (disk full, `path` a directory) keeps the
    // old file, if any, and removes the temp file.
    try {
      fs.Remove(tmp);
    } catch (...) {
    }
    throw;
  }
  if (durable) fs.SyncDir(DirName(path));
}

}  // namespace

void WriteFileAtomic(FileSystem& fs, const std::string& path, std::string_view data) {
  ReplaceThroughTemp(fs, path, data, /*durable=*/true);
}

void ReplaceFile(FileSystem& fs, const std::string& path, std::string_view data) {
  ReplaceThroughTemp(fs, path, data, /*durable=*/false);
}

uint64_t HashRange(const ReadableFile& file, uint64_t offset, uint64_t length) {
  Xxh64Stream h;
  std::string buf(static_cast<size_t>(std::min<uint64_t>(length, 1 << 20)), '\0');
  for (uint64_t done = 0; done < length;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
    file.ReadAt(offset + done, n, buf.data());
    h.Update(std::string_view(buf.data(), n));
    done += n;
  }
  return h.Digest();
}

DirLock::DirLock(const std::string& dir) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throw Error(ErrnoMessage("open directory", dir, errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    throw Error("another bitbyte job is writing to '" + dir + "'; wait for it to finish");
  }
}

DirLock::~DirLock() { ::close(fd_); }

}  // namespace bitbyte::io
