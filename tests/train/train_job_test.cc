// The whole training job (RunTraining) on a tiny model, its files written through an injected
// file system: a failure at each of a short run's file operations in turn (run.json, config,
// metrics.jsonl, TensorBoard events, every checkpoint file, pointer and pruning) either leaves the
// run finished or stops it with an error naming the operation, never leaves a torn record, and a
// resume then reaches the very losses and evaluations of an undisturbed run.
#include "train/train_job.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "base/file_io.h"
#include "runs/layout.h"
#include "tests/sharding/make_dataset.h"
#include "tests/test_util.h"
#include "tests/train/fault_fs.h"

namespace bitbyte::train {
namespace {

using json = nlohmann::json;
using testing::FaultFs;
using testing::TempDir;

TrainOptions Tiny(const std::string& data, const std::string& run, io::FileSystem& fs) {
  TrainOptions o;
  o.data_dir = data;
  o.run_dir = run;
  o.overrides = {"model.bitbyte_lm.d_model=16",
                 "model.bitbyte_lm.n_layer=1",
                 "model.bitbyte_lm.n_head=2",
                 "model.bitbyte_lm.context=16",
                 "data.seq_len=16",
                 "data.batch_size=2",
                 "optim.warmup_steps=2",
                 "eval.every=2",
                 "eval.max_bytes=2000",
                 "checkpoint.every=2",
                 "checkpoint.keep=1"};
  o.steps = 5;
  o.threads = 2;
  o.console = false;
  o.figures_interval_s = 3600;  // the live figures (not through `fs`) only at the start and end
  o.fs = &fs;
  return o;
}

// What a run computed, by step: the loss of each training step and the val bpb of each
// evaluation, as written (the JSON text of the numbers, so equality is bit-exact). Fails the
// test on a line that is not a whole JSON object: a failed write must never leave a torn record.
struct Results {
  std::map<int64_t, std::string> loss, val_bpb;
};
Results ReadResults(const std::string& run, const std::string& what) {
  Results r;
  std::istringstream in(testing::ReadFile(io::JoinPath(run, runs::kMetricsFile)));
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("step")) {
      ADD_FAILURE() << what << ": torn or foreign line in metrics.jsonl: " << line;
      continue;
    }
    if (j.contains("loss")) r.loss[j["step"].get<int64_t>()] = j["loss"].dump();
    if (j.contains("val_bpb")) r.val_bpb[j["step"].get<int64_t>()] = j["val_bpb"].dump();
  }
  return r;
}

TEST(TrainJob, AFailureAtEveryFileOperationResumesToTheSameLosses) {
  TempDir t;
  testing::MakeDataset(t, 5, 30, 2000);
  const std::string data = t / "ds";

  FaultFs counter;
  const TrainSummary ref = RunTraining(Tiny(data, t / "ref", counter));
  ASSERT_EQ(ref.end_step, 5);
  ASSERT_GT(counter.ops(), 20);
  const Results want = ReadResults(t / "ref", "reference");
  ASSERT_EQ(want.loss.size(), 5u);
  ASSERT_EQ(want.val_bpb.count(5), 1u);  // the last step is always evaluated
  // An evaluation still running when a newer one is due is skipped, so which steps have a val
  // bpb depends on timing; the value of every one that ran does not. Likewise the number of
  // checkpoints written (a newer snapshot replaces one still waiting for the disk), hence of
  // file operations: go on until a run ends before its n-th operation.
  std::map<int64_t, std::string> val_bpb = want.val_bpb;
  long n = 1;
  for (;; ++n) {
    ASSERT_LT(n, 5000) << "no end to the file operations";
    const std::string run = t / ("r" + std::to_string(n));
    const std::string what = "op " + std::to_string(n);
    FaultFs fs(n);
    bool threw = false;
    try {
      RunTraining(Tiny(data, run, fs));
    } catch (const std::exception& e) {
      threw = true;
      EXPECT_NE(std::string(e.what()).find("injected failure"), std::string::npos) << what << ": " << e.what();
    }
    if (fs.ops() < n) {  // no n-th operation: nothing failed
      EXPECT_FALSE(threw) << what;
      break;
    }
    EXPECT_TRUE(threw) << what << ": the failure was swallowed";
    if (io::Posix().Exists(io::JoinPath(run, runs::kMetricsFile))) ReadResults(run, what + ", failed run");
    // Resume with a working disk; a directory the failure left without its config is not a run
    // yet, and the first command starts it again.
    TrainOptions again = Tiny(data, run, io::Posix());
    again.resume = io::Posix().Exists(io::JoinPath(run, runs::kConfigFile));
    ASSERT_NO_THROW(RunTraining(again)) << what;
    const Results got = ReadResults(run, what);
    EXPECT_EQ(got.loss, want.loss) << what;
    EXPECT_EQ(got.val_bpb.count(5), 1u) << what;
    for (const auto& [step, bpb] : got.val_bpb) {
      const auto [it, first] = val_bpb.emplace(step, bpb);
      EXPECT_TRUE(first || it->second == bpb)
          << what << ": val bpb of step " << step << " " << bpb << ", elsewhere " << it->second;
    }
    io::Posix().RemoveAll(run);
  }
  std::printf("# failures injected at each of %ld file operations of a 5-step run\n", n - 1);
}

}  // namespace
}  // namespace bitbyte::train
