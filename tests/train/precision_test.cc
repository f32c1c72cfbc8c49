// train.precision: explicit values are taken as given; "auto" measures once and reuses the
// measurement until what it depends on changes; a damaged cache is measured again.
#include "train/precision.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/file_io.h"
#include "tests/test_util.h"
#include "train/config.h"

namespace bitbyte::train {
namespace {

using testing::TempDir;

pb::TrainConfig Tiny() {
  pb::TrainConfig c;
  for (const char* s : {"model.bitbyte_lm.d_model=16", "model.bitbyte_lm.n_layer=1", "model.bitbyte_lm.n_head=2",
                        "model.bitbyte_lm.context=16", "data.seq_len=16", "data.batch_size=2"})
    ApplyOverride(c, s);
  FillDefaults(c);
  return c;
}

// BITBYTE_CACHE pointed at a fresh directory for the life of the object.
class CacheDir {
 public:
  CacheDir() {
    const char* old = std::getenv("BITBYTE_CACHE");
    had_ = old != nullptr;
    if (had_) old_ = old;
    ::setenv("BITBYTE_CACHE", (dir_ / "cache").c_str(), 1);
  }
  ~CacheDir() { had_ ? (void)::setenv("BITBYTE_CACHE", old_.c_str(), 1) : (void)::unsetenv("BITBYTE_CACHE"); }
  std::string file() const { return dir_ / ("cache/" + std::string(kPrecisionProbeFile)); }

 private:
  TempDir dir_;
  bool had_ = false;
  std::string old_;
};

TEST(Precision, ExplicitValuesAreTakenAsGivenWithoutAProbe) {
  CacheDir cache;
  for (const char* p : {"fp32", "bf16"}) {
    pb::TrainConfig c = Tiny();
    c.set_precision(p);
    const PrecisionChoice r = ResolvePrecision(c, torch::kCPU, 1);
    EXPECT_EQ(r.precision, p);
    EXPECT_EQ(r.chosen_by, "config");
  }
  EXPECT_FALSE(io::Posix().Exists(cache.file()));
}

TEST(Precision, AutoMeasuresOnceThenReusesUntilTheKeyChanges) {
  CacheDir cache;
  const pb::TrainConfig c = Tiny();
  ASSERT_EQ(c.precision(), "auto");  // the default
  const PrecisionChoice first = ResolvePrecision(c, torch::kCPU, 1);
  EXPECT_EQ(first.chosen_by, "probe");
  EXPECT_GT(first.fp32_s, 0);
  EXPECT_GT(first.bf16_s, 0);
  EXPECT_EQ(first.precision, first.fp32_s >= kBf16Margin * first.bf16_s ? "bf16" : "fp32");
  ASSERT_TRUE(io::Posix().Exists(cache.file()));

  const PrecisionChoice again = ResolvePrecision(c, torch::kCPU, 1);
  EXPECT_EQ(again.chosen_by, "cached probe");
  EXPECT_EQ(again.precision, first.precision);
  EXPECT_EQ(again.fp32_s, first.fp32_s);
  EXPECT_EQ(again.bf16_s, first.bf16_s);

  // Another thread count, batch shape or model is measured again, next to the first entry.
  pb::TrainConfig wider = c;
  wider.mutable_model()->mutable_bitbyte_lm()->set_d_model(32);
  pb::TrainConfig bigger = c;
  bigger.mutable_data()->set_batch_size(3);
  EXPECT_EQ(ResolvePrecision(c, torch::kCPU, 2).chosen_by, "probe");
  EXPECT_EQ(ResolvePrecision(wider, torch::kCPU, 1).chosen_by, "probe");
  EXPECT_EQ(ResolvePrecision(bigger, torch::kCPU, 1).chosen_by, "probe");
  const auto j = nlohmann::json::parse(io::ReadFile(io::Posix(), cache.file()));
  EXPECT_EQ(j.size(), 4u);
  EXPECT_EQ(ResolvePrecision(c, torch::kCPU, 1).chosen_by, "cached probe");

  // The cached choice, not a new measurement, decides: edit the cache and the choice follows.
  auto edited = j;
  for (auto& [key, entry] : edited.items()) entry["bf16_s"] = entry["fp32_s"].get<double>() / 2;
  io::WriteFileAtomic(io::Posix(), cache.file(), edited.dump());
  EXPECT_EQ(ResolvePrecision(c, torch::kCPU, 1).precision, "bf16");
  for (auto& [key, entry] : edited.items()) entry["bf16_s"] = entry["fp32_s"].get<double>() * 2;
  io::WriteFileAtomic(io::Posix(), cache.file(), edited.dump());
  EXPECT_EQ(ResolvePrecision(c, torch::kCPU, 1).precision, "fp32");
}

TEST(Precision, ADamagedCacheIsMeasuredAgainAndRewritten) {
  CacheDir cache;
  const pb::TrainConfig c = Tiny();
  io::Posix().CreateDirs(io::DirName(cache.file()));
  for (const char* damaged : {"{not json", "[1, 2]", "{\"x\": 1}"}) {
    io::WriteFileAtomic(io::Posix(), cache.file(), damaged);
    EXPECT_EQ(ResolvePrecision(c, torch::kCPU, 1).chosen_by, "probe") << damaged;
    EXPECT_EQ(ResolvePrecision(c, torch::kCPU, 1).chosen_by, "cached probe") << damaged;
  }
}

// With QAT starting later, the float steps are probed on the model without QAT (the entry a run
// without QAT uses) and the quantization-aware ones on the quantized model; each phase follows
// its own cached measurement. From step 0 every step is quantization-aware: one probe.
TEST(Precision, QuantizationAwareStepsAreProbedApartFromTheFloatOnes) {
  CacheDir cache;
  const pb::TrainConfig plain = Tiny();
  pb::TrainConfig late = plain;
  ApplyOverride(late, "model.qat.scheme=ternary");
  ApplyOverride(late, "model.qat.start_step=10");
  ASSERT_EQ(late.qat_precision(), "auto");  // the default

  const PhasePrecisions none = ResolvePhasePrecisions(plain, torch::kCPU, 1);
  EXPECT_FALSE(none.has_qat);
  EXPECT_EQ(none.qat.precision, none.fp.precision);
  EXPECT_EQ(nlohmann::json::parse(io::ReadFile(io::Posix(), cache.file())).size(), 1u);

  const PhasePrecisions r = ResolvePhasePrecisions(late, torch::kCPU, 1);
  EXPECT_TRUE(r.has_qat);
  EXPECT_EQ(r.fp.chosen_by, "cached probe");  // the plain model's entry
  EXPECT_EQ(r.fp.fp32_s, none.fp.fp32_s);
  EXPECT_EQ(r.qat.chosen_by, "probe");  // the quantized model's, new
  auto j = nlohmann::json::parse(io::ReadFile(io::Posix(), cache.file()));
  ASSERT_EQ(j.size(), 2u);
  EXPECT_NE(r.Describe().find("; quantization-aware steps: "), std::string::npos) << r.Describe();

  // Each phase follows its own entry: make them disagree, both ways.
  for (const bool float_bf16 : {true, false}) {
    for (auto& [key, e] : j.items()) {
      const bool is_float = e["fp32_s"].get<double>() == none.fp.fp32_s;
      e["bf16_s"] = e["fp32_s"].get<double>() * (is_float == float_bf16 ? 0.5 : 2.0);
    }
    io::WriteFileAtomic(io::Posix(), cache.file(), j.dump());
    const PhasePrecisions e = ResolvePhasePrecisions(late, torch::kCPU, 1);
    EXPECT_EQ(e.fp.precision, float_bf16 ? "bf16" : "fp32");
    EXPECT_EQ(e.qat.precision, float_bf16 ? "fp32" : "bf16");
  }

  // Given values are taken as given, phase by phase.
  pb::TrainConfig given = late;
  given.set_qat_precision("bf16");
  EXPECT_EQ(ResolvePhasePrecisions(given, torch::kCPU, 1).qat.chosen_by, "config");
  EXPECT_EQ(ResolvePhasePrecisions(given, torch::kCPU, 1).qat.precision, "bf16");

  // QAT from step 0: "auto" precision follows the quantization-aware steps, without a probe of
  // the float model.
  CacheDir fresh;
  pb::TrainConfig from0 = late;
  ApplyOverride(from0, "model.qat.start_step=0");
  const PhasePrecisions z = ResolvePhasePrecisions(from0, torch::kCPU, 1);
  EXPECT_EQ(z.fp.precision, z.qat.precision);
  EXPECT_EQ(z.fp.chosen_by, "qat");
  EXPECT_EQ(nlohmann::json::parse(io::ReadFile(io::Posix(), fresh.file())).size(), 1u);
}

}  // namespace
}  // namespace bitbyte::train
