// Checkpoints: round trips, every corruption detected, atomicity under injected failures, and
// the sink's bounds (one in flight, one pending, newer replaces older), latest/best/keep.
#include "train/checkpoint.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "tests/test_util.h"
#include "tests/train/fault_fs.h"

namespace bitbyte::train {
namespace {

using testing::FaultFs;
using testing::TempDir;

Snapshot RandomSnapshot(std::mt19937_64& rng, int64_t step) {
  Snapshot s;
  s.step = step;
  s.config_text = "steps: " + std::to_string(rng() % 1000) + "\n";
  s.dataset_id = rng() % 4 ? rng() : 0;  // 0: not recorded (older checkpoints)
  const int n = 1 + static_cast<int>(rng() % 6);
  for (int i = 0; i < n; ++i) {
    TensorBlob t;
    t.name = "model/t" + std::to_string(i);
    t.dtype = i % 2 ? "Float" : "Long";
    t.shape = {static_cast<int64_t>(rng() % 5), static_cast<int64_t>(1 + rng() % 7)};
    t.data = testing::RandomBytes(rng, static_cast<size_t>(t.shape[0] * t.shape[1] * (i % 2 ? 4 : 8)));
    s.tensors.push_back(std::move(t));
  }
  s.blobs.emplace_back("rng/cpu", testing::RandomBytes(rng, 1 + rng() % 40));
  return s;
}

void ExpectSame(const Snapshot& a, const Snapshot& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.config_text, b.config_text);
  EXPECT_EQ(a.dataset_id, b.dataset_id);  // runs know their data (issue 14)
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].dtype, b.tensors[i].dtype);
    EXPECT_EQ(a.tensors[i].shape, b.tensors[i].shape);
    EXPECT_EQ(a.tensors[i].data, b.tensors[i].data);
  }
  EXPECT_EQ(a.blobs, b.blobs);
}

TEST(Checkpoint, RoundTripsRandomSnapshots) {
  std::mt19937_64 rng(11);
  TempDir t;
  for (int i = 0; i < 20; ++i) {
    const Snapshot s = RandomSnapshot(rng, i * 10);
    const std::string dir = WriteCheckpoint(io::Posix(), t / "ckpt", s);
    EXPECT_EQ(dir, t / ("ckpt/" + CheckpointName(i * 10)));
    ExpectSame(ReadCheckpoint(io::Posix(), dir), s);
  }
  EXPECT_EQ(ListCheckpoints(io::Posix(), t / "ckpt").size(), 20u);
}

// Any single changed byte or any truncation of any file: an error, or exactly the same snapshot
// (a byte the format does not depend on), never different contents.
TEST(Checkpoint, EveryByteFlipAndTruncationIsDetected) {
  std::mt19937_64 rng(12);
  TempDir t;
  const Snapshot s = RandomSnapshot(rng, 5);
  const std::string dir = WriteCheckpoint(io::Posix(), t / "ckpt", s);
  for (const char* file : {"COMMIT", "meta.pb", "tensors.bin"}) {
    const std::string path = dir + "/" + file;
    const std::string orig = testing::ReadFile(path);
    int errors = 0;
    for (size_t i = 0; i < orig.size(); ++i) {
      std::string bad = orig;
      bad[i] = static_cast<char>(bad[i] ^ (1 + rng() % 255));
      testing::WriteFile(path, bad);
      try {
        ExpectSame(ReadCheckpoint(io::Posix(), dir), s);
      } catch (const DataError&) {
        ++errors;
      }
    }
    std::vector<size_t> cuts = {orig.size() - 1};
    for (size_t len = 0; len + 1 < orig.size(); len += 1 + orig.size() / 50) cuts.push_back(len);
    for (size_t len : cuts) {
      testing::WriteFile(path, orig.substr(0, len));
      try {  // only a trailing newline of COMMIT may go unnoticed, and then nothing changed
        ExpectSame(ReadCheckpoint(io::Posix(), dir), s);
        EXPECT_EQ(len + 1, orig.size()) << file << " cut to " << len;
      } catch (const DataError&) {
      }
    }
    testing::WriteFile(path, orig);
    EXPECT_GT(errors, static_cast<int>(orig.size()) * 9 / 10) << file;
  }
  ::unlink((dir + "/COMMIT").c_str());
  EXPECT_THROW(ReadCheckpoint(io::Posix(), dir), DataError);
}

// A failure at any write, fsync or rename of a checkpoint leaves no listed partial checkpoint,
// keeps the previous one loadable, and the next sink cleans the leftovers.
TEST(Checkpoint, FailureAtEveryOperationKeepsThePreviousOne) {
  std::mt19937_64 rng(13);
  TempDir t;
  const Snapshot first = RandomSnapshot(rng, 10), second = RandomSnapshot(rng, 20);
  FaultFs counter;
  WriteCheckpoint(counter, t / "probe", second);
  ASSERT_GT(counter.ops(), 5);
  for (long n = 1; n <= counter.ops(); ++n) {
    const std::string ckpt = t / ("ckpt" + std::to_string(n));
    WriteCheckpoint(io::Posix(), ckpt, first);
    FaultFs fs(n);
    EXPECT_THROW(WriteCheckpoint(fs, ckpt, second), Error) << n;
    auto loaded = LoadNewestGood(io::Posix(), ckpt, {});
    ASSERT_TRUE(loaded.has_value());
    // Either the new one was complete before the failure (the last directory sync) or the old
    // one is what a resume gets.
    if (loaded->snapshot.step == 20)
      ExpectSame(loaded->snapshot, second);
    else
      ExpectSame(loaded->snapshot, first);
    { CheckpointSink sink(io::Posix(), ckpt, 5); }
    for (const std::string& name : io::Posix().ListDir(ckpt)) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << n;
  }
}

TEST(Checkpoint, ResumeSkipsDamagedCheckpointsWithAWarning) {
  std::mt19937_64 rng(14);
  TempDir t;
  for (int step : {10, 20, 30}) WriteCheckpoint(io::Posix(), t / "ckpt", RandomSnapshot(rng, step));
  std::string tensors = testing::ReadFile(t / "ckpt/step-000000030/tensors.bin");
  tensors[tensors.size() / 2] ^= 1;
  testing::WriteFile(t / "ckpt/step-000000030/tensors.bin", tensors);
  testing::WriteFile(t / "ckpt/step-000000020/meta.pb", "");
  std::vector<std::string> warnings;
  auto loaded = LoadNewestGood(io::Posix(), t / "ckpt", [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->snapshot.step, 10);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("step-000000030"), std::string::npos);
  EXPECT_NE(warnings[1].find("step-000000020"), std::string::npos);
}

TEST(CheckpointSink, SlowDiskNeverQueuesMoreThanOnePending) {
  std::mt19937_64 rng(15);
  TempDir t;
  FaultFs slow(0, std::chrono::milliseconds(30));
  const int submitted = 12;
  {
    CheckpointSink sink(slow, t / "ckpt", 100);
    for (int i = 1; i <= submitted; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, i)));
      EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(20)) << "Submit waited for the disk";
    }
    sink.Flush();
    const auto st = sink.stats();
    EXPECT_EQ(st.written + st.replaced, static_cast<uint64_t>(submitted));
    EXPECT_GT(st.replaced, 0u);
    EXPECT_LE(st.written, 3u);  // the first, maybe one more, and the last
  }
  const auto names = ListCheckpoints(io::Posix(), t / "ckpt");
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.back(), CheckpointName(submitted));  // the newest is never dropped
  EXPECT_EQ(testing::ReadFile(t / "ckpt/latest"), CheckpointName(submitted) + "\n");
}

// Snapshots can reach the sink out of order (tbb::flow does not keep order out of a node): the
// sink never replaces a newer snapshot, pending or written, with an older one.
TEST(CheckpointSink, NeverGoesBackToAnOlderStep) {
  std::mt19937_64 rng(18);
  TempDir t;
  FaultFs slow(0, std::chrono::milliseconds(20));
  {
    CheckpointSink sink(slow, t / "ckpt", 10);
    sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, 10)));
    sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, 30)));  // pending while 10 is written
    sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, 20)));  // older than pending: dropped
    sink.Flush();
    sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, 25)));  // older than written: dropped
    sink.Flush();
    EXPECT_GE(sink.stats().replaced, 2u);  // 3 when 30 replaced 10 before its write began
  }
  const auto names = ListCheckpoints(io::Posix(), t / "ckpt");
  EXPECT_EQ(names.back(), CheckpointName(30));
  for (int dropped : {20, 25}) EXPECT_EQ(std::count(names.begin(), names.end(), CheckpointName(dropped)), 0) << dropped;
  EXPECT_EQ(testing::ReadFile(t / "ckpt/latest"), CheckpointName(30) + "\n");
}

TEST(CheckpointSink, KeepsTheNewestAndTheBest) {
  std::mt19937_64 rng(16);
  TempDir t;
  {
    CheckpointSink sink(io::Posix(), t / "ckpt", 2);
    const double bpb[] = {3.0, 2.0, 2.5, 2.6, 2.7, 2.8};
    for (int i = 0; i < 6; ++i) {
      sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, (i + 1) * 10)));
      sink.Flush();
      sink.RecordEval((i + 1) * 10, bpb[i]);
      sink.Flush();
    }
  }
  EXPECT_EQ(ListCheckpoints(io::Posix(), t / "ckpt"),
            (std::vector<std::string>{CheckpointName(20), CheckpointName(50), CheckpointName(60)}));
  EXPECT_EQ(testing::ReadFile(t / "ckpt/best"), CheckpointName(20) + " 2.000000\n");
  EXPECT_EQ(testing::ReadFile(t / "ckpt/latest"), CheckpointName(60) + "\n");
  // A new sink on the same directory (a resumed run) knows the best and keeps honouring it.
  {
    CheckpointSink sink(io::Posix(), t / "ckpt", 1);
    sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, 70)));
    sink.Flush();
  }
  EXPECT_EQ(ListCheckpoints(io::Posix(), t / "ckpt"),
            (std::vector<std::string>{CheckpointName(20), CheckpointName(70)}));
}

// The telemetry gate judges weights after they are checkpointed: with HoldUnvouched the sink
// keeps, beside the newest `keep`, every checkpoint past the newest vouched step and the newest
// at or before it, so the last good one before a failed gate survives. Random runs of submits and
// vouches (in any order), each checked against that rule on disk.
TEST(CheckpointSink, HeldCheckpointsStayUntilVouchedFor) {
  std::mt19937_64 rng(19);
  for (int trial = 0; trial < 12; ++trial) {
    TempDir t;
    const int keep = 1 + static_cast<int>(rng() % 3);
    const bool hold = trial % 4 != 0;
    CheckpointSink sink(io::Posix(), t / "ckpt", keep);
    if (hold) sink.HoldUnvouched();
    std::vector<int64_t> written;
    int64_t vouched = -1;
    for (int64_t step = 1; step <= 14; ++step) {
      if (rng() % 3 == 0) {
        const int64_t v = static_cast<int64_t>(rng() % static_cast<uint64_t>(step));
        sink.Vouch(v);
        vouched = std::max(vouched, v);
      }
      sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, step)));
      sink.Flush();
      // What the rule keeps of what is on disk now: the disk holds it all, and nothing older.
      std::vector<int64_t> on_disk;
      for (const std::string& n : ListCheckpoints(io::Posix(), t / "ckpt")) on_disk.push_back(std::stoll(n.substr(5)));
      written.push_back(step);
      int64_t newest_vouched = -1;
      for (int64_t s : written)
        if (s <= vouched) newest_vouched = s;
      std::vector<int64_t> expected;
      for (size_t i = 0; i < written.size(); ++i) {
        const int64_t s = written[i];
        if (i + keep >= written.size() || (hold && (s > vouched || s == newest_vouched))) expected.push_back(s);
      }
      ASSERT_EQ(on_disk, expected) << "trial " << trial << " keep " << keep << " hold " << hold << " vouched "
                                   << vouched << " step " << step;
      written = expected;
    }
  }
}

TEST(CheckpointSink, AWriteErrorIsReportedNotSwallowed) {
  std::mt19937_64 rng(17);
  TempDir t;
  FaultFs fs(3);
  CheckpointSink sink(fs, t / "ckpt", 3);
  sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, 1)));
  EXPECT_THROW(sink.Flush(), Error);
  EXPECT_THROW(sink.Submit(std::make_shared<Snapshot>(RandomSnapshot(rng, 2))), Error);
}

}  // namespace
}  // namespace bitbyte::train
