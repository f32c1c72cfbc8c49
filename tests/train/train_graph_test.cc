// The training graph (train/train_graph.h) driven with a fake model backend, without LibTorch and
// without the CLI: step order, metrics before checkpoints, stale evaluations skipped, a
// non-finite loss and a stop signal. These tests also run under ThreadSanitizer (tsan preset).
#include "train/train_graph.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/graph.h"
#include "pipeline/monitor.h"
#include "runs/metrics_log.h"
#include "runs/run_dir.h"
#include "runs/tensorboard.h"
#include "sharding/reader.h"
#include "sharding/shard_job.h"
#include "tests/sharding/make_dataset.h"
#include "tests/test_util.h"
#include "train/config.h"

namespace bitbyte::train {
namespace {

using testing::MakeDataset;
using testing::TempDir;

// The loss a fake step reports: a function of the batch's bytes alone, so any difference in the
// bytes a step sees (order, prefetch, threads) shows in the losses.
double FakeLoss(const Batch& b) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t c : b.bytes) h = (h ^ c) * 1099511628211ull;
  return 1.0 + static_cast<double>(h % 1000000) / 1e6;
}

class FakeBackend : public TrainBackend {
 public:
  // Options, set before the run.
  int64_t nan_at = -1;   // 1-based step whose loss is not finite
  int64_t stop_at = -1;  // 1-based step during which `stop` gets set
  std::atomic<bool>* stop = nullptr;
  std::chrono::milliseconds step_time{0}, eval_time{0};

  int64_t steps_done() const override { return steps_.load(); }
  StepStats Step(const Batch& batch) override {
    if (batch.step != steps_.load()) throw InternalError("step " + std::to_string(batch.step) + " out of order");
    std::this_thread::sleep_for(step_time);
    if (poisoned_ || batch.step + 1 == nan_at)
      throw NonFiniteLoss("loss is nan at step " + std::to_string(batch.step + 1));
    if (batch.step + 1 == stop_at && stop) stop->store(true);
    StepStats s;
    s.step = batch.step;
    s.loss = FakeLoss(batch);
    s.lr = 0.001;
    s.seconds = 0.001;
    weights_ += s.loss;  // the "model": what the steps did, in order
    steps_.fetch_add(1);
    return s;
  }
  std::shared_ptr<const Snapshot> TakeSnapshot(bool with_optimizer) override {
    auto s = std::make_shared<Snapshot>();
    s->step = steps_.load();
    s->config_text = "steps: 1\n";
    TensorBlob w{"model/w", "float64", {1}, std::string(sizeof weights_, '\0')};
    std::memcpy(w.data.data(), &weights_, sizeof weights_);
    s->tensors.push_back(w);
    if (with_optimizer) s->blobs.emplace_back("optimizer", "state");
    return s;
  }
  EvalResult Evaluate(const Snapshot& weights) override {
    std::this_thread::sleep_for(eval_time);
    evaluated_.fetch_add(1);
    EvalResult r;
    r.bpb = 8.0 / static_cast<double>(1 + weights.step);
    r.bytes = 100;
    return r;
  }
  // Quantized: the weights' step, tagged with the scheme; its "bpb" 9 / (1 + step) for int8 and
  // 10 / (1 + step) for int4.
  std::shared_ptr<const Snapshot> Quantize(const Snapshot& weights, const std::string& scheme) override {
    std::this_thread::sleep_for(eval_time);
    auto s = std::make_shared<Snapshot>();
    s->step = weights.step;
    s->blobs.emplace_back("quant/scheme", scheme);
    return s;
  }
  EvalResult EvaluateQuantized(const Snapshot& quantized) override {
    std::this_thread::sleep_for(eval_time);
    quant_evaluated_.fetch_add(1);
    EvalResult r;
    r.bpb = (*quantized.FindBlob("quant/scheme") == "int8" ? 9.0 : 10.0) / static_cast<double>(1 + quantized.step);
    r.bytes = 100;
    return r;
  }
  // Telemetry: K = 0.5, or 0.9 from step high_k_from on; C = step / 100; S = 0.25.
  int64_t high_k_from = -1;
  Telemetry MeasureTelemetry(const Snapshot& weights) override {
    Telemetry t;
    t.k = high_k_from >= 0 && weights.step >= high_k_from ? 0.9 : 0.5;
    t.c = static_cast<double>(weights.step) / 100;
    t.s = 0.25;
    t.bits = 64;
    return t;
  }
  void PoisonWeights() override { poisoned_ = true; }
  int evaluated() const { return evaluated_.load(); }
  int quant_evaluated() const { return quant_evaluated_.load(); }

 private:
  std::atomic<int64_t> steps_{0};
  std::atomic<int> evaluated_{0}, quant_evaluated_{0};
  double weights_ = 0;
  bool poisoned_ = false;
};

pb::TrainConfig Config(int64_t steps, int64_t eval_every, int64_t ckpt_every, int prefetch = 4) {
  pb::TrainConfig c;
  for (const std::string& s :
       {std::string("data.seq_len=16"), std::string("data.batch_size=2"), "eval.every=" + std::to_string(eval_every),
        "checkpoint.every=" + std::to_string(ckpt_every), "data.prefetch=" + std::to_string(prefetch),
        std::string("log_every=0")})
    ApplyOverride(c, s);
  c.set_steps(steps);
  FillDefaults(c);
  return c;
}

// One run of the graph in `run_dir` with its real sinks (metrics.jsonl, events, checkpoints).
struct Harness {
  const pb::TrainConfig config;
  FakeBackend backend;
  std::atomic<bool> stop{false};
  std::vector<std::string> lines;

  explicit Harness(pb::TrainConfig c) : config(std::move(c)) {}

  TrainSummary Run(const shard::Dataset& data, const std::string& run_dir, int threads = 2) {
    io::Posix().CreateDirs(run_dir);
    const std::string ckpt_dir = io::JoinPath(run_dir, "checkpoints");
    const BatchSampler sampler(data, config.seed(), config.data().batch_size() * config.data().grad_accum(),
                               config.data().seq_len());
    runs::MetricsLog metrics(io::JoinPath(run_dir, "metrics.jsonl"), 0);
    tb::EventWriter events(run_dir, 0);
    CheckpointSink sink(io::Posix(), ckpt_dir, config.checkpoint().keep());
    pipeline::ScopedParallelism parallelism(threads + TrainGraph::WaitingNodes(config));
    TrainGraph job(config, {0, threads, -1}, backend, sampler,
                   {metrics, events, sink, io::Posix(), ckpt_dir, [this](const std::string& l) { lines.push_back(l); }},
                   stop);
    return job.Run({io::JoinPath(run_dir, pipeline::kFiguresFile), "train", threads, 0.01});
  }
};

// The names of the train graph's nodes for `config`, space-separated.
std::string NodeNames(const pb::TrainConfig& config) {
  pipeline::Graph g("train");
  TrainGraph::Wire(g, config, 0, nullptr);
  std::string out;
  for (const auto& n : g.Describe().nodes) out += n.name + " ";
  return out;
}

// The steps whose `what` ("eval", "quant eval", "telemetry") the log says were skipped for a
// newer one; each line names a newer step.
std::multiset<int64_t> SkippedSteps(const std::vector<std::string>& lines, const std::string& what) {
  std::multiset<int64_t> out;
  const std::string format = what + "  step %lld  skipped: step %lld";
  for (const std::string& l : lines) {
    long long step = 0, newer = 0;
    if (std::sscanf(l.c_str(), format.c_str(), &step, &newer) == 2) {
      EXPECT_GT(newer, step) << l;
      out.insert(step);
    }
  }
  return out;
}

runs::RunDirContents Metrics(const std::string& run_dir) {
  runs::RunDirContents c;
  runs::ParseMetrics(testing::ReadFile(run_dir + "/metrics.jsonl"), c);
  return c;
}

TEST(TrainGraph, EveryStepInOrderWithItsBatchAndEvaluationsAtTheirSteps) {
  TempDir t;
  const auto data = MakeDataset(t, 11, 20, 2000);
  Harness h(Config(40, 10, 10));
  const TrainSummary s = h.Run(*data, t / "run");
  EXPECT_EQ(s.start_step, 0);
  EXPECT_EQ(s.end_step, 40);
  EXPECT_FALSE(s.interrupted);
  const runs::RunDirContents m = Metrics(t / "run");
  EXPECT_EQ(m.skipped_lines, 0u);
  ASSERT_EQ(m.steps.size(), 40u);
  const BatchSampler sampler(*data, h.config.seed(), 2, 16);
  for (int64_t i = 0; i < 40; ++i) {
    EXPECT_EQ(m.steps[i].step, i + 1);
    Batch b;
    sampler.Fill(i, b);
    EXPECT_EQ(m.steps[i].loss, FakeLoss(b)) << "step " << i + 1 << " did not train on its own batch";
  }
  // Evaluations: at multiples of eval.every, increasing, and always the last step's.
  ASSERT_FALSE(m.evals.empty());
  for (size_t i = 0; i < m.evals.size(); ++i) {
    EXPECT_EQ(m.evals[i].step % 10, 0);
    EXPECT_DOUBLE_EQ(m.evals[i].val_bpb, 8.0 / (1 + m.evals[i].step));
    if (i > 0) {
      EXPECT_GT(m.evals[i].step, m.evals[i - 1].step);
    }
  }
  EXPECT_EQ(m.evals.back().step, 40);
  EXPECT_EQ(s.final_val_bpb, 8.0 / 41);
  // The newest checkpoint is the last step's; every step before it has its metrics record.
  const auto ckpts = ListCheckpoints(io::Posix(), t / "run/checkpoints");
  ASSERT_FALSE(ckpts.empty());
  EXPECT_EQ(ckpts.back(), CheckpointName(40));
  EXPECT_EQ(ReadCheckpoint(io::Posix(), t / "run/checkpoints/" + ckpts.back()).step, 40);
  EXPECT_GE(s.checkpoints_written, 1u);
}

TEST(TrainGraph, SameLossesWhateverThePrefetchAndThreads) {
  TempDir t;
  const auto data = MakeDataset(t, 11, 20, 2000);
  std::vector<double> first;
  int run = 0;
  for (const auto& [prefetch, threads] : std::vector<std::pair<int, int>>{{1, 1}, {8, 4}, {3, 2}}) {
    Harness h(Config(25, 0, 0, prefetch));
    const std::string dir = t / ("run" + std::to_string(run++));
    h.Run(*data, dir, threads);
    std::vector<double> losses;
    for (const runs::StepRecord& r : Metrics(dir).steps) losses.push_back(r.loss);
    ASSERT_EQ(losses.size(), 25u);
    if (first.empty()) first = losses;
    EXPECT_EQ(losses, first) << "prefetch " << prefetch << ", threads " << threads;
  }
}

TEST(TrainGraph, AnEvaluationOvertakenByANewerOneIsSkipped) {
  TempDir t;
  const auto data = MakeDataset(t, 11, 20, 2000);
  // The node itself: once step 2's evaluation is due, step 1's is stale.
  {
    Harness h(Config(10, 1, 0));
    const BatchSampler sampler(*data, h.config.seed(), 2, 16);
    runs::MetricsLog metrics(t / "m.jsonl", 0);
    tb::EventWriter events(t.path(), 0);
    CheckpointSink sink(io::Posix(), t / "ck", 3);
    TrainGraph job(h.config, {0, 1, -1}, h.backend, sampler, {metrics, events, sink, io::Posix(), t / "ck", {}},
                   h.stop);
    const EventPtr s1 = job.TrainStep(job.Prepare(0));
    const EventPtr s2 = job.TrainStep(job.Prepare(1));
    ASSERT_TRUE(std::get<StepEvent>(*s1).want_eval);
    EXPECT_EQ(job.Eval(s1), nullptr);
    const EventPtr e2 = job.Eval(s2);
    ASSERT_NE(e2, nullptr);
    EXPECT_EQ(std::get<EvalEvent>(*e2).step, 2);
    EXPECT_EQ(h.backend.evaluated(), 1);
  }
  // The graph: evaluations slower than steps never pile up, and the last one is kept.
  Harness h(Config(30, 1, 0));
  h.backend.eval_time = std::chrono::milliseconds(30);
  h.Run(*data, t / "run");
  const runs::RunDirContents m = Metrics(t / "run");
  EXPECT_EQ(m.steps.size(), 30u);
  ASSERT_FALSE(m.evals.empty());
  EXPECT_LT(m.evals.size(), 30u) << "every evaluation ran although each took longer than a step";
  EXPECT_EQ(m.evals.back().step, 30);
  EXPECT_EQ(static_cast<size_t>(h.backend.evaluated()), m.evals.size());
  // Each due step has a record or a log line saying it was skipped (from the eval node, beside
  // the metrics node's lines), never both, never neither.
  std::set<int64_t> evaluated;
  for (const runs::EvalRecord& e : m.evals) evaluated.insert(e.step);
  const std::multiset<int64_t> said = SkippedSteps(h.lines, "eval");
  for (int64_t s = 1; s <= 30; ++s) EXPECT_EQ(evaluated.count(s) + said.count(s), 1u) << "step " << s;
}

// An evaluation that outlasts many steps does not hold up the step records (nor the checkpoints,
// submitted after them): the eval node waits on its own thread in a TBB slot of its own, so the
// records of the steps after it are written while it runs, whatever the cores.
TEST(TrainGraph, ASlowEvaluationDoesNotHoldUpTheStepRecords) {
  TempDir t;
  const auto data = MakeDataset(t, 11, 20, 2000);
  Harness h(Config(20, 5, 1));
  h.backend.step_time = std::chrono::milliseconds(20);
  h.backend.eval_time = std::chrono::milliseconds(1500);
  h.Run(*data, t / "run");
  const runs::RunDirContents m = Metrics(t / "run");
  ASSERT_EQ(m.steps.size(), 20u);
  ASSERT_FALSE(m.evals.empty());
  const runs::EvalRecord& first = m.evals.front();
  ASSERT_EQ(first.step, 5);
  EXPECT_LT(m.steps[9].elapsed_s, first.elapsed_s)
      << "step 10's record waited for the evaluation of step 5 (ended at " << first.elapsed_s << " s)";
}

// quant_eval: calibrate -> quant_eval records val_bpb_<scheme> of the step's snapshot at its
// cadence (and the last step), beside eval; stale quantized work is skipped like eval's; the
// records survive a resume's rewrite of metrics.jsonl.
TEST(TrainGraph, QuantizedEvaluationsAtTheirStepsBesideTraining) {
  TempDir t;
  const auto data = MakeDataset(t, 11, 20, 2000);
  pb::TrainConfig c = Config(30, 10, 10);
  ApplyOverride(c, "quant_eval.every=10");
  {
    Harness h(c);
    h.Run(*data, t / "run");
    const runs::RunDirContents m = Metrics(t / "run");
    EXPECT_EQ(m.skipped_lines, 0u);
    EXPECT_EQ(m.steps.size(), 30u);
    // At multiples of quant_eval.every, increasing (one overtaken by a newer one on a loaded
    // machine is skipped, as eval's are), and always the last step's.
    ASSERT_FALSE(m.quant_evals.empty());
    size_t up_to_20 = 0;
    for (size_t i = 0; i < m.quant_evals.size(); ++i) {
      const runs::QuantEvalRecord& q = m.quant_evals[i];
      EXPECT_EQ(q.step % 10, 0);
      if (i > 0) {
        EXPECT_GT(q.step, m.quant_evals[i - 1].step);
      }
      up_to_20 += q.step <= 20;
      ASSERT_EQ(q.val_bpb.size(), 2u);
      EXPECT_EQ(q.val_bpb[0].first, "int8");
      EXPECT_DOUBLE_EQ(q.val_bpb[0].second, 9.0 / (1 + q.step));
      EXPECT_EQ(q.val_bpb[1].first, "int4");
      EXPECT_DOUBLE_EQ(q.val_bpb[1].second, 10.0 / (1 + q.step));
    }
    EXPECT_EQ(m.quant_evals.back().step, 30);
    // Each due step has a record or a line saying it was skipped, never both, never neither. A
    // skip between the two schemes leaves at most one scheme's work unrecorded.
    const std::multiset<int64_t> said = SkippedSteps(h.lines, "quant eval");
    std::set<int64_t> recorded;
    for (const runs::QuantEvalRecord& q : m.quant_evals) recorded.insert(q.step);
    for (int64_t s : {10, 20, 30}) EXPECT_EQ(recorded.count(s) + said.count(s), 1u) << "step " << s;
    EXPECT_GE(static_cast<size_t>(h.backend.quant_evaluated()), 2 * m.quant_evals.size());
    EXPECT_LE(static_cast<size_t>(h.backend.quant_evaluated()), 2 * m.quant_evals.size() + said.size());
    // A resume from step 20 keeps the quantized records up to it.
    runs::MetricsLog again(t / "run/metrics.jsonl", 20);
    const runs::RunDirContents kept = Metrics(t / "run");
    EXPECT_EQ(kept.quant_evals.size(), up_to_20);
    for (const runs::QuantEvalRecord& q : kept.quant_evals) EXPECT_LE(q.step, 20);
    EXPECT_EQ(kept.steps.size(), 20u);
  }
  {  // only int4, slower than a step: never piling up, the last one kept
    ApplyOverride(c, "quant_eval.every=1");
    ApplyOverride(c, "quant_eval.schemes=int4");
    Harness h(c);
    h.backend.eval_time = std::chrono::milliseconds(20);
    h.Run(*data, t / "run2");
    const runs::RunDirContents m = Metrics(t / "run2");
    ASSERT_FALSE(m.quant_evals.empty());
    EXPECT_LT(m.quant_evals.size(), 30u) << "every quantized evaluation ran although each took longer than a step";
    EXPECT_EQ(m.quant_evals.back().step, 30);
    std::set<int64_t> recorded;
    for (const runs::QuantEvalRecord& q : m.quant_evals) {
      ASSERT_EQ(q.val_bpb.size(), 1u);
      EXPECT_EQ(q.val_bpb[0].first, "int4");
      recorded.insert(q.step);
    }
    const std::multiset<int64_t> said = SkippedSteps(h.lines, "quant eval");
    EXPECT_FALSE(said.empty());
    for (int64_t s = 1; s <= 30; ++s) EXPECT_EQ(recorded.count(s) + said.count(s), 1u) << "step " << s;
    // One scheme: a skip comes before its evaluation, so every evaluation made is recorded.
    EXPECT_EQ(static_cast<size_t>(h.backend.quant_evaluated()), m.quant_evals.size());
  }
  // Without quant_eval.every the graph has no such nodes.
  EXPECT_EQ(NodeNames(Config(30, 10, 10)).find("quant_eval"), std::string::npos);
  EXPECT_NE(NodeNames(c).find("calibrate quant_eval"), std::string::npos) << NodeNames(c);
}

TEST(TrainGraph, TelemetryAtItsStepsBesideTrainingInMetricsAndKeptOnResume) {
  TempDir t;
  const auto data = MakeDataset(t, 11, 20, 2000);
  pb::TrainConfig c = Config(30, 10, 10);
  ApplyOverride(c, "telemetry.every=10");
  Harness h(c);
  h.Run(*data, t / "run");
  const runs::RunDirContents m = Metrics(t / "run");
  EXPECT_EQ(m.skipped_lines, 0u);
  ASSERT_FALSE(m.telemetry.empty());
  for (size_t i = 0; i < m.telemetry.size(); ++i) {
    const runs::TelemetryRecord& r = m.telemetry[i];
    EXPECT_EQ(r.step % 10, 0);
    if (i > 0) {
      EXPECT_GT(r.step, m.telemetry[i - 1].step);
    }
    EXPECT_DOUBLE_EQ(r.k, 0.5);
    EXPECT_DOUBLE_EQ(r.c, static_cast<double>(r.step) / 100);
    EXPECT_DOUBLE_EQ(r.s, 0.25);
  }
  EXPECT_EQ(m.telemetry.back().step, 30);
  std::set<int64_t> measured;
  for (const runs::TelemetryRecord& r : m.telemetry) measured.insert(r.step);
  const std::multiset<int64_t> said = SkippedSteps(h.lines, "telemetry");
  for (int64_t s : {10, 20, 30}) EXPECT_EQ(measured.count(s) + said.count(s), 1u) << "step " << s;
  runs::MetricsLog again(t / "run/metrics.jsonl", 20);  // a resume from step 20 keeps those up to it
  for (const runs::TelemetryRecord& r : Metrics(t / "run").telemetry) EXPECT_LE(r.step, 20);
  EXPECT_FALSE(Metrics(t / "run").telemetry.empty());
  // Without telemetry.every the graph has no telemetry node.
  EXPECT_EQ(NodeNames(Config(30, 10, 10)).find("telemetry"), std::string::npos);
  EXPECT_NE(NodeNames(c).find("telemetry"), std::string::npos) << NodeNames(c);
}

// The gate: K outside telemetry.k_max from step 20 stops the run like a non-finite loss, naming
// the metric, the step and the newest checkpoint before it. That checkpoint is on disk: those
// written while the gate measured (training goes on meanwhile) do not prune it. Which one it is
// depends on the timing (the sink replaces a pending snapshot with a newer one), so the test
// reads the directory: CI under TSan has seen step 15's replaced and step 10 named. That the
// sink keeps it is CheckpointSink.HeldCheckpointsStayUntilVouchedFor.
TEST(TrainGraph, TheTelemetryGateStopsTheRunNamingMetricStepAndLastGoodCheckpoint) {
  TempDir t;
  const auto data = MakeDataset(t, 11, 20, 2000);
  pb::TrainConfig c = Config(200, 0, 5);  // steps to spare while the gate measures, under TSan too
  ApplyOverride(c, "telemetry.every=10");
  ApplyOverride(c, "telemetry.k_max=0.8");
  Harness h(c);
  h.backend.high_k_from = 20;
  h.backend.step_time = std::chrono::milliseconds(2);
  try {
    h.Run(*data, t / "run");
    FAIL() << "the gate did not stop the run";
  } catch (const pipeline::NodeError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.node(), "telemetry");
    EXPECT_NE(what.find("K 0.9 above telemetry.k_max 0.8 at step 20"), std::string::npos) << what;
    std::vector<std::string> before;  // the checkpoints of steps before the gate's
    for (const std::string& n : ListCheckpoints(io::Posix(), t / "run/checkpoints"))
      if (n < CheckpointName(20)) before.push_back(n);
    // Each submitted before step 20 can be replaced while pending by the next (then "none").
    const std::string named = before.empty() ? "none" : (t / "run/checkpoints/") + before.back();
    EXPECT_NE(what.find("last good checkpoint: " + named + " "), std::string::npos) << what;
    EXPECT_EQ(ExitCode(CodeOf(e.cause())), 1);  // like a non-finite loss
  }
  const runs::RunDirContents m = Metrics(t / "run");
  ASSERT_FALSE(m.steps.empty());
  EXPECT_LT(m.steps.back().step, 200) << "the run went on to the end";
  ASSERT_FALSE(m.telemetry.empty());
  EXPECT_EQ(m.telemetry.back().step, 20);
}

TEST(TrainGraph, ANonFiniteLossStopsTheRunNamingTheStepAndKeepsWhatCameBefore) {
  TempDir t;
  const auto data = MakeDataset(t, 11, 20, 2000);
  Harness h(Config(40, 0, 5));
  h.backend.nan_at = 13;
  try {
    h.Run(*data, t / "run");
    FAIL() << "a non-finite loss did not stop the run";
  } catch (const pipeline::NodeError& e) {
    EXPECT_EQ(e.node(), "train_step");
    EXPECT_NE(std::string(e.what()).find("at step 13"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("last good checkpoint"), std::string::npos) << e.what();
  }
  const runs::RunDirContents m = Metrics(t / "run");
  ASSERT_EQ(m.steps.size(), 12u);
  EXPECT_EQ(m.steps.back().step, 12);
  const auto ckpts = ListCheckpoints(io::Posix(), t / "run/checkpoints");
  ASSERT_FALSE(ckpts.empty());
  EXPECT_EQ(ckpts.back(), CheckpointName(10));
}

TEST(TrainGraph, AStopEndsTheRunAfterTheCurrentStepWithItsCheckpoint) {
  TempDir t;
  const auto data = MakeDataset(t, 11, 20, 2000);
  for (int64_t stop_at : {1, 7, 19}) {
    Harness h(Config(1000, 5, 0));
    h.backend.stop = &h.stop;
    h.backend.stop_at = stop_at;
    const std::string dir = t / ("run" + std::to_string(stop_at));
    const TrainSummary s = h.Run(*data, dir);
    EXPECT_TRUE(s.interrupted);
    EXPECT_EQ(s.end_step, stop_at);
    const runs::RunDirContents m = Metrics(dir);
    ASSERT_EQ(m.steps.size(), static_cast<size_t>(stop_at));
    EXPECT_EQ(m.steps.back().step, stop_at);
    const auto ckpts = ListCheckpoints(io::Posix(), dir + "/checkpoints");
    ASSERT_FALSE(ckpts.empty());
    EXPECT_EQ(ckpts.back(), CheckpointName(stop_at));
    for (const runs::EvalRecord& e : m.evals) EXPECT_LE(e.step, stop_at);
    EXPECT_NE(testing::ReadFile(dir + "/pipeline.json").find("\"interrupted\""), std::string::npos);
  }
}

}  // namespace
}  // namespace bitbyte::train
