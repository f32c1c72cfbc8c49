#pragma once
// One error type for all of bitbyte. Its message names what failed and where (file, field,
// offset); its code says what kind of failure it is, and that alone decides the exit code
// (ExitCode below; the table is in the README), whether it is thrown on the main thread or
// inside a graph node (pipeline::NodeError keeps the node's error as its cause).
#include <exception>
#include <stdexcept>
#include <string>

namespace bitbyte {

enum class ErrorCode {
  kIo,           // the job failed while running: I/O (disk full, permission, a directory another job
                 // holds), out of memory, a tool it needs is missing, a training that diverged
  kUsage,        // the command line, an option or a config value is wrong: nothing was done
  kData,         // an input is damaged or not what it claims (dataset, manifest, checkpoint, record)
  kInternal,     // a broken contract inside bitbyte: a bug, to be reported
  kInterrupted,  // stopped by SIGINT or SIGTERM before the job was done
};

// The process exit code of each kind: 1, 2, 3, 70 (sysexits' EX_SOFTWARE), 130 (128 + SIGINT).
constexpr int ExitCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUsage: return 2;
    case ErrorCode::kData: return 3;
    case ErrorCode::kInternal: return 70;
    case ErrorCode::kInterrupted: return 130;
    case ErrorCode::kIo: break;
  }
  return 1;
}

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ErrorCode code = ErrorCode::kIo)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// The kinds as types, for throwing and catching by kind.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message, ErrorCode::kUsage) {}
};
class DataError : public Error {
 public:
  explicit DataError(const std::string& message) : Error(message, ErrorCode::kData) {}
};
class InternalError : public Error {
 public:
  explicit InternalError(const std::string& message) : Error(message, ErrorCode::kInternal) {}
};
class InterruptedError : public Error {
 public:
  explicit InterruptedError(const std::string& message) : Error(message, ErrorCode::kInterrupted) {}
};

// The kind of any exception: an Error's code; std::bad_alloc and exceptions from libraries that
// bitbyte did not classify are kIo (the run failed); a null pointer is kInternal.
ErrorCode CodeOf(const std::exception_ptr& e);

// "path: strerror(errno)" with a verb, e.g. ErrnoMessage("write", path, errno).
std::string ErrnoMessage(const std::string& what, const std::string& path, int err);

}  // namespace bitbyte
