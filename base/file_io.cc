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

namespace bitbyte {

std::string ErrnoMessage(const std::string& what, const std::string& path, int err) {
  return "cannot " + what + " '" + path + "': " + std::strerror(err);
}

namespace io {
namespace {

// Test hook for crash-consistency tests: BITBYTE_CRASH_AFTER_WRITES=N makes the process
// SIGKILL itself at its N-th mutating file operation (append, fsync, rename). Reading one
// environment variable once costs nothing in normal runs.
void MaybeCrash() {
  static const long limit = [] {
    const char* v = std::getenv("BITBYTE_CRASH_AFTER_WRITES");
    return v ? std::atol(v) : 0L;
  }();
  if (limit <= 0) return;
  static std::atomic<long> count{0};
  if (++count >= limit) std::raise(SIGKILL);
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void Append(std::string_view data) override {
    MaybeCrash();
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error(ErrnoMessage("write", path_, errno));
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    size_ += data.size();
  }
  void Sync() override {
    MaybeCrash();
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
  uint64_t Size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_ = 0;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixReadableFile() override { ::close(fd_); }
  void ReadAt(uint64_t offset, size_t n, char* out) const override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw Error(ErrnoMessage("read", path_, errno) + " at offset " +
                    std::to_string(offset + done));
      }
      if (r == 0) {
        throw DataError("'" + path_ + "': unexpected end of file at offset " +
                        std::to_string(offset + done) + " (wanted " + std::to_string(n) +
                        " bytes at offset " + std::to_string(offset) + ", file has " +
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
    return std::make_unique<PosixWritableFile>(path, fd);
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
    MaybeCrash();
    if (::rename(from.c_str(), to.c_str()) != 0)
      throw Error(ErrnoMessage("rename", from, errno) + " to '" + to + "'");
  }
  void Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      throw Error(ErrnoMessage("remove", path, errno));
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
    MaybeCrash();
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

void WriteFileAtomic(FileSystem& fs, const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  try {
    {
      auto f = fs.NewWritableFile(tmp);
      f->Append(data);
      f->Sync();
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
  fs.SyncDir(DirName(path));
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

}  // namespace io
}  // namespace bitbyte
