#pragma once
// A file of whole records, each added with one append: metrics.jsonl. A kill leaves at most one
// torn last record; a failed write (disk full, file size limit) is reported with the error of the
// call that failed, after cutting the file back to its last whole record, so a later reader (and
// a resumed run) never meets a partial record in the middle.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/file_io.h"

namespace bitbyte::io {

class AppendLog {
 public:
  // Opens (creates) `path` for appending through `fs`. Throws Error naming it.
  explicit AppendLog(std::string path, FileSystem& fs = Default())
      : path_(std::move(path)), file_(fs.NewAppendableFile(path_, /*must_create=*/false)), size_(file_->Size()) {}
  AppendLog(const AppendLog&) = delete;
  AppendLog& operator=(const AppendLog&) = delete;

  // Appends `record` (one line, with its newline). A write that fails throws Error with that
  // call's errno ("No space left on device", "File too large"), and the file is cut back to what
  // it held before.
  void Append(std::string_view record) {
    try {
      file_->Append(record);
    } catch (const Error& e) {
      std::string message = e.what();
      try {
        file_->Truncate(size_);
        message += "; the file was cut back to its last whole record";
      } catch (const Error& t) {
        message += std::string("; then ") + t.what() + ", so it may end in a partial record";
      }
      throw Error(message);
    }
    size_ += record.size();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<WritableFile> file_;
  uint64_t size_ = 0;  // bytes of whole records
};

}  // namespace bitbyte::io
