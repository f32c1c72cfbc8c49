// libFuzzer target: arbitrary bytes as a checkpoint directory. The input is cut into COMMIT,
// meta.pb and tensors.bin: two 16-bit little-endian sizes (of COMMIT, of meta.pb) and then the
// three files' bytes (fuzz_seeds writes real checkpoints this way). ReadCheckpoint must return a
// snapshot whose tensors lie inside tensors.bin, or throw bitbyte::DataError, never anything else.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "base/file_io.h"
#include "tests/fuzz/fuzz_dir.h"
#include "train/checkpoint.h"

namespace {

const bitbyte::fuzz::FuzzDir& Scratch() {
  static const bitbyte::fuzz::FuzzDir dir("bitbyte-ckpt-fuzz", {"COMMIT", "meta.pb", "tensors.bin"});
  return dir;
}

const std::string& Dir() { return Scratch().path(); }

void Put(const std::string& name, std::string_view bytes) { Scratch().Put(name, bytes); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 4, size - 4);
  const size_t a = std::min<size_t>(in.size(), data[0] | data[1] << 8);
  const size_t b = std::min<size_t>(in.size() - a, data[2] | data[3] << 8);
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
