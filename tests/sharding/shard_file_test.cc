#include "sharding/shard_file.h"

#include <gtest/gtest.h>

#include <random>

#include "base/error.h"
#include "base/hash.h"
#include "tests/test_util.h"

namespace bitbyte::shard {
namespace {

using testing::TempDir;
using testing::WriteFile;

// Builds a shard file by hand from random frames; returns its bytes and the frames.
std::string BuildShard(std::mt19937_64& rng, std::vector<std::string>& frames) {
  std::string file = EncodeHeader();
  std::vector<FrameEntry> entries;
  Xxh64Stream raw_hash;
  uint64_t raw_bytes = 0;
  const int n = 1 + static_cast<int>(rng() % 5);
  for (int i = 0; i < n; ++i) {
    frames.push_back(testing::RandomBytes(rng, 1 + rng() % 5000));
    std::string c;
    CompressFrame(frames.back(), 3, c);
    entries.push_back({file.size(), static_cast<uint32_t>(c.size()), static_cast<uint32_t>(frames.back().size()),
                       Xxh64(frames.back())});
    raw_hash.Update(frames.back());
    raw_bytes += frames.back().size();
    file += c;
  }
  Footer f;
  f.index_offset = file.size();
  f.frame_count = entries.size();
  f.raw_bytes = raw_bytes;
  f.raw_xxh64 = raw_hash.Digest();
  f.fingerprint = rng();
  const std::string index = EncodeIndex(entries);
  f.index_xxh64 = Xxh64(index);
  f.split = 1;
  f.shard_index = 7;
  file += index;
  file += EncodeFooter(f);
  return file;
}

TEST(ShardFile, RoundTripRandomShards) {
  TempDir t;
  std::mt19937_64 rng(11);
  for (int round = 0; round < 30; ++round) {
    std::vector<std::string> frames;
    const std::string bytes = BuildShard(rng, frames);
    WriteFile(t / "s.bbs", bytes);
    auto f = io::Posix().OpenReadable(t / "s.bbs");
    ShardIndex idx = ReadShardIndex(*f);
    ASSERT_EQ(idx.frames.size(), frames.size());
    EXPECT_EQ(idx.footer.split, 1u);
    EXPECT_EQ(idx.footer.shard_index, 7u);
    std::string out;
    for (size_t i = 0; i < frames.size(); ++i) {
      ReadFrame(*f, idx, i, out);
      EXPECT_EQ(out, frames[i]);
    }
  }
}

// Property: any truncation is caught as DataError, never a crash. A flipped byte is caught, or
// (when it lands on bits zstd ignores) every frame still reads back exactly: a reader never
// returns wrong bytes. `verify` additionally checks each file's XXH64 (reader_test).
TEST(ShardFile, EveryTruncationAndFlipIsDetected) {
  TempDir t;
  std::mt19937_64 rng(12);
  std::vector<std::string> frames;
  const std::string good = BuildShard(rng, frames);
  auto read_all = [&](const std::string& bytes) {
    WriteFile(t / "bad.bbs", bytes);
    auto f = io::Posix().OpenReadable(t / "bad.bbs");
    ShardIndex idx = ReadShardIndex(*f);
    std::string out;
    std::vector<std::string> got;
    for (size_t i = 0; i < idx.frames.size(); ++i) {
      ReadFrame(*f, idx, i, out);
      got.push_back(out);
    }
    return got;
  };
  EXPECT_NO_THROW(read_all(good));
  for (size_t len = 0; len < good.size(); len += 1 + len / 8)
    EXPECT_THROW(read_all(good.substr(0, len)), DataError) << len;
  int caught = 0;
  for (size_t pos = 0; pos < good.size(); ++pos) {
    std::string bad = good;
    bad[pos] = static_cast<char>(bad[pos] ^ (1 + rng() % 255));
    try {
      EXPECT_EQ(read_all(bad), frames) << "flip at " << pos << " returned wrong bytes";
    } catch (const DataError&) {
      ++caught;
    }
  }
  EXPECT_GT(caught, static_cast<int>(good.size() * 9 / 10));
}

TEST(ShardFile, ErrorNamesFileAndOffset) {
  TempDir t;
  std::mt19937_64 rng(13);
  std::vector<std::string> frames;
  std::string bytes = BuildShard(rng, frames);
  bytes[kHeaderBytes + 3] ^= 0x40;  // inside the first frame
  WriteFile(t / "x.bbs", bytes);
  auto f = io::Posix().OpenReadable(t / "x.bbs");
  ShardIndex idx = ReadShardIndex(*f);
  std::string out;
  try {
    ReadFrame(*f, idx, 0, out);
    FAIL();
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(t / "x.bbs"), std::string::npos) << msg;
    EXPECT_NE(msg.find("frame 0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("offset 16"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace bitbyte::shard
