#include "sharding/plan.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/hash.h"
#include "tests/test_util.h"

namespace bitbyte::shard {
namespace {

using testing::TempDir;
using testing::WriteFile;

ScannedSource SourceOf(const std::string& path, uint32_t index) {
  const std::string bytes = testing::ReadFile(path);
  ScannedSource s;
  s.index = index;
  s.path = path;
  s.size = bytes.size();
  s.xxh64 = Xxh64(bytes);
  auto stamp = io::Posix().OpenReadable(path)->Stamp();
  s.docs.push_back(
      {std::make_shared<const input::DataFile>(input::DataFile{path, false, stamp}), 0, bytes.size(), Xxh64(bytes)});
  return s;
}

TEST(Params, InvalidValuesNameTheField) {
  Params p;
  p.frame_bytes = 100;
  EXPECT_THROW(ValidateParams(p), Error);
  p = Params();
  p.shard_bytes = p.frame_bytes * 3 / 2;
  try {
    ValidateParams(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shard size"), std::string::npos);
  }
  p = Params();
  p.level = 0;
  EXPECT_THROW(ValidateParams(p), Error);
  p = Params();
  p.val_fraction = 1.0;
  EXPECT_THROW(ValidateParams(p), Error);
  EXPECT_NO_THROW(ValidateParams(Params()));
}

TEST(Route, FractionOfRandomHashesMatchesValFraction) {
  std::mt19937_64 rng(1);
  for (double f : {0.0, 0.01, 0.05, 0.3, 0.9}) {
    int val = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) val += RouteByHash(rng(), f) == Split::kVal;
    EXPECT_NEAR(static_cast<double>(val) / n, f, 0.005) << f;
  }
}

// Stability: adding documents never moves an existing document to the other split.
TEST(Plan, SplitIsStableWhenDocumentsAreAdded) {
  TempDir t;
  std::mt19937_64 rng(5);
  Params p;
  p.val_fraction = 0.3;
  std::vector<std::string> files;
  for (int i = 0; i < 60; ++i) {
    files.push_back(t / ("d" + std::to_string(i)));
    WriteFile(files.back(), testing::RandomBytes(rng, 1 + rng() % 50));
  }
  auto route_all = [&](size_t count) {
    DatasetPlan plan(p);
    for (size_t i = 0; i < count; ++i) plan.AddSource(SourceOf(files[i], static_cast<uint32_t>(i)));
    plan.Finish();
    std::map<uint64_t, Split> by_hash;
    for (const auto& d : plan.docs()) by_hash[d.ref.xxh64] = d.split;
    return by_hash;
  };
  const auto small = route_all(30), large = route_all(60);
  for (const auto& [h, s] : small) EXPECT_EQ(large.at(h), s);
}

TEST(Plan, OneDocumentGetsATailValidationSlice) {
  TempDir t;
  const std::string text(1000, 'x');
  WriteFile(t / "one", text + "tail-part!");
  for (double f : {0.0, 0.01, 0.5}) {
    Params p;
    p.val_fraction = f;
    DatasetPlan plan(p);
    plan.AddSource(SourceOf(t / "one", 0));
    plan.Finish();
    EXPECT_TRUE(plan.tail_fallback());
    ASSERT_EQ(plan.docs().size(), 2u);
    EXPECT_EQ(plan.docs()[0].split, Split::kTrain);
    EXPECT_EQ(plan.docs()[1].split, Split::kVal);
    const uint64_t total = plan.split_bytes(Split::kTrain) + plan.split_bytes(Split::kVal);
    EXPECT_EQ(total, 1010u);
    EXPECT_GE(plan.split_bytes(Split::kVal), 1u);
    std::string val(plan.split_bytes(Split::kVal), '\0');
    plan.ReadRange(Split::kVal, 0, val.size(), val.data());
    EXPECT_EQ(val, (text + "tail-part!").substr(1010 - val.size()));
    EXPECT_EQ(plan.docs()[1].ref.xxh64, Xxh64(val));
  }
}

// An input modified after the scan (same size, new bytes) is refused when read for writing,
// never packed into shards whose fingerprints describe the old bytes.
TEST(Plan, InputChangedAfterTheScanIsAnError) {
  TempDir t;
  WriteFile(t / "a", std::string(5000, 'a'));
  DatasetPlan plan{Params()};
  plan.AddSource(SourceOf(t / "a", 0));
  plan.Finish();
  std::string buf(100, '\0');
  EXPECT_NO_THROW(plan.ReadRange(Split::kTrain, 0, buf.size(), buf.data()));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // past the clock tick of mtime
  WriteFile(t / "a", std::string(5000, 'b'));
  try {
    plan.ReadRange(Split::kTrain, 0, buf.size(), buf.data());
    FAIL() << "changed input accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("changed while sharding"), std::string::npos) << e.what();
  }
}

TEST(Plan, EmptyAndTinyCorporaAreErrors) {
  TempDir t;
  WriteFile(t / "empty", "");
  WriteFile(t / "one", "x");
  DatasetPlan a{Params()};
  a.AddSource(SourceOf(t / "empty", 0));
  EXPECT_THROW(a.Finish(), Error);
  DatasetPlan b{Params()};
  EXPECT_THROW(b.Finish(), Error);
  DatasetPlan c{Params()};
  c.AddSource(SourceOf(t / "one", 0));
  EXPECT_THROW(c.Finish(), Error);
  // A 1-byte last document: the fallback cuts the last document that has 2 bytes or more.
  WriteFile(t / "long", std::string(25, 'a'));
  Params p;
  p.val_fraction = 0.0;
  DatasetPlan d{p};
  d.AddSource(SourceOf(t / "long", 0));
  d.AddSource(SourceOf(t / "one", 1));
  d.AddSource(SourceOf(t / "empty", 2));
  ASSERT_NO_THROW(d.Finish());
  EXPECT_EQ(d.split_bytes(Split::kTrain) + d.split_bytes(Split::kVal), 26u);
  EXPECT_EQ(d.split_bytes(Split::kVal), 2u);  // ceil(25 * 0.05)
  // Offsets follow input order in each split, also for the empty document after the cut.
  uint64_t next[2] = {0, 0};
  for (const auto& doc : d.docs()) {
    EXPECT_EQ(doc.split_offset, next[static_cast<int>(doc.split)]);
    next[static_cast<int>(doc.split)] += doc.ref.length;
  }
}

// Shards cover each split exactly, frames fit shards, fingerprints differ when content differs.
TEST(Plan, ShardsTileTheSplits) {
  TempDir t;
  std::mt19937_64 rng(9);
  for (int round = 0; round < 20; ++round) {
    Params p;
    p.frame_bytes = 1024;
    p.shard_bytes = 1024 * (1 + rng() % 4);
    p.val_fraction = 0.2;
    DatasetPlan plan(p);
    const int docs = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < docs; ++i) {
      const std::string f = t / ("r" + std::to_string(round) + "_" + std::to_string(i));
      WriteFile(f, testing::RandomBytes(rng, rng() % 5000));
      plan.AddSource(SourceOf(f, static_cast<uint32_t>(i)));
    }
    if (plan.total_bytes() < 2) continue;
    plan.Finish();
    uint64_t covered[2] = {0, 0};
    std::set<std::string> names;
    for (const ShardPlan& sp : plan.shards()) {
      const int s = static_cast<int>(sp.split);
      EXPECT_EQ(sp.raw_offset, covered[s]);
      EXPECT_LE(sp.raw_bytes, p.shard_bytes);
      EXPECT_EQ(sp.frames, (sp.raw_bytes + p.frame_bytes - 1) / p.frame_bytes);
      covered[s] += sp.raw_bytes;
      EXPECT_TRUE(names.insert(sp.name).second);
    }
    EXPECT_EQ(covered[0], plan.split_bytes(Split::kTrain));
    EXPECT_EQ(covered[1], plan.split_bytes(Split::kVal));
  }
}

}  // namespace
}  // namespace bitbyte::shard
