#pragma once
// A file system for tests: the real one, except that the N-th mutating operation (create,
// append, fsync, rename, directory sync) fails with an error, and every append can be slowed.
#include <chrono>
#include <thread>

#include "base/error.h"
#include "base/file_io.h"

namespace bitbyte::testing {

class FaultFs : public io::FileSystem {
 public:
  // fail_at 0: never fail. Counts every mutating operation in ops().
  explicit FaultFs(long fail_at = 0, std::chrono::milliseconds append_delay = std::chrono::milliseconds(0))
      : fail_at_(fail_at), delay_(append_delay) {}
  long ops() const { return ops_; }

  std::unique_ptr<io::WritableFile> NewWritableFile(const std::string& path) override {
    Op("create", path);
    struct File : io::WritableFile {
      File(std::unique_ptr<io::WritableFile> f, FaultFs& fs, std::string p) : inner(std::move(f)), fs(fs), path(std::move(p)) {}
      void Append(std::string_view data) override {
        fs.Op("append", path);
        if (fs.delay_.count() > 0) std::this_thread::sleep_for(fs.delay_);
        inner->Append(data);
      }
      void Sync() override {
        fs.Op("fsync", path);
        inner->Sync();
      }
      void Close() override { inner->Close(); }
      uint64_t Size() const override { return inner->Size(); }
      std::unique_ptr<io::WritableFile> inner;
      FaultFs& fs;
      std::string path;
    };
    return std::make_unique<File>(io::Posix().NewWritableFile(path), *this, path);
  }
  std::unique_ptr<io::ReadableFile> OpenReadable(const std::string& p) override { return io::Posix().OpenReadable(p); }
  void Rename(const std::string& a, const std::string& b) override {
    Op("rename", a);
    io::Posix().Rename(a, b);
  }
  void Remove(const std::string& p) override { io::Posix().Remove(p); }
  void SyncDir(const std::string& d) override {
    Op("sync dir", d);
    io::Posix().SyncDir(d);
  }
  void SyncFile(const std::string& p) override {
    Op("sync", p);
    io::Posix().SyncFile(p);
  }
  void CreateDirs(const std::string& d) override { io::Posix().CreateDirs(d); }
  bool Exists(const std::string& p) override { return io::Posix().Exists(p); }
  std::vector<std::string> ListDir(const std::string& d) override { return io::Posix().ListDir(d); }

 private:
  void Op(const char* what, const std::string& path) {
    if (++ops_ == fail_at_) throw Error(std::string("injected failure: ") + what + " " + path);
  }
  long fail_at_;
  std::chrono::milliseconds delay_;
  long ops_ = 0;
};

}  // namespace bitbyte::testing
