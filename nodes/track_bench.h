#pragma once
// The figures and the document of `bitbyte bench tracks` (docs/tracks.md): every track trained
// at a matched parameter count on the same data, seeds and budget, compared on val bpb (mean and
// spread over seeds), throughput and peak memory, plus how step time and memory grow with the
// sequence length. The CLI runs the trainings as child processes and hands their run
// directories here. Torch-free.
#include <cstdint>
#include <string>
#include <vector>

#include "nodes/run_dir.h"

namespace bitbyte::train {

double Median(std::vector<double> v);  // 0 for none

struct MeanStd {
  double mean = 0, std = 0;  // std: sample standard deviation (n - 1); 0 for fewer than two values
  size_t n = 0;
};
MeanStd Summarise(const std::vector<double>& v);

// One training run of one track.
struct TrackRun {
  uint64_t seed = 0;
  double val_bpb = 0;      // the evaluation after the last step
  double bytes_per_s = 0;  // bytes per step / the median wall time of a step (the first tenth of the steps left out)
  double peak_rss_mib = 0; // the training process's RSS high-water mark
  double wall_s = 0;       // the training process, start to exit
  std::vector<EvalRecord> curve;  // every evaluation, in step order
};
// The figures of a finished run directory. Throws bitbyte::Error when it has no step records or
// no evaluation at `steps` (the run did not finish).
TrackRun SummariseRun(const RunDirContents& run, int64_t steps, uint64_t bytes_per_step);

struct TrackResult {
  std::string name;   // registry name
  std::string model;  // the sizes that differ between tracks, one line
  int64_t params = 0, steps = 0;
  uint64_t bytes_per_step = 0;
  std::vector<TrackRun> runs;  // one per seed, in seed order
};

// Two tracks' val bpb differ beyond noise when the gap exceeds twice its standard error,
// sqrt(s_a^2 / n_a + s_b^2 / n_b), and each has at least two seeds.
struct Gap {
  double delta = 0;   // b's mean minus a's
  double noise = 0;   // twice the standard error; 0 when it cannot be told
  bool known = false; // both have two or more seeds
  bool clear = false; // known and |delta| > noise
};
Gap CompareBpb(const TrackResult& a, const TrackResult& b);

// The recommendation paragraph (markdown): the best track by val bpb when its lead is beyond
// noise, and otherwise says plainly that the difference is within noise and what else decides.
std::string Recommend(const std::vector<TrackResult>& tracks);

// One measurement of step time and memory at one sequence length.
struct ScalingPoint {
  std::string track;
  int64_t seq_len = 0, batch = 0, params = 0;
  double step_s = 0, bytes_per_s = 0, peak_rss_mib = 0;
  std::string failure;  // non-empty: the run failed (e.g. killed for memory); figures unset
};

struct TracksReport {
  std::string command;              // how it was generated
  std::vector<std::string> setup;   // bullet lines: machine, date, dataset, budget, config
  std::vector<TrackResult> tracks;
  uint64_t scaling_bytes_per_step = 0;
  std::vector<ScalingPoint> scaling;  // empty: not measured
};
std::string TracksMarkdown(const TracksReport& report);

}  // namespace bitbyte::train
