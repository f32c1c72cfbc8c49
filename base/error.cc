#include "base/error.h"

#include <cstring>

namespace bitbyte {

ErrorCode CodeOf(const std::exception_ptr& e) {
  if (!e) return ErrorCode::kInternal;
  try {
    std::rethrow_exception(e);
  } catch (const Error& error) {
    return error.code();
  } catch (...) {
    return ErrorCode::kIo;
  }
}

std::string ErrnoMessage(const std::string& what, const std::string& path, int err) {
  return "cannot " + what + " '" + path + "': " + std::strerror(err);
}

}  // namespace bitbyte
