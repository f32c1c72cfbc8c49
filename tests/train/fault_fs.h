#pragma once
// A file system for tests: the real one, except that the N-th mutating operation (create, append,
// fsync, rename, remove, directory sync) fails with an error, and every append can be slowed.
// Thread-safe: the training job writes from several threads.
#include <atomic>
#include <chrono>
#include <thread>

#include "base/error.h"
#include "base/file_io.h"

namespace bitbyte::testing {

class FaultFs : public io::FileSystemWrapper {
 public:
  // fail_at 0: never fail. Counts every mutating operation in ops().
  explicit FaultFs(long fail_at = 0, std::chrono::milliseconds append_delay = std::chrono::milliseconds(0))
      : fail_at_(fail_at), delay_(append_delay) {}
  long ops() const { return ops_; }

  std::unique_ptr<io::WritableFile> NewWritableFile(const std::string& path) override {
    Op("create", path);
    return std::make_unique<File>(FileSystemWrapper::NewWritableFile(path), *this, path);
  }
  std::unique_ptr<io::WritableFile> NewAppendableFile(const std::string& path, bool must_create) override {
    Op("open for appending", path);
    return std::make_unique<File>(FileSystemWrapper::NewAppendableFile(path, must_create), *this, path);
  }
  void Rename(const std::string& a, const std::string& b) override {
    Op("rename", a);
    FileSystemWrapper::Rename(a, b);
  }
  void Remove(const std::string& p) override {
    Op("remove", p);
    FileSystemWrapper::Remove(p);
  }
  void RemoveAll(const std::string& p) override {
    Op("remove tree", p);
    FileSystemWrapper::RemoveAll(p);
  }
  void SyncDir(const std::string& d) override {
    Op("sync dir", d);
    FileSystemWrapper::SyncDir(d);
  }
  void SyncFile(const std::string& p) override {
    Op("sync", p);
    FileSystemWrapper::SyncFile(p);
  }

 private:
  struct File final : io::WritableFileWrapper {
    File(std::unique_ptr<io::WritableFile> f, FaultFs& fs, std::string p)
        : WritableFileWrapper(std::move(f)), fs(fs), path(std::move(p)) {}
    void Append(std::string_view data) override {
      fs.Op("append", path);
      if (fs.delay_.count() > 0) std::this_thread::sleep_for(fs.delay_);
      WritableFileWrapper::Append(data);
    }
    void Sync() override {
      fs.Op("fsync", path);
      WritableFileWrapper::Sync();
    }
    FaultFs& fs;
    std::string path;
  };
  void Op(const char* what, const std::string& path) {
    if (++ops_ == fail_at_) throw Error(std::string("injected failure: ") + what + " " + path);
  }
  const long fail_at_;
  const std::chrono::milliseconds delay_;
  std::atomic<long> ops_{0};
};

}  // namespace bitbyte::testing
