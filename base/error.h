#pragma once
// One error type for the sharding library: the message names what failed and where
// (file, field, offset). The CLI catches it once and turns it into a message and exit code.
#include <stdexcept>
#include <string>

namespace bitbyte {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Errors about the data itself (corrupt or invalid files): `verify` exits with a distinct code.
class DataError : public Error {
 public:
  using Error::Error;
};

// "path: strerror(errno)" with a verb, e.g. ErrnoMessage("write", path, errno).
std::string ErrnoMessage(const std::string& what, const std::string& path, int err);

}  // namespace bitbyte
