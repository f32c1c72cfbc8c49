// Error kinds and exit codes (README "Exit codes"): one code per kind, distinct, and CodeOf gives
// the kind of anything a command can throw.
#include "base/error.h"

#include <gtest/gtest.h>

#include <new>
#include <set>
#include <stdexcept>

namespace bitbyte {
namespace {

template <typename E>
ErrorCode KindOf(const E& e) {
  try {
    throw e;
  } catch (...) {
    return CodeOf(std::current_exception());
  }
}

TEST(Error, EveryKindHasItsOwnExitCode) {
  const ErrorCode all[] = {ErrorCode::kIo, ErrorCode::kUsage, ErrorCode::kData, ErrorCode::kInternal,
                           ErrorCode::kInterrupted};
  std::set<int> codes;
  for (ErrorCode c : all) {
    const int exit = ExitCode(c);
    EXPECT_GT(exit, 0);  // never "success"
    EXPECT_LT(exit, 256);
    codes.insert(exit);
  }
  EXPECT_EQ(codes.size(), std::size(all));
  // The README's table.
  EXPECT_EQ(ExitCode(ErrorCode::kIo), 1);
  EXPECT_EQ(ExitCode(ErrorCode::kUsage), 2);
  EXPECT_EQ(ExitCode(ErrorCode::kData), 3);
  EXPECT_EQ(ExitCode(ErrorCode::kInternal), 70);
  EXPECT_EQ(ExitCode(ErrorCode::kInterrupted), 130);
}

TEST(Error, CodeOfEveryKindOfException) {
  EXPECT_EQ(KindOf(Error("cannot write")), ErrorCode::kIo);
  EXPECT_EQ(KindOf(Error("as told", ErrorCode::kData)), ErrorCode::kData);
  EXPECT_EQ(KindOf(UsageError("--threads")), ErrorCode::kUsage);
  EXPECT_EQ(KindOf(DataError("checksum")), ErrorCode::kData);
  EXPECT_EQ(KindOf(InternalError("contract")), ErrorCode::kInternal);
  EXPECT_EQ(KindOf(InterruptedError("signal")), ErrorCode::kInterrupted);
  EXPECT_EQ(KindOf(std::bad_alloc()), ErrorCode::kIo);
  EXPECT_EQ(KindOf(std::invalid_argument("a library's")), ErrorCode::kIo);
  EXPECT_EQ(KindOf(42), ErrorCode::kIo);
  EXPECT_EQ(CodeOf(nullptr), ErrorCode::kInternal);
  // The kinds are Errors, caught as such, with their message.
  try {
    throw DataError("x.pb: bad");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kData);
    EXPECT_STREQ(e.what(), "x.pb: bad");
  }
}

}  // namespace
}  // namespace bitbyte
