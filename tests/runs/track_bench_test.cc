// bench tracks' figures and verdicts: statistics, the noise rule, the recommendation text, the
// summary of a run directory, and the document.
#include "runs/track_bench.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "base/error.h"
#include "base/numbers.h"

namespace bitbyte::runs {
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
    if (v.size() < 2) {
      EXPECT_EQ(a.std, 0);
    }
  }
  EXPECT_EQ(Summarise({2.0, 2.0, 2.0}).std, 0);
  EXPECT_NEAR(Summarise({1.0, 2.0, 3.0}).std, 1.0, 1e-12);  // sample (n - 1) deviation
}

TEST(TrackBench, TwoSidedQuantiles) {
  EXPECT_NEAR(TwoSided95(1), 12.706, 1e-3);
  EXPECT_NEAR(TwoSided95(2), 4.303, 1e-3);
  EXPECT_NEAR(TwoSided95(30), 2.042, 1e-3);
  EXPECT_NEAR(TwoSided95(120), 1.980, 2e-3);
  for (size_t df = 1; df < 500; ++df) {
    EXPECT_GT(TwoSided95(df), TwoSided95(df + 1)) << df;
    EXPECT_GT(TwoSided95(df), 1.96) << df;
  }
}

// Pairing by seed: a seed effect shared by both tracks (the same batches) cancels out.
TEST(TrackBench, GapPairsBySeed) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> seed_effect(0, 0.2), jitter(0, 0.001);
  for (int i = 0; i < 200; ++i) {
    const size_t n = 2 + rng() % 5;
    const double offset = (rng() % 2 ? 1 : -1) * (0.01 + static_cast<double>(rng() % 100) / 1000.0);
    std::vector<double> a, b, flip;
    for (size_t k = 0; k < n; ++k) {
      const double base = 1.5 + seed_effect(rng);
      a.push_back(base);
      b.push_back(base + offset + jitter(rng));
      flip.push_back(base + (k % 2 ? offset : -offset));  // offsets that cancel
    }
    const Gap g = CompareBpb(Track("a", a, 1), Track("b", b, 1));
    EXPECT_TRUE(g.known);
    EXPECT_EQ(g.seeds, n);
    EXPECT_TRUE(g.clear) << "a consistent offset of " << offset << " over " << n << " seeds";
    const Gap back = CompareBpb(Track("b", b, 1), Track("a", a, 1));
    EXPECT_NEAR(back.delta, -g.delta, 1e-12);
    EXPECT_NEAR(back.noise, g.noise, 1e-12);
    if (n % 2 == 0) {
      EXPECT_FALSE(CompareBpb(Track("a", a, 1), Track("f", flip, 1)).clear) << n;
    }
  }
  // d = {0.3, -0.1, 0.1}: mean 0.1, sd 0.2, half-width 4.303 * 0.2 / sqrt(3) = 0.497.
  const Gap wide = CompareBpb(Track("a", {1, 1, 1}, 1), Track("b", {1.3, 0.9, 1.1}, 1));
  EXPECT_NEAR(wide.delta, 0.1, 1e-12);
  EXPECT_NEAR(wide.noise, 4.303 * 0.2 / std::sqrt(3.0), 1e-9);
  EXPECT_FALSE(wide.clear);
  // Only the seeds both have are paired.
  TrackResult partial = Track("b", {1.2, 1.3, 1.4}, 1);
  partial.runs.erase(partial.runs.begin());  // seeds 2, 3
  const Gap common = CompareBpb(Track("a", {1.0, 1.0, 1.0}, 1), partial);
  EXPECT_EQ(common.seeds, 2u);
  EXPECT_NEAR(common.delta, 0.35, 1e-12);
  const Gap one = CompareBpb(Track("a", {1.0}, 1), Track("b", {2.0}, 1));
  EXPECT_FALSE(one.known);
  EXPECT_FALSE(one.clear);  // a single seed never settles it
}

TEST(TrackBench, RecommendsTheClearWinner) {
  const std::string text =
      Recommend({Track("slow_good", {1.50, 1.51, 1.49}, 1000), Track("fast_bad", {1.80, 1.81, 1.79}, 3000),
                 Track("worse", {1.9, 1.9, 2.0}, 100)});
  EXPECT_NE(text.find("Recommendation: `slow_good`"), std::string::npos) << text;
  EXPECT_NE(text.find("beyond noise: the 95% confidence"), std::string::npos) << text;
  EXPECT_NE(text.find("0.33×"), std::string::npos) << text;  // its bytes/s against fast_bad's
  EXPECT_NE(text.find("`worse` +0.4333"), std::string::npos) << text;
  EXPECT_EQ(text.find("within noise"), std::string::npos) << text;
}

// The lowest mean is recommended whatever the noise; within noise it says the seeds do not
// separate them, and never calls the tracks equal or picks the faster one "at equal quality".
TEST(TrackBench, WithinNoiseIsNotSeparatedNeverEqual) {
  const std::string text = Recommend({Track("a", {1.50, 1.60, 1.40}, 1000), Track("b", {1.52, 1.41, 1.62}, 2000)});
  EXPECT_NE(text.find("Recommendation: `a`"), std::string::npos) << text;
  EXPECT_NE(text.find("within noise, not separated"), std::string::npos) << text;
  EXPECT_NE(text.find("does not make them equal"), std::string::npos) << text;
  for (const char* banned : {"level", "equal quality", "are equal"})
    EXPECT_EQ(text.find(banned), std::string::npos) << banned << ": " << text;
}

// One seed: the gap as measured, and a plain statement that its significance cannot be judged,
// however large or small the gap (the case: 0.48 bpb behind, and twice as fast).
TEST(TrackBench, OneSeedStatesTheGapAndCannotJudge) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> bpb(1.0, 3.0), speed(100, 10000);
  for (int trial = 0; trial < 50; ++trial) {
    const double x = bpb(rng), y = bpb(rng), sx = speed(rng), sy = speed(rng);
    const std::string text = Recommend({Track("x", {x}, sx), Track("y", {y}, sy)});
    const std::string best = x <= y ? "x" : "y", other = x <= y ? "y" : "x";
    EXPECT_NE(text.find("Recommendation: `" + best + "`"), std::string::npos) << text;
    EXPECT_NE(text.find("`" + other + "` " + FormatDouble("%+.4f", std::fabs(x - y)) + " bpb (one seed"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("cannot be judged"), std::string::npos) << text;
    EXPECT_EQ(text.find("equal quality"), std::string::npos) << text;
    EXPECT_EQ(text.find("beyond noise"), std::string::npos) << text;
  }
}

// Every other track is listed with its own verdict, in order of val bpb.
TEST(TrackBench, EachGapHasItsOwnVerdict) {
  const std::string text = Recommend({Track("a", {1.50, 1.52, 1.48}, 1000), Track("b", {1.53, 1.55, 1.51}, 1000),
                                      Track("c", {1.40, 1.75, 1.56}, 3000)});
  EXPECT_NE(text.find("Recommendation: `a`"), std::string::npos) << text;  // lowest mean; c's is 1.57
  EXPECT_NE(text.find("`b` +0.0300 bpb (95% interval ±0.0000 over 3 seeds: behind, beyond noise)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("`c` +0.0700 bpb (95% interval ±0.4105 over 3 seeds: within noise, not separated)"),
            std::string::npos)
      << text;
  EXPECT_LT(text.find("`b` "), text.find("`c` ")) << text;
}

TEST(TrackBench, SweepPicksTheLowestFiniteAndKnowsItsEdges) {
  TrackSweep sw;
  for (double lr : {1e-3, 2e-3, 4e-3}) sw.points.push_back({lr, 2.0, ""});
  sw.points[1].val_bpb = 1.9;
  EXPECT_EQ(sw.Best(), &sw.points[1]);
  EXPECT_FALSE(sw.AtEdge());
  sw.points[2].val_bpb = 1.8;
  EXPECT_TRUE(sw.AtEdge());
  sw.points[2].val_bpb = std::nan("");  // diverged: never chosen
  sw.points[2].failure = "exit status 1";
  EXPECT_EQ(sw.Best(), &sw.points[1]);
  for (auto& p : sw.points) p.val_bpb = std::nan("");
  EXPECT_EQ(sw.Best(), nullptr);
  EXPECT_FALSE(sw.AtEdge());
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
  // The curve's time is the training time before the evaluation: the sum of the steps' walls.
  EXPECT_DOUBLE_EQ(r.curve.back().elapsed_s, 200 + 9 * 0.5 + 9 * 0.25);
  // A resumed run replays the steps after its checkpoint: each step counts once (its last
  // record), the same figures as the uninterrupted run.
  {
    RunDirContents resumed = run;
    for (int64_t s = 11; s <= 20; ++s) resumed.steps.push_back(run.steps[static_cast<size_t>(s - 1)]);
    const TrackRun again = SummariseRun(resumed, 20, 1000);
    EXPECT_DOUBLE_EQ(again.curve.back().elapsed_s, r.curve.back().elapsed_s);
    EXPECT_DOUBLE_EQ(again.bytes_per_s, r.bytes_per_s);
  }
  // Steps that overlap an evaluation (it shares the cores) are left out too.
  {
    RunDirContents slow = run;
    double t = 0;
    for (StepRecord& st : slow.steps) {
      if (st.step > 2 && st.step <= 14) st.step_wall_s = 2.0;  // slowed by the evaluation below
      t += st.step_wall_s;
      st.elapsed_s = t;
    }
    EvalRecord during;  // ran from the end of step 2 to the end of step 14
    during.step = 2;
    during.elapsed_s = slow.steps[13].elapsed_s;
    during.eval_s = during.elapsed_s - slow.steps[1].elapsed_s - 0.01;
    slow.evals.insert(slow.evals.begin(), during);
    EXPECT_DOUBLE_EQ(SummariseRun(slow, 20, 1000).bytes_per_s, 1000 / 0.375);
  }
  EXPECT_EQ(r.val_bpb, 1.25);
  EXPECT_THROW(SummariseRun(run, 21, 1000), Error);  // no evaluation at the last step: unfinished
  run.steps.clear();
  EXPECT_THROW(SummariseRun(run, 20, 1000), Error);
}

TEST(TrackBench, DocumentHasEveryRunCurveAndScalingPoint) {
  TracksReport r;
  r.command = "bitbyte bench tracks --data d";
  r.setup = {"Date today."};
  BudgetResult b;
  b.label = "8 steps per run";
  b.tracks = {Track("alpha", {1.5, 1.6}, 1000, 300), Track("beta", {1.7, 1.8}, 2000, 200)};
  b.variants_of = "alpha";
  b.variants = {Track("alpha int8 PTQ", {1.51, 1.62}, 1000, 300)};
  r.budgets = {b};
  TrackSweep sw;
  sw.track = "alpha";
  sw.steps = 2;
  sw.points = {{0.001, 2.5, ""}, {0.002, 2.4, ""}, {0.004, std::nan(""), "exit status 1 — non-finite loss"}};
  r.sweeps = {sw};
  r.sweep_budget = "2 steps";
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
  for (const char* want :
       {"bitbyte bench tracks --data d", "| `alpha` | 1,000 |", "1.5500 ± 0.0707", "| `beta` | 2 | 1.8000 |",
        "| `alpha` | 8 | 512 |", "At equal training time", "### Recommendation at this budget",
        "| `alpha` | 2 | 0.002 | 2.4000 | **chosen** |", "failed: exit status 1 — non-finite loss",
        "| `alpha int8 PTQ` | 1.5650 ± 0.0778 | +0.0150 ± 0.0635 (95%) |", "## Budget: 8 steps per run",
        "**In short:**", "| 512 | 2 |", "failed: killed by signal 9", "(∝ T^1.00)", "`beta`: too few points"})
    EXPECT_NE(md.find(want), std::string::npos) << "missing: " << want << "\n" << md;
  // The charts: one line per track and variant, the variant dashed.
  for (bool by_time : {false, true}) {
    const std::string svg = CurvesSvg(b, by_time);
    size_t lines = 0;
    for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++lines;
    EXPECT_EQ(lines, 3u) << svg;
    EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
    EXPECT_NE(svg.find(by_time ? "training time (minutes)" : "bytes seen (MB)"), std::string::npos);
  }
  // Time per byte comes from bytes/s, not from the step time: here the step time is flat but
  // the longer sequence trains on twice the bytes per step (batch 1 at both lengths).
  r.scaling.clear();
  for (int64_t len : {256, 512}) {
    ScalingPoint p;
    p.track = "gamma";
    p.seq_len = len;
    p.batch = 1;
    p.step_s = 1;
    p.bytes_per_s = static_cast<double>(len);
    r.scaling.push_back(p);
  }
  const std::string flat = TracksMarkdown(r);
  EXPECT_NE(flat.find("time per byte ×0.50 (∝ T^-1.00)"), std::string::npos) << flat;
}

}  // namespace
}  // namespace bitbyte::runs
