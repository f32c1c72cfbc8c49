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

}  // namespace
}  // namespace bitbyte::train
