// Quantized checkpoints (train/quantized_checkpoint.h): written and read back, the model gives the
// logits of the in-memory quantized model exactly; every byte flip and truncation of its files is
// detected; a quantized checkpoint does not resume training; one that does not fit its model is
// a DataError.
#include "train/quantized_checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <iterator>
#include <string>

#include "base/error.h"
#include "base/file_io.h"
#include "models/registry.h"
#include "tests/test_util.h"
#include "train/config.h"
#include "train/trainer.h"

namespace bitbyte::train {
namespace {

using testing::TempDir;

pb::TrainConfig Tiny(const std::string& track) {
  pb::TrainConfig c;
  ApplyOverride(c, "model.name=" + track);
  for (const std::string& s :
       track == "bitbyte_lm" ? std::vector<std::string>{"model.bitbyte_lm.d_model=16", "model.bitbyte_lm.n_layer=2",
                                                        "model.bitbyte_lm.n_head=2", "model.bitbyte_lm.context=16"}
                             : std::vector<std::string>{"model.mamba_mlm.d_model=16", "model.mamba_mlm.n_layer=2"})
    ApplyOverride(c, s);
  for (const char* s : {"data.seq_len=16", "data.batch_size=4", "precision=fp32"}) ApplyOverride(c, s);
  c.set_steps(3);
  FillDefaults(c);
  ValidateConfig(c);
  return c;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

models::quant::QuantizeOptions Int4(int64_t group, const models::quant::Calibrator* calibration = nullptr) {
  models::quant::QuantizeOptions o;
  o.scheme = models::quant::Scheme::kInt4;
  o.group = group;
  o.calibration = calibration;
  return o;
}

// A quantized checkpoint of a freshly initialised model of `c`.
Snapshot QuantizedTiny(const pb::TrainConfig& c, const models::quant::QuantizeOptions& o = {}) {
  Trainer trainer(c, torch::kCPU);
  const std::shared_ptr<Snapshot> source = trainer.TakeSnapshot(false);
  std::shared_ptr<models::ByteModel> model = ModelFromSnapshot(*source, c.model(), torch::kCPU);
  const models::quant::QuantizedModel q(*model, o);
  return QuantizedSnapshot(*model, q, *source);
}

// `snap`, written and read back, gives the logits `want` of the in-memory quantized model exactly,
// is under a third of the training checkpoint `source`, and does not resume training.
void RoundTrip(const pb::TrainConfig& c, const Snapshot& source, const Snapshot& snap, const torch::Tensor& bytes,
               const torch::Tensor& want, bool static_scales) {
  const std::string track = c.model().name();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(QuantScheme(source), "");
  TempDir t;
  const std::string dir = WriteCheckpoint(io::Default(), t.path(), snap);
  const Snapshot read = ReadCheckpoint(io::Default(), dir);
  EXPECT_EQ(read.step, source.step);
  std::unique_ptr<models::quant::QuantizedModel> q2;
  std::shared_ptr<models::ByteModel> loaded = ModelFromQuantizedSnapshot(read, c.model(), &q2);
  ASSERT_NE(q2, nullptr);
  EXPECT_TRUE(torch::equal(loaded->forward(bytes), want)) << track << " " << QuantScheme(snap);
  uint64_t quantized = 0, full = 0;
  for (const TensorBlob& b : read.tensors) quantized += b.data.size();
  for (const TensorBlob& b : source.tensors) full += b.data.size();
  EXPECT_LT(quantized, full / 3) << track << ": no smaller than a third of the training checkpoint";
  for (size_t i = 0; i < q2->layers().size(); ++i) EXPECT_EQ(q2->form(i).act_scale > 0, static_scales) << track;
  // Not a training checkpoint.
  Trainer again(c, torch::kCPU);
  try {
    again.Restore(read);
    ADD_FAILURE() << "a quantized checkpoint resumed training";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("quantized"), std::string::npos) << e.what();
  }
}

TEST(QuantizedCheckpoint, RoundTripGivesTheQuantizedModelsLogitsExactly) {
  for (const char* track : {"bitbyte_lm", "mamba_mlm"}) {
    const pb::TrainConfig c = Tiny(track);
    Trainer trainer(c, torch::kCPU);
    const std::shared_ptr<Snapshot> source = trainer.TakeSnapshot(/*with_optimizer=*/true);
    std::shared_ptr<models::ByteModel> model = ModelFromSnapshot(*source, c.model(), torch::kCPU);
    torch::NoGradGuard no_grad;
    const torch::Tensor bytes = torch::randint(256, {2, 16}, torch::kLong);
    for (const bool calibrated : {false, true}) {
      torch::Tensor want;
      Snapshot snap;
      {
        // Static activation scales from a calibration on other bytes, or dynamic ones.
        std::unique_ptr<models::quant::Calibrator> calibration;
        if (calibrated) {
          calibration = std::make_unique<models::quant::Calibrator>(*model, models::quant::QuantizeOptions{});
          model->forward(torch::randint(256, {4, 16}, torch::kLong));
        }
        const models::quant::QuantizedModel q(*model, models::quant::QuantizeOptions{false, calibration.get()});
        calibration.reset();
        EXPECT_EQ(q.form(0).act_scale > 0, calibrated);
        want = model->forward(bytes);
        snap = QuantizedSnapshot(*model, q, *source);
      }
      EXPECT_EQ(QuantScheme(snap), "int8");
      RoundTrip(c, *source, snap, bytes, want, calibrated);
    }
    // int4, rounded to nearest and by GPTQ, groups of 8 (the tiny model has 16 inputs a layer).
    for (const bool calibrated : {false, true}) {
      torch::Tensor want;
      Snapshot snap;
      {
        std::unique_ptr<models::quant::Calibrator> calibration;
        if (calibrated) {
          calibration = std::make_unique<models::quant::Calibrator>(*model, Int4(8));
          model->forward(torch::randint(256, {4, 16}, torch::kLong));
        }
        const models::quant::QuantizedModel q(*model, Int4(8, calibration.get()));
        calibration.reset();
        want = model->forward(bytes);
        snap = QuantizedSnapshot(*model, q, *source);
      }
      EXPECT_EQ(QuantScheme(snap), "int4");
      RoundTrip(c, *source, snap, bytes, want, false);
    }
    // ternary, gamma per tensor and per output channel.
    for (const bool per_channel : {false, true}) {
      torch::Tensor want;
      Snapshot snap;
      {
        models::quant::QuantizeOptions o{false, nullptr, models::quant::Scheme::kTernary};
        o.per_channel = per_channel;
        const models::quant::QuantizedModel q(*model, o);
        want = model->forward(bytes);
        snap = QuantizedSnapshot(*model, q, *source);
      }
      EXPECT_EQ(QuantScheme(snap), "ternary");
      RoundTrip(c, *source, snap, bytes, want, false);
    }
  }
}

TEST(QuantizedCheckpoint, EveryByteFlipAndTruncationIsDetected) {
  pb::TrainConfig c = Tiny("bitbyte_lm");
  c.mutable_model()->mutable_bitbyte_lm()->set_d_model(4);  // small files: every byte is tried
  c.mutable_model()->mutable_bitbyte_lm()->set_n_head(1);
  for (const auto& o : {models::quant::QuantizeOptions{}, Int4(2)}) {
    const Snapshot snap = QuantizedTiny(c, o);
    TempDir t;
    const std::string dir = WriteCheckpoint(io::Default(), t.path(), snap);
    for (const char* file : {"tensors.bin", "meta.pb", "COMMIT"}) {
      const std::string path = dir + "/" + file, good = Slurp(path);
      ASSERT_FALSE(good.empty()) << file;
      int undetected = 0;
      for (size_t i = 0; i < good.size(); ++i) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ 0x5a);
        testing::WriteFile(path, bad);
        try {
          ReadCheckpoint(io::Default(), dir);
          ++undetected;
        } catch (const DataError&) {
        }
      }
      for (size_t n = 0; n < good.size(); ++n) {
        testing::WriteFile(path, good.substr(0, n));
        try {
          ReadCheckpoint(io::Default(), dir);
          ++undetected;
        } catch (const DataError&) {
        }
      }
      testing::WriteFile(path, good);
      EXPECT_EQ(undetected, 0) << file << " " << QuantScheme(snap);
    }
    EXPECT_NO_THROW(ReadCheckpoint(io::Default(), dir));
  }
}

TEST(QuantizedCheckpoint, ACheckpointThatDoesNotFitItsModelIsADataError) {
  const pb::TrainConfig c = Tiny("bitbyte_lm");
  const Snapshot snap = QuantizedTiny(c);
  std::unique_ptr<models::quant::QuantizedModel> q;
  // A scale missing, a tensor of the wrong shape, another scheme, another model.
  Snapshot no_scale = snap;
  no_scale.tensors.erase(std::find_if(no_scale.tensors.begin(), no_scale.tensors.end(),
                                      [](const TensorBlob& b) { return b.name.find(".scale") != std::string::npos; }));
  EXPECT_THROW(ModelFromQuantizedSnapshot(no_scale, c.model(), &q), DataError);
  Snapshot other = snap;
  other.blobs = {{kQuantSchemeBlob, "int3"}};
  EXPECT_THROW(ModelFromQuantizedSnapshot(other, c.model(), &q), DataError);
  // int4: the group size missing or not one the tensors fit, a zero point beyond 15.
  const Snapshot snap4 = QuantizedTiny(c, Int4(8));
  EXPECT_EQ(*snap4.FindBlob(kQuantGroupBlob), "8");
  EXPECT_NO_THROW(ModelFromQuantizedSnapshot(snap4, c.model(), &q));
  q.reset();
  for (const char* group : {"", "4", "7", "x8", "0"}) {
    Snapshot bad = snap4;
    for (auto& [name, value] : bad.blobs)
      if (name == kQuantGroupBlob) value = group;
    EXPECT_THROW(ModelFromQuantizedSnapshot(bad, c.model(), &q), DataError) << "group '" << group << "'";
  }
  Snapshot no_group = snap4;
  no_group.blobs = {{kQuantSchemeBlob, "int4"}};
  EXPECT_THROW(ModelFromQuantizedSnapshot(no_group, c.model(), &q), DataError);
  Snapshot bad_zero = snap4;
  for (TensorBlob& b : bad_zero.tensors)
    if (b.name.size() > 5 && b.name.compare(b.name.size() - 5, 5, ".zero") == 0) b.data[0] = 16;
  EXPECT_THROW(ModelFromQuantizedSnapshot(bad_zero, c.model(), &q), DataError);
  pb::TrainConfig wider = c;
  wider.mutable_model()->mutable_bitbyte_lm()->set_d_model(32);
  EXPECT_THROW(ModelFromQuantizedSnapshot(snap, wider.model(), &q), DataError);
  // ternary: a 2-bit code 3 (no ternary value) is named with its byte.
  const Snapshot snap2 =
      QuantizedTiny(c, models::quant::QuantizeOptions{false, nullptr, models::quant::Scheme::kTernary});
  EXPECT_NO_THROW(ModelFromQuantizedSnapshot(snap2, c.model(), &q));
  q.reset();
  Snapshot bad_code = snap2;
  for (TensorBlob& b : bad_code.tensors)
    if (b.name.size() > 3 && b.name.compare(b.name.size() - 3, 3, ".q2") == 0) {
      b.data[3] = static_cast<char>(b.data[3] | 0x30);
      break;
    }
  try {
    ModelFromQuantizedSnapshot(bad_code, c.model(), &q);
    ADD_FAILURE() << "code 3 read as a ternary weight";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(".q2': byte 3 "), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace bitbyte::train
