#include "sharding/shard_job.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <random>

#include "base/error.h"
#include "sharding/reader.h"
#include "tests/sharding/serial_writer.h"
#include "tests/test_util.h"

namespace bitbyte::shard {
namespace {

using testing::DirContents;
using testing::MakeCorpus;
using testing::TempDir;
using testing::WriteFile;

ShardJobOptions Options(const std::string& in, const std::string& out, int threads) {
  ShardJobOptions o;
  o.inputs = {in};
  o.out_dir = out;
  o.threads = threads;
  o.params.frame_bytes = 1024;
  o.params.shard_bytes = 4096;
  o.params.val_fraction = 0.2;
  o.progress = pipeline::ProgressMode::kNone;
  return o;
}

// Property: for random corpora the graph's output is byte-identical to the serial reference
// and to itself at other thread counts, and reads back as the inputs.
TEST(ShardJob, MatchesSerialReferenceAtAnyThreadCount) {
  std::mt19937_64 rng(31);
  for (int round = 0; round < 6; ++round) {
    TempDir t;
    auto docs = MakeCorpus(rng, t / "in", 1 + static_cast<int>(rng() % 25), 9000);
    std::string expect;
    for (auto& d : docs) expect += d;
    if (expect.size() < 2) continue;
    ShardJobOptions o = Options(t / "in", t / "ref", 1);
    testing::WriteDatasetSerial(o.inputs, t / "ref", o.params);
    const auto ref = DirContents(t / "ref");
    for (int threads : {1, 2, 4}) {
      const std::string out = t / ("t" + std::to_string(threads));
      ShardJobResult r = RunShardJob(Options(t / "in", out, threads));
      EXPECT_EQ(r.train_bytes + r.val_bytes, expect.size());
      EXPECT_EQ(DirContents(out), ref) << "threads " << threads;
    }
    EXPECT_EQ(testing::ReadAllDocuments(t / "t2"), expect);
    EXPECT_NO_THROW(shard::Verify(t / "t2"));
  }
}

TEST(ShardJob, RerunIsIdempotentAndReusesShards) {
  std::mt19937_64 rng(32);
  TempDir t;
  MakeCorpus(rng, t / "in", 10, 6000);
  ShardJobResult first = RunShardJob(Options(t / "in", t / "ds", 2));
  const auto before = DirContents(t / "ds");
  ShardJobResult second = RunShardJob(Options(t / "in", t / "ds", 2));
  EXPECT_EQ(DirContents(t / "ds"), before);
  EXPECT_EQ(second.shards_written, 0u);
  EXPECT_EQ(second.shards_reused, first.shards_written);
}

// An interrupted run leaves finished shards and no manifest; a damaged leftover shard is rebuilt.
TEST(ShardJob, ResumesFromPartialOutput) {
  std::mt19937_64 rng(33);
  TempDir t;
  MakeCorpus(rng, t / "in", 12, 8000);
  RunShardJob(Options(t / "in", t / "ds", 2));
  const auto complete = DirContents(t / "ds");
  ASSERT_GE(complete.size(), 4u);
  // Simulate the state after a kill: no manifest, one shard missing, one half-written temp file,
  // one shard damaged in place.
  io::Posix().Remove(t / "ds/manifest.pb");
  io::Posix().Remove(t / ("ds/" + complete[0].first));
  WriteFile(t / ("ds/" + complete[0].first + ".tmp"), complete[0].second.substr(0, 100));
  std::string damaged = complete[1].second;
  damaged[damaged.size() / 2] ^= 1;
  WriteFile(t / ("ds/" + complete[1].first), damaged);
  ShardJobResult r = RunShardJob(Options(t / "in", t / "ds", 2));
  EXPECT_EQ(DirContents(t / "ds"), complete);
  EXPECT_GT(r.shards_reused, 0u);
  EXPECT_NO_THROW(shard::Verify(t / "ds"));
}

TEST(ShardJob, RefusesADifferentDatasetUnlessOverwrite) {
  std::mt19937_64 rng(34);
  TempDir t;
  MakeCorpus(rng, t / "a", 5, 5000);
  MakeCorpus(rng, t / "b", 5, 5000);
  RunShardJob(Options(t / "a", t / "ds", 2));
  const auto a = DirContents(t / "ds");
  try {
    RunShardJob(Options(t / "b", t / "ds", 2));
    FAIL() << "different dataset accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different dataset"), std::string::npos) << e.what();
  }
  EXPECT_EQ(DirContents(t / "ds"), a);  // refused before anything was touched
  ShardJobOptions params_changed = Options(t / "a", t / "ds", 2);
  params_changed.params.level = 5;
  EXPECT_THROW(RunShardJob(params_changed), Error);
  ShardJobOptions o = Options(t / "b", t / "ds", 2);
  o.overwrite = true;
  RunShardJob(o);
  ShardJobOptions ref = Options(t / "b", t / "ref", 2);
  RunShardJob(ref);
  EXPECT_EQ(DirContents(t / "ds"), DirContents(t / "ref"));  // old shards removed
}

TEST(ShardJob, RefusesAForeignDirectory) {
  std::mt19937_64 rng(35);
  TempDir t;
  MakeCorpus(rng, t / "in", 3, 3000);
  io::Posix().CreateDirs(t / "ds");
  WriteFile(t / "ds/notes.txt", "mine");
  EXPECT_THROW(RunShardJob(Options(t / "in", t / "ds", 1)), Error);
  ShardJobOptions o = Options(t / "in", t / "ds", 1);
  o.overwrite = true;
  RunShardJob(o);
  EXPECT_EQ(testing::ReadFile(t / "ds/notes.txt"), "mine");  // never deletes what is not ours
}

TEST(ShardJob, DocumentLargerThanAShardAndEmptyDocuments) {
  TempDir t;
  std::mt19937_64 rng(36);
  io::Posix().CreateDirs(t / "in");
  const std::string big = testing::RandomBytes(rng, 4096 * 5 + 123);
  WriteFile(t / "in/a_empty", "");
  WriteFile(t / "in/b_big", big);
  WriteFile(t / "in/c_empty", "");
  RunShardJob(Options(t / "in", t / "ds", 2));
  auto ds = shard::Dataset::Open(t / "ds");
  EXPECT_EQ(ds->manifest().empty_documents(), 2u);
  EXPECT_GE(ds->manifest().shards_size(), 5);
  EXPECT_EQ(testing::ReadAllDocuments(t / "ds"), big);
}

TEST(ShardJob, EmptyCorpusAndMissingInputAreErrors) {
  TempDir t;
  io::Posix().CreateDirs(t / "in");
  WriteFile(t / "in/a", "");
  EXPECT_THROW(RunShardJob(Options(t / "in", t / "ds", 1)), Error);
  EXPECT_THROW(RunShardJob(Options(t / "nope", t / "ds2", 1)), Error);
  io::Posix().CreateDirs(t / "none");
  EXPECT_THROW(RunShardJob(Options(t / "none", t / "ds3", 1)), Error);
}

// A file system that fails with ENOSPC once a budget of written bytes is spent.
class FullDisk : public io::FileSystemWrapper {
 public:
  explicit FullDisk(uint64_t budget) : budget_(budget) {}
  std::unique_ptr<io::WritableFile> NewWritableFile(const std::string& path) override {
    struct File : io::WritableFileWrapper {
      File(std::unique_ptr<io::WritableFile> f, FullDisk& d, std::string p)
          : WritableFileWrapper(std::move(f)), disk(d), path(std::move(p)) {}
      void Append(std::string_view data) override {
        if (disk.used_ + data.size() > disk.budget_) throw Error(ErrnoMessage("write", path, ENOSPC));
        disk.used_ += data.size();
        WritableFileWrapper::Append(data);
      }
      FullDisk& disk;
      std::string path;
    };
    return std::make_unique<File>(FileSystemWrapper::NewWritableFile(path), *this, path);
  }

 private:
  uint64_t budget_, used_ = 0;
};

// Disk full at any point: a clear error, the previous dataset intact and verifiable, and a
// later run with space completes it to the same bytes as an undisturbed run.
TEST(ShardJob, FullDiskLeavesThePreviousManifestIntact) {
  std::mt19937_64 rng(37);
  TempDir t;
  MakeCorpus(rng, t / "old", 4, 4000);
  MakeCorpus(rng, t / "new", 10, 8000);
  ShardJobOptions ref = Options(t / "new", t / "ref", 2);
  RunShardJob(ref);
  uint64_t total = 0;
  for (const auto& [name, bytes] : DirContents(t / "ref")) total += bytes.size();
  for (uint64_t budget : {uint64_t{0}, uint64_t{100}, total / 3, total / 2, total - 10}) {
    const std::string ds = t / ("ds" + std::to_string(budget));
    RunShardJob(Options(t / "old", ds, 2));
    const auto old = testing::ReadAllDocuments(ds);
    FullDisk disk(budget);
    ShardJobOptions o = Options(t / "new", ds, 2);
    o.overwrite = true;
    try {
      RunShardJob(o, disk);
      FAIL() << "budget " << budget << " did not fail";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("No space left"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(shard::Verify(ds)) << budget;
    EXPECT_EQ(testing::ReadAllDocuments(ds), old);
    RunShardJob(o);
    EXPECT_EQ(DirContents(ds), DirContents(t / "ref"));
  }
}

TEST(ShardJob, OneJobPerOutputDirectory) {
  std::mt19937_64 rng(38);
  TempDir t;
  MakeCorpus(rng, t / "in", 3, 3000);
  io::Posix().CreateDirs(t / "ds");
  const int fd = ::open((t / "ds").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  try {
    RunShardJob(Options(t / "in", t / "ds", 1));
    FAIL() << "second job accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another bitbyte job"), std::string::npos) << e.what();
  }
  ::close(fd);
  EXPECT_NO_THROW(RunShardJob(Options(t / "in", t / "ds", 1)));
}

// Disk full while spooling (JSONL texts go to a spool file first): the same clean failure.
TEST(ShardJob, FullDiskWhileSpooling) {
  TempDir t;
  std::string jsonl;
  for (int i = 0; i < 200; ++i) jsonl += "{\"text\": \"record " + std::to_string(i) + " of the corpus\"}\n";
  WriteFile(t / "a.jsonl", jsonl);
  ShardJobOptions o = Options(t / "a.jsonl", t / "ds", 2);
  o.params.jsonl_field = "text";
  FullDisk disk(500);
  try {
    RunShardJob(o, disk);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("No space left"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("docs-"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(io::Posix().Exists(t / "ds/manifest.pb"));
  EXPECT_FALSE(io::Posix().Exists(t / "ds/.bitbyte-tmp"));  // spool removed on failure
  RunShardJob(o);
  EXPECT_NO_THROW(shard::Verify(t / "ds"));
}

TEST(ShardJob, JsonlRecordsAreDocuments) {
  TempDir t;
  WriteFile(t / "a.jsonl", "{\"text\":\"alpha \"}\n{\"text\":\"beta\\n\"}\n{\"text\":\"gamma\"}\n");
  ShardJobOptions o = Options(t / "a.jsonl", t / "ds", 2);
  o.params.jsonl_field = "text";
  ShardJobResult r = RunShardJob(o);
  auto ds = shard::Dataset::Open(t / "ds");
  // Three records; when hashing routes all of them to one split, the last is cut in two.
  EXPECT_EQ(r.documents, 3u + (ds->manifest().val_tail_fallback() ? 1 : 0));
  EXPECT_EQ(ds->manifest().sources(0).documents(), r.documents);
  EXPECT_EQ(testing::ReadAllDocuments(t / "ds"), "alpha beta\ngamma");
}

}  // namespace
}  // namespace bitbyte::shard
