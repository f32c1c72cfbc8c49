// libFuzzer target: arbitrary bytes as a shard file. The reader must either read every frame or
// throw bitbyte::Error; anything else (crash, sanitizer report, other exception) is a bug.
#include <cstring>
#include <string>

#include "base/error.h"
#include "sharding/shard_file.h"

namespace {

class MemoryFile : public bitbyte::io::ReadableFile {
 public:
  explicit MemoryFile(std::string data) : data_(std::move(data)) {}
  void ReadAt(uint64_t offset, size_t n, char* out) const override {
    if (offset > data_.size() || n > data_.size() - offset) throw bitbyte::DataError("short read");
    std::memcpy(out, data_.data() + offset, n);
  }
  uint64_t Size() const override { return data_.size(); }
  const std::string& Path() const override { return path_; }
  bitbyte::io::FileStamp Stamp() const override { return {}; }

 private:
  std::string data_;
  std::string path_ = "<fuzz>";
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MemoryFile f(std::string(reinterpret_cast<const char*>(data), size));
  try {
    bitbyte::shard::ShardIndex idx = bitbyte::shard::ReadShardIndex(f);
    std::string out;
    for (size_t i = 0; i < idx.frames.size(); ++i) bitbyte::shard::ReadFrame(f, idx, i, out);
  } catch (const bitbyte::Error&) {
  }
  return 0;
}
