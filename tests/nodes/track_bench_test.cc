// bench tracks' figures and verdicts: statistics, the noise rule, the recommendation text, the
// summary of a run directory, and the document.
#include "nodes/track_bench.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sharding/error.h"

namespace bitbyte::train {
namespace {

TrackResult Track(const std::string& name, const std::vector<double>& bpb, double bytes_per_s, double rss = 500) {
  TrackResult t;
  t.name = name;
  t.model = "d_model: 8";
  t.params = 1000;
  t.steps = 8;
  t.bytes_per_step = 64;
  uint64_t seed = 0;
  for (double b : bpb) {
    TrackRun r;
    r.seed = ++seed;
    r.val_bpb = b;
    r.bytes_per_s = bytes_per_s;
    r.peak_rss_mib = rss;
    r.wall_s = 10;
    for (int64_t step : {2, 4, 6, 8}) {
      EvalRecord e;
      e.step = step;
      e.val_bpb = b + 0.1 * static_cast<double>(8 - step);
      e.elapsed_s = static_cast<double>(step) * 64 / bytes_per_s;
      r.curve.push_back(e);
    }
    t.runs.push_back(r);
  }
  return t;
}

TEST(TrackBench, SummariseIsShiftAndScaleEquivariant) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal(0, 1);
  for (int i = 0; i < 100; ++i) {
    std::vector<double> v(1 + rng() % 6);
    for (double& x : v) x = normal(rng);
    const double shift = normal(rng) * 10, scale = 0.5 + std::fabs(normal(rng));
    std::vector<double> w;
    for (double x : v) w.push_back(shift + scale * x);
    const MeanStd a = Summarise(v), b = Summarise(w);
    EXPECT_EQ(a.n, v.size());
    EXPECT_NEAR(b.mean, shift + scale * a.mean, 1e-9);
    EXPECT_NEAR(b.std, scale * a.std, 1e-9);
    if (v.size() < 2) EXPECT_EQ(a.std, 0);
  }
  EXPECT_EQ(Summarise({2.0, 2.0, 2.0}).std, 0);
  EXPECT_NEAR(Summarise({1.0, 2.0, 3.0}).std, 1.0, 1e-12);  // sample (n - 1) deviation
  EXPECT_EQ(Median({3, 1, 2}), 2);
  EXPECT_EQ(Median({4, 1, 2, 3}), 2.5);
}

TEST(TrackBench, GapIsClearOnlyBeyondTwiceTheStandardError) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal(0, 0.01);
  for (int i = 0; i < 200; ++i) {
    std::vector<double> a(3), b(3);
    const double shift = (static_cast<double>(rng() % 1000) / 1000.0 - 0.5) * 0.1;
    for (double& x : a) x = 1.5 + normal(rng);
    for (double& x : b) x = 1.5 + shift + normal(rng);
    const Gap g = CompareBpb(Track("a", a, 1), Track("b", b, 1));
    const MeanStd ma = Summarise(a), mb = Summarise(b);
    EXPECT_NEAR(g.delta, mb.mean - ma.mean, 1e-12);
    EXPECT_NEAR(g.noise, 2 * std::sqrt((ma.std * ma.std + mb.std * mb.std) / 3), 1e-12);
    EXPECT_TRUE(g.known);
    EXPECT_EQ(g.clear, std::fabs(g.delta) > g.noise);
  }
  const Gap one = CompareBpb(Track("a", {1.0}, 1), Track("b", {2.0}, 1));
  EXPECT_FALSE(one.known);
  EXPECT_FALSE(one.clear);  // a single seed never settles it
}

TEST(TrackBench, RecommendsTheClearWinner) {
  const std::string text = Recommend({Track("slow_good", {1.50, 1.51, 1.49}, 1000), Track("fast_bad", {1.80, 1.81, 1.79}, 3000)});
  EXPECT_NE(text.find("Recommendation: `slow_good`"), std::string::npos) << text;
  EXPECT_EQ(text.find("No track is better"), std::string::npos) << text;
  EXPECT_NE(text.find("0.33×"), std::string::npos) << text;  // its bytes/s against the other's
}

TEST(TrackBench, SaysPlainlyWhenWithinNoiseAndPrefersTheFaster) {
  const std::string text = Recommend({Track("a", {1.50, 1.60, 1.40}, 1000), Track("b", {1.52, 1.41, 1.62}, 2000)});
  EXPECT_NE(text.find("No track is better on val bpb"), std::string::npos) << text;
  EXPECT_NE(text.find("within noise"), std::string::npos) << text;
  EXPECT_NE(text.find("Recommendation: `b`"), std::string::npos) << text;
  const std::string single = Recommend({Track("a", {1.5}, 1000), Track("b", {1.9}, 500)});
  EXPECT_NE(single.find("single seed"), std::string::npos) << single;
}

TEST(TrackBench, SummariseRunTakesTheMedianStepAndTheLastEvaluation) {
  RunDirContents run;
  run.dir = "r";
  for (int64_t s = 1; s <= 20; ++s) {
    StepRecord r;
    r.step = s;
    r.step_wall_s = s <= 2 ? 100.0 : (s % 2 ? 0.5 : 0.25);  // the first tenth (slow warm-up) is left out
    run.steps.push_back(r);
  }
  EvalRecord last;
  last.step = 20;
  last.val_bpb = 1.25;
  run.evals = {last};
  const TrackRun r = SummariseRun(run, 20, 1000);
  EXPECT_DOUBLE_EQ(r.bytes_per_s, 1000 / 0.375);
  EXPECT_EQ(r.val_bpb, 1.25);
  EXPECT_THROW(SummariseRun(run, 21, 1000), Error);  // no evaluation at the last step: unfinished
  run.steps.clear();
  EXPECT_THROW(SummariseRun(run, 20, 1000), Error);
}

TEST(TrackBench, DocumentHasEveryRunCurveAndScalingPoint) {
  TracksReport r;
  r.command = "bitbyte bench tracks --data d";
  r.setup = {"Date today."};
  r.tracks = {Track("alpha", {1.5, 1.6}, 1000, 300), Track("beta", {1.7, 1.8}, 2000, 200)};
  r.scaling_bytes_per_step = 1024;
  for (int64_t len : {256, 512}) {
    ScalingPoint p;
    p.track = "alpha";
    p.seq_len = len;
    p.batch = 1024 / len;
    p.step_s = len / 256.0;
    p.bytes_per_s = 1024 / p.step_s;
    p.peak_rss_mib = 100;
    r.scaling.push_back(p);
    p.track = "beta";
    if (len == 512) p.failure = "failed: killed by signal 9 (out of memory?)";
    r.scaling.push_back(p);
  }
  const std::string md = TracksMarkdown(r);
  for (const std::string& want :
       {"bitbyte bench tracks --data d", "| `alpha` | 1,000 |", "1.5500 ± 0.0707", "| `beta` | 2 | 1.8000 |",
        "| `alpha` | 8 | 512 |", "At equal wall time", "## Recommendation", "| 512 | 2 |",
        "failed: killed by signal 9", "(∝ T^1.00)", "`beta`: too few points"})
    EXPECT_NE(md.find(want), std::string::npos) << "missing: " << want << "\n" << md;
}

}  // namespace
}  // namespace bitbyte::train
