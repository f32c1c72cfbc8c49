#pragma once
// The figures and the document of `bitbyte bench tracks` (docs/tracks.md): every track trained
// at a matched parameter count on the same data, seeds and budget, compared on val bpb (mean and
// spread over seeds), throughput and peak memory, plus how step time and memory grow with the
// sequence length. The CLI runs the trainings as child processes and hands their run
// directories here. Torch-free.
#include <cstdint>
#include <string>
#include <vector>

#include "runs/run_dir.h"

namespace bitbyte::runs {

struct MeanStd {
  double mean = 0, std = 0;  // std: sample standard deviation (n - 1); 0 for fewer than two values
  size_t n = 0;
};
MeanStd Summarise(const std::vector<double>& v);

// One training run of one track.
struct TrackRun {
  uint64_t seed = 0;
  double val_bpb = 0;       // the evaluation after the last step
  double bytes_per_s = 0;   // bytes per step / the median wall time of a timed step
  double peak_rss_mib = 0;  // the training process's RSS high-water mark
  double wall_s = 0;        // the training process, start to exit (summed over its parts when resumed)
  bool resumed = false;     // the run was interrupted and continued from a checkpoint
  // Every evaluation, in step order; elapsed_s is the training time up to it: the sum of the wall
  // times of the steps before it (so a resumed run's curve does not restart at 0).
  std::vector<EvalRecord> curve;
};
// The figures of a finished run directory. Steps that overlap an evaluation (which runs beside
// training on its own threads) are left out of the timing, as is the first tenth of the steps.
// A step logged twice (replayed after a resume) counts once, its last record. Throws
// bitbyte::Error when no timed step is left or there is no evaluation at `steps` (the run did not
// finish).
TrackRun SummariseRun(const RunDirContents& run, int64_t steps, uint64_t bytes_per_step);

struct TrackResult {
  std::string name;   // registry name (or, for a variant, "<track> <variant>")
  std::string model;  // the sizes that differ between tracks, one line
  int64_t params = 0, steps = 0;
  uint64_t bytes_per_step = 0;
  double lr = 0;               // the peak learning rate its runs used
  std::vector<TrackRun> runs;  // one per seed, in seed order
};

// One run of a learning-rate sweep.
struct SweepPoint {
  double lr = 0;
  double val_bpb = 0;   // NaN when the run failed (diverged: a non-finite loss stops training)
  std::string failure;  // why it failed, one line
};
struct TrackSweep {
  std::string track;
  int64_t steps = 0;
  std::vector<SweepPoint> points;  // in learning-rate order
  // The chosen point: the lowest val bpb (NaN: none finished). Edge: it is the smallest or the
  // largest rate tried, so a rate beyond the grid might do better.
  const SweepPoint* Best() const;
  bool AtEdge() const;
};

// Two tracks' val bpb, paired by seed: seed s gives every track the same batches, so the
// per-seed differences d_s = b_s - a_s are compared. The gap is beyond noise when the 95%
// confidence interval of their mean, mean(d) ± t(0.975, n-1) · sd(d) / sqrt(n), excludes 0.
// Needs two or more seeds common to both.
struct Gap {
  double delta = 0;    // mean of b - a over the common seeds
  double noise = 0;    // the interval's half-width; 0 when it cannot be told
  size_t seeds = 0;    // seeds common to both
  bool known = false;  // seeds >= 2
  bool clear = false;  // known and |delta| > noise
};
Gap CompareBpb(const TrackResult& a, const TrackResult& b);

// Student's t quantile t(0.975, df): the two-sided 95% critical value (df >= 1).
double TwoSided95(size_t df);

// The recommendation paragraph (markdown): always the track with the lowest mean val bpb, then,
// for each other track, its gap and whether that gap is beyond noise (the seeds' 95% interval),
// within it (not separated: never called equal), or cannot be judged (one seed).
std::string Recommend(const std::vector<TrackResult>& tracks);

// One measurement of step time and memory at one sequence length.
struct ScalingPoint {
  std::string track;
  int64_t seq_len = 0, batch = 0, params = 0;
  double step_s = 0, bytes_per_s = 0, peak_rss_mib = 0;
  std::string failure;  // non-empty: the run failed (e.g. killed for memory); figures unset
};

// The tracks compared at one training budget, and the quantized variants of its best track.
struct BudgetResult {
  std::string label;  // "10 minutes per run", "4M bytes per run"
  std::vector<TrackResult> tracks;
  // Variants of one track (named "<track> int8 PTQ", "<track> ternary QAT"), compared with it
  // seed by seed; empty when none were run at this budget.
  std::string variants_of;
  std::vector<TrackResult> variants;
};

// The best track by mean val bpb (nullptr when there are none).
const TrackResult* BestTrack(const std::vector<TrackResult>& tracks);

struct TracksReport {
  std::string command;                // how it was generated
  int64_t target_params = 0;          // the size the tracks were matched to
  std::vector<std::string> setup;     // bullet lines: machine, date, dataset, budget, config
  std::vector<TrackSweep> sweeps;     // empty: no sweep (the configured learning rates)
  std::string sweep_budget;           // the sweep runs' budget, in words
  std::vector<BudgetResult> budgets;  // shortest first
  // File names (beside the document) of the val bpb charts of the longest budget, against bytes
  // and against training time; empty: none.
  std::string chart_bytes, chart_time;
  uint64_t scaling_bytes_per_step = 0;
  std::vector<ScalingPoint> scaling;  // empty: not measured (batch = scaling_bytes_per_step / seq_len)
};
std::string TracksMarkdown(const TracksReport& report);

// An SVG line chart of val bpb: each track's mean curve over seeds, against bytes seen
// (by_time false) or against training time (true); variants dashed.
std::string CurvesSvg(const BudgetResult& budget, bool by_time);

}  // namespace bitbyte::runs
