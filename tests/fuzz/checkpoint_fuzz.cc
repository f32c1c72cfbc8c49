// libFuzzer target: arbitrary bytes as a checkpoint directory. The input is cut into COMMIT,
// meta.pb and tensors.bin (two length bytes say where); ReadCheckpoint must return a snapshot
// whose tensors lie inside tensors.bin, or throw bitbyte::DataError, never anything else.
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "nodes/checkpoint.h"
#include "sharding/error.h"
#include "sharding/file_io.h"

namespace {

const std::string& Dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/bitbyte-ckpt-fuzz-XXXXXX";
    return std::string(::mkdtemp(tmpl));
  }();
  return dir;
}

void Put(const std::string& name, std::string_view bytes) {
  auto f = bitbyte::io::Posix().NewWritableFile(Dir() + "/" + name);
  f->Append(bytes);
  f->Close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  const size_t a = std::min<size_t>(in.size(), data[0] * 4u), b = std::min<size_t>(in.size() - a, data[1] * 16u);
  Put("COMMIT", in.substr(0, a));
  Put("meta.pb", in.substr(a, b));
  Put("tensors.bin", in.substr(a + b));
  try {
    const bitbyte::train::Snapshot s = bitbyte::train::ReadCheckpoint(bitbyte::io::Posix(), Dir());
    size_t total = 0;
    for (const auto& t : s.tensors) total += t.data.size();
    if (total > in.size()) std::abort();
  } catch (const bitbyte::DataError&) {
  }
  return 0;
}
