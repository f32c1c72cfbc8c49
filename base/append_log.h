#pragma once
// A file of whole lines, each added with one append: metrics.jsonl. A kill leaves at most one
// torn last line; a failed write (disk full, file size limit) is reported with the error of the
// call that failed, after cutting the file back to its last whole line, so a later reader (and a
// resumed run) never meets a partial record in the middle.
#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace bitbyte::io {

class AppendLog {
 public:
  // Opens (creates) `path` for appending. Throws Error naming it.
  explicit AppendLog(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(ErrnoMessage("open", path_, errno));
    const off_t end = ::lseek(fd_, 0, SEEK_END);
    if (end < 0) {
      const int err = errno;
      ::close(fd_);
      throw Error(ErrnoMessage("seek in", path_, err));
    }
    size_ = static_cast<uint64_t>(end);
  }
  ~AppendLog() { ::close(fd_); }
  AppendLog(const AppendLog&) = delete;
  AppendLog& operator=(const AppendLog&) = delete;

  // Appends `record` (one line, with its newline). A short write goes on with the rest; a write
  // that fails throws Error with that call's errno ("No space left on device", "File too
  // large"), and the file is cut back to what it held before.
  void Append(std::string_view record) {
    size_t done = 0;
    while (done < record.size()) {
      const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      const int err = n < 0 ? errno : ENOSPC;  // no progress on a non-empty write: out of space
      if (n < 0 && err == EINTR) continue;
      std::string message = ErrnoMessage("write", path_, err);
      if (done > 0) {
        message += " (after " + std::to_string(done) + " of " + std::to_string(record.size()) + " bytes of a record";
        if (::ftruncate(fd_, static_cast<off_t>(size_)) == 0) {
          message += ", cut off again)";
        } else {
          const int terr = errno;
          message += "; then " + ErrnoMessage("truncate", path_, terr) + ", so it ends in a partial line)";
        }
      }
      throw Error(message);
    }
    size_ += record.size();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;  // bytes of whole records
};

}  // namespace bitbyte::io
