#include "sharding/reader.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "base/error.h"
#include "tests/sharding/serial_writer.h"
#include "tests/test_util.h"

namespace bitbyte::shard {
namespace {

using testing::TempDir;
using testing::WriteFile;

Params SmallParams(std::mt19937_64& rng) {
  Params p;
  p.frame_bytes = 1024;
  p.shard_bytes = 1024 * (1 + rng() % 3);
  p.val_fraction = 0.25;
  return p;
}

// Round trip: every document reads back exactly; split streams are the documents in order.
TEST(Dataset, RoundTripAndRandomAccessAgainstReference) {
  std::mt19937_64 rng(21);
  for (int round = 0; round < 15; ++round) {
    TempDir t;
    std::vector<std::string> docs = testing::MakeCorpus(rng, t / "in", 1 + static_cast<int>(rng() % 10), 4000);
    const Params p = SmallParams(rng);
    size_t total = 0;
    for (auto& d : docs) total += d.size();
    if (total < 2) continue;
    testing::WriteDatasetSerial({t / "in"}, t / "ds", p);
    auto ds = Dataset::Open(t / "ds");
    const auto& m = ds->manifest();
    ASSERT_EQ(m.documents_size(), static_cast<int>(docs.size()) + (m.val_tail_fallback() ? 1 : 0));
    std::string reference[2];
    std::string all;
    for (const auto& d : m.documents()) {
      std::string bytes = ds->Read(static_cast<Split>(d.split()), d.offset(), d.length());
      reference[d.split()] += bytes;
      all += bytes;
    }
    std::string expect_all;
    for (auto& d : docs) expect_all += d;
    EXPECT_EQ(all, expect_all);  // input order, byte-exact
    for (int s = 0; s < 2; ++s) {
      ASSERT_EQ(ds->SplitBytes(static_cast<Split>(s)), reference[s].size());
      std::string streamed;
      ds->ForEachFrame(static_cast<Split>(s), [&](std::string_view f) { streamed.append(f); });
      EXPECT_EQ(streamed, reference[s]);
      for (int k = 0; k < 50 && !reference[s].empty(); ++k) {
        const uint64_t off = rng() % reference[s].size();
        const size_t n = static_cast<size_t>(rng() % (reference[s].size() - off + 1));
        EXPECT_EQ(ds->Read(static_cast<Split>(s), off, n), reference[s].substr(off, n));
      }
    }
    EXPECT_NO_THROW(Verify(t / "ds"));
  }
}

TEST(Dataset, ConcurrentReadersAgree) {
  std::mt19937_64 rng(22);
  TempDir t;
  std::vector<std::string> docs = testing::MakeCorpus(rng, t / "in", 8, 20000);
  Params p;
  p.frame_bytes = 2048;
  p.shard_bytes = 8192;
  testing::WriteDatasetSerial({t / "in"}, t / "ds", p);
  auto ds = Dataset::Open(t / "ds");
  const std::string train = ds->Read(Split::kTrain, 0, ds->SplitBytes(Split::kTrain));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      std::mt19937_64 r(100 + k);
      for (int i = 0; i < 500; ++i) {
        const uint64_t off = r() % train.size();
        const size_t n = static_cast<size_t>(r() % std::min<uint64_t>(5000, train.size() - off));
        if (ds->Read(Split::kTrain, off, n) != train.substr(off, n)) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Dataset, OutOfRangeReadIsAnError) {
  std::mt19937_64 rng(23);
  TempDir t;
  testing::MakeCorpus(rng, t / "in", 3, 3000);
  testing::WriteDatasetSerial({t / "in"}, t / "ds", Params());
  auto ds = Dataset::Open(t / "ds");
  EXPECT_THROW(ds->Read(Split::kVal, ds->SplitBytes(Split::kVal), 1), Error);
  EXPECT_THROW(ds->Read(Split::kTrain, 0, ds->SplitBytes(Split::kTrain) + 1), Error);
}

// Damage of any kind: verify and the reader fail with a DataError naming the file.
TEST(Verify, DetectsTruncatedShardFlippedByteAndBadManifest) {
  std::mt19937_64 rng(24);
  TempDir t;
  testing::MakeCorpus(rng, t / "in", 6, 6000);
  Params p;
  p.frame_bytes = 1024;
  p.shard_bytes = 4096;
  const pb::Manifest m = testing::WriteDatasetSerial({t / "in"}, t / "ds", p);
  const std::string shard_path = t / ("ds/" + m.shards(0).name());
  const std::string good_shard = testing::ReadFile(shard_path);
  const std::string manifest_path = t / "ds/manifest.pb";
  const std::string good_manifest = testing::ReadFile(manifest_path);
  ASSERT_NO_THROW(Verify(t / "ds"));

  auto expect_bad = [&](const std::string& needle) {
    try {
      Verify(t / "ds");
      ADD_FAILURE() << "verify passed, expected: " << needle;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  WriteFile(shard_path, good_shard.substr(0, good_shard.size() - 10));
  expect_bad(m.shards(0).name());
  EXPECT_THROW(Dataset::Open(t / "ds"), DataError);
  for (int k = 0; k < 40; ++k) {
    std::string bad = good_shard;
    bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    WriteFile(shard_path, bad);
    expect_bad(m.shards(0).name());
  }
  WriteFile(shard_path, good_shard);
  ASSERT_NO_THROW(Verify(t / "ds"));
  WriteFile(manifest_path, good_manifest.substr(0, good_manifest.size() / 2));
  expect_bad("manifest");
  WriteFile(manifest_path, "garbage that is not a protobuf at all \xff\xff\xff");
  expect_bad("manifest");
  // Bytes appended to a valid manifest (another params.level, say) fail its checksum.
  WriteFile(manifest_path, good_manifest + std::string("\x1a\x02\x18\x05", 4));
  expect_bad("checksum");
}

// Everything a reader can be handed by a hostile or broken disk, for every read path: opening
// and reading the split streams (the training reader), reading documents with their hashes
// checked (cat), and verify. Each gives a DataError or exactly the original bytes, never other
// bytes. And every change to the manifest, which has a checksum over all of it, is an error.
TEST(Dataset, EveryByteFlipAndTruncationIsAnErrorOrTheOriginalBytes) {
  std::mt19937_64 rng(31);
  TempDir t;
  testing::MakeCorpus(rng, t / "in", 3, 900);  // small: every variant runs every reader
  Params p;
  p.frame_bytes = 1024;
  p.shard_bytes = 1024;
  p.val_fraction = 0.3;
  const pb::Manifest m = testing::WriteDatasetSerial({t / "in"}, t / "ds", p);

  struct Contents {
    std::string splits[kNumSplits], documents;
  };
  auto read_all = [&] {  // each path opens the dataset anew, as each command does
    Contents c;
    {
      auto ds = Dataset::Open(t / "ds");
      for (int s = 0; s < kNumSplits; ++s)
        c.splits[s] = ds->Read(static_cast<Split>(s), 0, ds->SplitBytes(static_cast<Split>(s)));
    }
    auto ds = Dataset::Open(t / "ds");
    for (int i = 0; i < ds->manifest().documents_size(); ++i)
      ds->ReadDocument(i, [&](std::string_view chunk) { c.documents.append(chunk); });
    return c;
  };
  const Contents good = read_all();
  ASSERT_FALSE(good.splits[0].empty());
  ASSERT_FALSE(good.splits[1].empty());

  struct Outcome {
    int errors = 0, same = 0;
  };
  // Writes `bad` over `path`, runs every read path, and restores the file.
  auto attempt = [&](const std::string& path, const std::string& original, const std::string& bad, Outcome& o,
                     const std::string& what) {
    WriteFile(path, bad);
    bool verified = false;
    try {
      Verify(t / "ds");
      verified = true;
    } catch (const DataError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": verify threw a non-data error: " << e.what();
    }
    try {
      const Contents c = read_all();
      EXPECT_EQ(c.documents, good.documents) << what << ": documents read back differently with no error";
      EXPECT_EQ(c.splits[0], good.splits[0]) << what << ": train split read back differently with no error";
      EXPECT_EQ(c.splits[1], good.splits[1]) << what << ": val split read back differently with no error";
      ++o.same;
    } catch (const DataError&) {
      ++o.errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": a reader threw a non-data error: " << e.what();
    }
    (void)verified;
    WriteFile(path, original);
    return verified;
  };

  std::vector<std::string> files = {"manifest.pb"};
  for (const auto& sh : m.shards()) files.push_back(sh.name());
  ASSERT_GE(files.size(), 3u);
  for (const std::string& name : files) {
    const std::string path = t / ("ds/" + name);
    const std::string original = testing::ReadFile(path);
    const bool is_manifest = name == "manifest.pb";
    Outcome o;
    for (size_t pos = 0; pos < original.size(); ++pos) {
      std::string bad = original;
      bad[pos] = static_cast<char>(bad[pos] ^ static_cast<char>(1 + rng() % 255));
      const bool verified = attempt(path, original, bad, o, name + " flip at " + std::to_string(pos));
      EXPECT_FALSE(verified) << name << ": verify passed with byte " << pos << " changed";
    }
    for (size_t len = 0; len < original.size(); ++len) {
      const bool verified =
          attempt(path, original, original.substr(0, len), o, name + " cut to " + std::to_string(len));
      EXPECT_FALSE(verified) << name << ": verify passed cut to " << len << " bytes";
    }
    if (is_manifest) {
      EXPECT_EQ(o.same, 0) << "a changed manifest was read without an error";
    }
    EXPECT_GT(o.errors, 0);
  }
}

// A manifest rewritten with a valid checksum but other parameters than its dataset id was made
// from is refused: the id is recomputed from the parameters and sources.
TEST(Dataset, ParametersMustAgreeWithTheDatasetId) {
  std::mt19937_64 rng(32);
  TempDir t;
  testing::MakeCorpus(rng, t / "in", 3, 3000);
  const pb::Manifest m = testing::WriteDatasetSerial({t / "in"}, t / "ds", Params());
  auto refused = [&](const pb::Manifest& changed) {
    try {
      ParseManifest(SerializeManifest(changed), "m");
      return std::string();
    } catch (const DataError& e) {
      return std::string(e.what());
    }
  };
  EXPECT_EQ(refused(m), "");
  pb::Manifest c = m;
  c.mutable_params()->set_level(5);
  EXPECT_NE(refused(c).find("dataset_id"), std::string::npos);
  c = m;
  c.mutable_params()->set_val_fraction(0.5);
  EXPECT_NE(refused(c).find("dataset_id"), std::string::npos);
  c = m;
  c.mutable_sources(0)->set_size(m.sources(0).size() + 1);
  EXPECT_NE(refused(c).find("dataset_id"), std::string::npos);
  c = m;
  c.mutable_documents(0)->set_length(m.documents(0).length() + 1);
  EXPECT_NE(refused(c), "");
  c = m;
  c.set_format_version(1);
  EXPECT_NE(refused(c).find("format_version"), std::string::npos);
}

}  // namespace
}  // namespace bitbyte::shard
