// metrics.jsonl's writer (base/append_log.h) when the disk fills: the error is the one of the
// write that failed (issue 14, D9: it used to read a stale errno after a short write and say
// "Success"), and the file is cut back to its last whole line.
#include "base/append_log.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include "tests/test_util.h"

namespace bitbyte::io {
namespace {

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ErrorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A file size limit (RLIMIT_FSIZE) makes write(2) short, then fail with EFBIG: a short write that
// a full disk also gives (then ENOSPC). Restores the limit and SIGXFSZ on the way out.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);  // else the failing write kills the process
    getrlimit(RLIMIT_FSIZE, &old_);
    rlimit r = old_;
    r.rlim_cur = bytes;
    ok_ = setrlimit(RLIMIT_FSIZE, &r) == 0;
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
  bool ok_ = false;
};

TEST(AppendLog, ShortWriteThenFailureReportsThatErrorAndCutsThePartialLineOff) {
  testing::TempDir t;
  const std::string path = t / "metrics.jsonl";
  const std::string first = "{\"step\":1,\"loss\":5.5}\n";
  const std::string second = "{\"step\":2,\"loss\":5.25,\"padding\":\"" + std::string(200, 'x') + "\"}\n";
  std::string error;
  {
    AppendLog log(path);
    log.Append(first);
    FileSizeLimit limit(first.size() + 50);  // room for 50 bytes of the second record
    ASSERT_TRUE(limit.ok()) << "setrlimit(RLIMIT_FSIZE) failed";
    errno = 0;  // what a stale errno would say: "Success"
    error = ErrorOf([&] { log.Append(second); });
  }
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find(std::strerror(EFBIG)), std::string::npos) << error;
  EXPECT_EQ(error.find("Success"), std::string::npos) << error;
  EXPECT_NE(error.find("after 50 of " + std::to_string(second.size()) + " bytes"), std::string::npos) << error;
  EXPECT_EQ(Contents(path), first);  // no partial line left behind
  // Room again: the next record lands right after the last whole one.
  {
    AppendLog log(path);
    log.Append(second);
  }
  EXPECT_EQ(Contents(path), first + second);
}

TEST(AppendLog, DiskFullReportsNoSpace) {
  // /dev/full: every write fails with ENOSPC.
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full";
  AppendLog log("/dev/full");
  errno = 0;
  const std::string error = ErrorOf([&] { log.Append("{\"step\":1}\n"); });
  EXPECT_NE(error.find("/dev/full"), std::string::npos) << error;
  EXPECT_NE(error.find(std::strerror(ENOSPC)), std::string::npos) << error;
}

TEST(AppendLog, OpenErrorNamesTheFile) {
  const std::string error = ErrorOf([] { AppendLog log("/nonexistent-dir/metrics.jsonl"); });
  EXPECT_NE(error.find("/nonexistent-dir/metrics.jsonl"), std::string::npos) << error;
}

}  // namespace
}  // namespace bitbyte::io
