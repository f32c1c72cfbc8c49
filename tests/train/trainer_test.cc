// The training stack on tiny models: learning, the schedule, snapshots that resume bit-exactly,
// non-finite losses, batches as a pure function of (seed, step), and bits-per-byte evaluation.
#include "train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <tuple>

#include "base/error.h"
#include "models/model.h"
#include "models/qat.h"
#include "sharding/shard_job.h"
#include "tests/sharding/make_dataset.h"
#include "tests/test_util.h"
#include "train/batches.h"
#include "train/config.h"
#include "train/evaluator.h"

namespace bitbyte::train {
namespace {

using testing::MakeDataset;
using testing::TempDir;

pb::TrainConfig Tiny(int64_t steps) {
  pb::TrainConfig c;
  for (const char* s : {"model.bitbyte_lm.d_model=16", "model.bitbyte_lm.n_layer=2", "model.bitbyte_lm.n_head=2",
                        "model.bitbyte_lm.context=16", "data.seq_len=16", "data.batch_size=4", "optim.warmup_steps=3",
                        "optim.lr=0.01", "precision=fp32", "qat_precision=fp32"})
    ApplyOverride(c, s);
  c.set_steps(steps);
  FillDefaults(c);
  ValidateConfig(c);
  return c;
}

// Tiny's model on `track` instead: the same width (d_model) and depth (2 layers), windows of 16
// bytes (the bit track's context is in bits: 128).
void UseTrack(pb::TrainConfig& c, const std::string& track, int d_model) {
  const std::string width = std::to_string(d_model);
  ApplyOverride(c, "model.bitbyte_lm.d_model=" + width);
  if (track == "bitbyte_lm") return;
  ApplyOverride(c, "model.name=" + track);
  ApplyOverride(c, "model." + track + ".d_model=" + width);
  ApplyOverride(c, "model." + track + ".n_layer=2");
  if (track == "bit_transformer_lm") {
    ApplyOverride(c, "model.bit_transformer_lm.n_head=2");
    ApplyOverride(c, "model.bit_transformer_lm.context=128");
  }
}

Batch BatchFor(const BatchSampler& s, int64_t step) {
  Batch b;
  s.Fill(step, b);
  return b;
}

TEST(Batches, AreAPureFunctionOfSeedAndStep) {
  TempDir t;
  auto ds = MakeDataset(t, 1);
  const BatchSampler a(*ds, 7, 5, 31), b(*ds, 7, 5, 31), other(*ds, 8, 5, 31);
  const uint64_t n = ds->SplitBytes(shard::Split::kTrain);
  for (int64_t step = 0; step < 50; ++step) {
    const Batch x = BatchFor(a, step), y = BatchFor(b, step);
    EXPECT_EQ(x.bytes, y.bytes);
    EXPECT_NE(x.bytes, BatchFor(other, step).bytes);
    EXPECT_NE(x.bytes, BatchFor(a, step + 1).bytes);
    for (int r = 0; r < 5; ++r) {
      const uint64_t off = a.Offset(step, r);
      ASSERT_LE(off + 32, n);
      EXPECT_EQ(std::string(x.bytes.begin() + r * 32, x.bytes.begin() + (r + 1) * 32),
                ds->Read(shard::Split::kTrain, off, 32));
    }
  }
  EXPECT_THROW(BatchSampler(*ds, 1, 1, static_cast<int>(n)), Error);  // a window longer than the split
}

TEST(Trainer, LearningRateWarmsUpThenDecaysToMinLr) {
  pb::TrainConfig c = Tiny(100);
  c.mutable_optim()->set_warmup_steps(10);
  Trainer t(c, torch::kCPU);
  for (int64_t s = 1; s < 10; ++s) EXPECT_GT(t.LearningRate(s), t.LearningRate(s - 1));
  EXPECT_DOUBLE_EQ(t.LearningRate(9), c.optim().lr());
  EXPECT_DOUBLE_EQ(t.LearningRate(10), c.optim().lr());
  for (int64_t s = 11; s < 100; ++s) EXPECT_LT(t.LearningRate(s), t.LearningRate(s - 1));
  EXPECT_NEAR(t.LearningRate(99), c.optim().min_lr(), 1e-15);
}

TEST(Trainer, OverfitsOneBatch) {
  TempDir t;
  auto ds = MakeDataset(t, 2);
  pb::TrainConfig c = Tiny(150);
  c.mutable_optim()->set_warmup_steps(5);
  c.mutable_optim()->set_weight_decay(0);
  Trainer tr(c, torch::kCPU);
  const BatchSampler s(*ds, 1, 4, 16);
  Batch b = BatchFor(s, 0);
  double first = 0, last = 0;
  for (int64_t step = 0; step < 150; ++step) {
    b.step = step;
    last = tr.Step(b).loss;
    if (step == 0) first = last;
  }
  EXPECT_NEAR(first, std::log(256.0), 0.3);
  EXPECT_LT(last, 0.5) << "a 2-layer model should memorise 64 bytes";
}

// Train k steps, snapshot, go on to n; a fresh trainer restored from the snapshot must produce
// the very same losses and weights. Same thread count, bit for bit.
// In either precision: bf16 keeps float32 weights and optimizer state, which is what a
// snapshot holds, so the resumed run is as exact as the float32 one.
TEST(Trainer, RestoredSnapshotContinuesBitExactly) {
  TempDir t;
  auto ds = MakeDataset(t, 3);
  // fp32 and bf16, fp32 with 8-bit AdamW moments (d_model 32: the MLP matrices reach the 4096
  // elements a tensor needs for them), and that with ternary QAT switched on at step 5 (the
  // snapshots at 1, 5 and 11 fall before, on and after the switch, which is also one from fp32 to
  // bf16 steps); BitTransformerLM (reversible blocks) in bf16 with int4 QAT in fp32 from step 5.
  for (const auto& [precision, bits, qat, track] :
       {std::tuple{"fp32", 32, "", "bitbyte_lm"}, std::tuple{"bf16", 32, "", "bitbyte_lm"},
        std::tuple{"fp32", 8, "", "bitbyte_lm"}, std::tuple{"fp32", 8, "ternary", "bitbyte_lm"},
        std::tuple{"bf16", 32, "int4", "bit_transformer_lm"}, std::tuple{"fp32", 32, "grow", "bitbyte_lm"},
        std::tuple{"fp32", 32, "grow", "mamba_mlm"}, std::tuple{"fp32", 32, "grow", "bit_transformer_lm"}}) {
    pb::TrainConfig c = Tiny(24);
    UseTrack(c, track, 16);
    // Growth: one layer, two from step 8 (between the snapshots at 5 and 11), windows of 8 bytes
    // then 16 from step 5.
    const bool grow = std::string(qat) == "grow";
    if (grow) {
      ApplyOverride(c, "growth.depth=0:1,8:2");
      ApplyOverride(c, "growth.seq_len=0:8,5:16");
    }
    c.set_precision(precision);
    c.set_qat_precision(std::string(precision) == "bf16" ? "fp32" : "bf16");  // the other one
    if (bits == 8) {
      ApplyOverride(c, "optim.state_bits=8");
      UseTrack(c, track, 32);
    }
    if (*qat != '\0' && !grow) {
      ApplyOverride(c, std::string("model.qat.scheme=") + qat);
      ApplyOverride(c, "model.qat.start_step=5");
      ApplyOverride(c, "model.qat.group=8");
    }
    c.mutable_data()->set_grad_accum(2);
    const BatchSampler s(*ds, c.seed(), c.data().batch_size() * 2, 16,
                         ParseStages(c.growth().seq_len(), "growth.seq_len", 2, 16, false));
    for (int64_t k : {1, 5, 11}) {
      Trainer a(c, torch::kCPU);
      std::vector<double> losses_a, losses_b;
      std::shared_ptr<Snapshot> snap;
      for (int64_t step = 0; step < 24; ++step) {
        if (step == k) snap = a.TakeSnapshot(true);
        losses_a.push_back(a.Step(BatchFor(s, step)).loss);
      }
      // Round trip through the on-disk format too.
      int bytes = 0;  // 8-bit moments' codes
      for (const TensorBlob& b : snap->tensors) {
        EXPECT_TRUE(b.dtype == "Float" || (bits == 8 && b.dtype == "Byte")) << precision << " " << b.name;
        bytes += b.dtype == "Byte";
      }
      EXPECT_EQ(bytes > 0, bits == 8);
      const std::string dir = WriteCheckpoint(
          io::Posix(), t / (std::string(precision) + std::to_string(bits) + qat + "ckpt" + std::to_string(k)), *snap);
      torch::manual_seed(999);  // a different global RNG state: Restore must bring back the saved one
      Trainer b(c, torch::kCPU);
      b.Restore(ReadCheckpoint(io::Posix(), dir));
      EXPECT_EQ(b.steps_done(), k);
      for (int64_t step = k; step < 24; ++step) losses_b.push_back(b.Step(BatchFor(s, step)).loss);
      EXPECT_EQ(std::vector<double>(losses_a.begin() + k, losses_a.end()), losses_b) << precision << " k = " << k;
      const Snapshot wa = *a.TakeSnapshot(true), wb = *b.TakeSnapshot(true);
      ASSERT_EQ(wa.tensors.size(), wb.tensors.size());
      for (size_t i = 0; i < wa.tensors.size(); ++i)
        EXPECT_EQ(wa.tensors[i].data, wb.tensors[i].data) << precision << " " << wa.tensors[i].name;
    }
  }
}

// The losses of 200 steps of Tiny on `track` (at width d_model, 2 layers)
// with `overrides` applied last.
std::vector<double> Losses(const shard::Dataset& ds, const std::string& track, int d_model,
                           const std::vector<std::string>& overrides, models::qat::QatModel** qat = nullptr) {
  pb::TrainConfig c = Tiny(200);
  UseTrack(c, track, d_model);
  for (const std::string& o : overrides) ApplyOverride(c, o);
  FillDefaults(c);
  Trainer tr(c, torch::kCPU);
  if (qat != nullptr) *qat = tr.model().qat();
  const BatchSampler s(ds, c.seed(), c.data().batch_size(), 16);
  std::vector<double> losses;
  for (int64_t step = 0; step < 200; ++step) losses.push_back(tr.Step(BatchFor(s, step)).loss);
  return losses;
}

double Tail(const std::vector<double>& l) { return std::accumulate(l.end() - 20, l.end(), 0.0) / 20; }

// 200 steps from one seed in fp32 and in bf16, for each track: bf16 really runs (its losses are
// not fp32's bit for bit) and learns as well, within a stated tolerance: the mean loss of the
// last 20 steps within kTolerance nats of fp32's, and both far below the start.
TEST(Trainer, Bf16TracksFp32Over200Steps) {
  constexpr double kTolerance = 0.05;
  TempDir t;
  auto ds = MakeDataset(t, 5);
  for (const std::string track : {"bitbyte_lm", "mamba_mlm", "bit_transformer_lm"}) {
    const std::vector<double> fp32 = Losses(*ds, track, 16, {"precision=fp32"});
    const std::vector<double> bf16 = Losses(*ds, track, 16, {"precision=bf16"});
    EXPECT_NE(fp32, bf16) << track << ": bf16 computed exactly what fp32 did (autocast off?)";
    EXPECT_NEAR(Tail(bf16), Tail(fp32), kTolerance) << track;
    EXPECT_LT(Tail(fp32), fp32.front() - 1.0) << track << " did not learn";
    std::printf("%s: last-20 mean loss fp32 %.4f, bf16 %.4f (first %.4f)\n", track.c_str(), Tail(fp32), Tail(bf16),
                fp32.front());
  }
}

// 200 steps with 8-bit AdamW moments against float32 ones, each track at a width where its
// matrices reach 4096 elements (so most moments are 8-bit): the mean loss of the last 20 steps
// within kTolerance nats of float32's, and not float32's bit for bit.
TEST(Trainer, EightBitMomentsTrackFloat32Over200Steps) {
  constexpr double kTolerance = 0.05;
  TempDir t;
  auto ds = MakeDataset(t, 5);
  for (const std::string track : {"bitbyte_lm", "mamba_mlm"}) {
    const std::vector<double> f32 = Losses(*ds, track, 32, {}), b8 = Losses(*ds, track, 32, {"optim.state_bits=8"});
    EXPECT_NE(f32, b8) << track << ": 8-bit moments computed exactly what float32 ones did";
    EXPECT_NEAR(Tail(b8), Tail(f32), kTolerance) << track;
    EXPECT_LT(Tail(b8), b8.front() - 1.0) << track << " did not learn";
    std::printf("%s: last-20 mean loss, float32 moments %.4f, 8-bit %.4f (first %.4f)\n", track.c_str(), Tail(f32),
                Tail(b8), f32.front());
  }
}

// Quantization-aware training learns with each scheme and each track: 200 steps, the mean loss of
// the last 20 below the first by a nat, and the losses not float32's (the quantizers ran). With
// start_step 100 the first 100 steps are float32's bit for bit.
TEST(Trainer, QuantizationAwareTrainingLearns) {
  TempDir t;
  auto ds = MakeDataset(t, 5);
  for (const std::string track : {"bitbyte_lm", "mamba_mlm", "bit_transformer_lm"}) {
    const std::vector<double> base = Losses(*ds, track, 32, {});
    for (const std::string scheme : {"ternary", "int4", "ternary@100"}) {
      const bool late = scheme == "ternary@100";
      std::vector<std::string> o = {"model.qat.scheme=" + (late ? std::string("ternary") : scheme),
                                    "model.qat.group=8"};
      if (late) o.push_back("model.qat.start_step=100");
      models::qat::QatModel* qat = nullptr;
      const std::vector<double> losses = Losses(*ds, track, 32, o, &qat);
      EXPECT_NE(qat, nullptr) << track << " " << scheme;
      EXPECT_LT(Tail(losses), losses.front() - 1.0) << track << " " << scheme << " did not learn";
      std::printf("%s %s: last-20 mean loss %.4f (float32 %.4f; first %.4f)\n", track.c_str(), scheme.c_str(),
                  Tail(losses), Tail(base), losses.front());
      if (late) {
        EXPECT_EQ(std::vector<double>(losses.begin(), losses.begin() + 100),
                  std::vector<double>(base.begin(), base.begin() + 100));
        EXPECT_NE(losses[100], base[100]) << track;
      } else {
        EXPECT_NE(losses.front(), base.front()) << track << " " << scheme << ": the quantizers did not run";
      }
    }
  }
}

// With QAT from step 100, the steps before it run in `precision` and those from it in
// `qat_precision`: bf16 then fp32 gives the bf16 float run's first 100 losses bit for bit, and
// from step 100 on other losses than bf16 then bf16.
TEST(Trainer, QuantizationAwareStepsRunInQatPrecision) {
  TempDir t;
  auto ds = MakeDataset(t, 5);
  const std::vector<std::string> late = {"model.qat.scheme=ternary", "model.qat.group=8", "model.qat.start_step=100",
                                         "precision=bf16"};
  auto with = [&](const std::string& qat_precision) {
    std::vector<std::string> o = late;
    o.push_back("qat_precision=" + qat_precision);
    return Losses(*ds, "bitbyte_lm", 32, o);
  };
  const std::vector<double> float_bf16 = Losses(*ds, "bitbyte_lm", 32, {"precision=bf16"});
  const std::vector<double> then_fp32 = with("fp32"), then_bf16 = with("bf16");
  const auto first = [](const std::vector<double>& l) { return std::vector<double>(l.begin(), l.begin() + 100); };
  const auto rest = [](const std::vector<double>& l) { return std::vector<double>(l.begin() + 100, l.end()); };
  EXPECT_EQ(first(then_fp32), first(float_bf16));
  EXPECT_EQ(first(then_bf16), first(float_bf16));
  EXPECT_NE(then_fp32[100], then_bf16[100]) << "the quantization-aware step 100 ignored qat_precision";
  EXPECT_NE(rest(then_fp32), rest(then_bf16));
}

TEST(Trainer, RestoreRefusesAnotherArchitecture) {
  Trainer a(Tiny(10), torch::kCPU);
  pb::TrainConfig wider = Tiny(10);
  wider.mutable_model()->mutable_bitbyte_lm()->set_d_model(32);
  Trainer b(wider, torch::kCPU);
  try {
    b.Restore(*a.TakeSnapshot(true));
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("model/"), std::string::npos) << e.what();
  }
  EXPECT_THROW(b.Restore(*b.TakeSnapshot(false)), DataError);  // weights only: no optimizer state
}

TEST(Trainer, NonFiniteLossStopsWithoutApplyingTheStep) {
  TempDir t;
  auto ds = MakeDataset(t, 4);
  Trainer tr(Tiny(10), torch::kCPU);
  const BatchSampler s(*ds, 1, 4, 16);
  tr.Step(BatchFor(s, 0));
  {
    torch::NoGradGuard g;
    tr.model().parameters().front().fill_(INFINITY);
  }
  try {
    tr.Step(BatchFor(s, 1));
    FAIL();
  } catch (const NonFiniteLoss& e) {
    EXPECT_NE(std::string(e.what()).find("at step 2"), std::string::npos) << e.what();
  }
  EXPECT_EQ(tr.steps_done(), 1);
}

// A model whose logits are all equal: every byte costs exactly 8 bits.
class UniformModel : public models::ByteModel {
 public:
  torch::Tensor forward(const torch::Tensor& bytes) override {
    return torch::zeros({bytes.size(0), bytes.size(1), 256}) + bias_;
  }
  int64_t context() const override { return 16; }
  std::string Describe() const override { return "uniform"; }
  torch::Tensor bias_ = register_parameter("bias", torch::zeros({256}));
};

TEST(Evaluator, UniformModelScoresEightBitsAndCountsEveryByteOnce) {
  std::mt19937_64 rng(6);
  UniformModel m;
  for (int i = 0; i < 20; ++i) {
    std::vector<std::string> owned;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n; ++k) owned.push_back(testing::RandomBytes(rng, rng() % 80));
    std::vector<std::string_view> streams(owned.begin(), owned.end());
    uint64_t expect = 0;
    for (const auto& s : owned) expect += s.size() > 1 ? s.size() - 1 : 0;
    if (expect == 0) {  // no bpb over zero bytes (it used to be 0.0, which won `best`)
      EXPECT_THROW(EvaluateBpb(m, streams, 16, 1, torch::kCPU), InternalError);
      continue;
    }
    const EvalResult r = EvaluateBpb(m, streams, 16, 1 + static_cast<int>(rng() % 5), torch::kCPU);
    EXPECT_EQ(r.bytes, expect);
    EXPECT_EQ(PredictedBytes(streams), expect);
    if (expect > 0) {
      EXPECT_NEAR(r.bpb, 8.0, 1e-12);
    }
  }
}

// D8: an evaluation that predicts nothing is an error, never a bpb of 0.0.
TEST(Evaluator, NothingToPredictIsAnErrorNotZeroBpb) {
  UniformModel m;
  const std::string one = "x", empty;
  for (const std::vector<std::string_view>& streams :
       {std::vector<std::string_view>{one}, std::vector<std::string_view>{empty, one},
        std::vector<std::string_view>{}}) {
    try {
      const EvalResult r = EvaluateBpb(m, streams, 16, 4, torch::kCPU);
      ADD_FAILURE() << "no error; bpb " << r.bpb << " over " << r.bytes << " bytes";
    } catch (const InternalError& e) {
      EXPECT_NE(std::string(e.what()).find("no byte to predict"), std::string::npos) << e.what();
    }
  }
}

// The windows a trained model sees: the result must match scoring each byte from the bytes
// before it in its window, one window at a time, and not depend on the batch size.
TEST(Evaluator, MatchesAWindowByWindowReference) {
  torch::manual_seed(3);
  pb::TrainConfig c = Tiny(1);
  Trainer tr(c, torch::kCPU);
  models::ByteModel& m = tr.model();
  m.eval();
  std::mt19937_64 rng(7);
  const std::string text = testing::RandomBytes(rng, 100);
  const int64_t ctx = 16;
  double nats = 0;
  uint64_t bytes = 0;
  {
    torch::NoGradGuard g;
    for (size_t start = 0; start + 1 < text.size(); start += ctx) {
      const int64_t len = std::min<int64_t>(ctx, static_cast<int64_t>(text.size() - 1 - start));
      torch::Tensor x = torch::empty({1, len}, torch::kLong), y = torch::empty({1, len}, torch::kLong);
      for (int64_t j = 0; j < len; ++j) {
        x[0][j] = static_cast<uint8_t>(text[start + j]);
        y[0][j] = static_cast<uint8_t>(text[start + j + 1]);
      }
      const auto logp = torch::log_softmax(m.forward(x).to(torch::kDouble), -1);
      for (int64_t j = 0; j < len; ++j) nats -= logp[0][j][y[0][j].item<int64_t>()].item<double>();
      bytes += len;
    }
  }
  for (int batch : {1, 2, 5, 16}) {
    const EvalResult r = EvaluateBpb(m, {std::string_view(text)}, ctx, batch, torch::kCPU);
    EXPECT_EQ(r.bytes, bytes);
    EXPECT_NEAR(r.bpb, nats / std::log(2.0) / bytes, 1e-6) << "batch " << batch;
  }
}

}  // namespace
}  // namespace bitbyte::train
