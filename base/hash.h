#pragma once
// XXH64 (seed 0) everywhere in the format; see docs/shard-format.md.
#define XXH_STATIC_LINKING_ONLY  // XXH64_state_t on the stack
#include <xxhash.h>

#include <cstdint>
#include <string_view>

namespace bitbyte {

inline uint64_t Xxh64(std::string_view data, uint64_t seed = 0) { return XXH64(data.data(), data.size(), seed); }

class Xxh64Stream {
 public:
  Xxh64Stream() { XXH64_reset(&state_, 0); }
  void Update(std::string_view data) { XXH64_update(&state_, data.data(), data.size()); }
  template <typename T>
  void UpdatePod(const T& v) {  // little-endian machines only (checked at build time)
    XXH64_update(&state_, &v, sizeof(T));
  }
  uint64_t Digest() const { return XXH64_digest(&state_); }

 private:
  XXH64_state_t state_;
};

}  // namespace bitbyte
