// libFuzzer target: arbitrary bytes as manifest.pb. ParseManifest must accept (and then every
// cross-field check holds) or throw bitbyte::DataError.
#include <string>

#include "base/error.h"
#include "sharding/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    bitbyte::shard::ParseManifest(std::string(reinterpret_cast<const char*>(data), size), "<fuzz>");
  } catch (const bitbyte::DataError&) {
  }
  return 0;
}
