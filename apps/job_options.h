#pragma once
// The options of the shard and train jobs, shared by `bitbyte shard` / `bitbyte train` and by
// `bitbyte graph shard|train`, which draws the graph the same options would build: every option of
// a job is added here, so any job command line works prefixed with `graph` (the drawing's own
// options, --graph-out and --format, cannot be taken for the job's).
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "sharding/shard_job.h"
#include "train/train_job.h"

namespace bitbyte::cli {

struct ShardArgs {
  std::vector<std::string> inputs;
  std::string out, frame_size = "1M", shard_size = "64M";
  int threads = 0, level = 3;
  double val_fraction = 0.05;
  std::string jsonl_field;
  bool skip_bad = false, overwrite = false;
  double figures_every = 2.0;
  bool stats = false, quiet = false;
};
// `for_job`: inputs and -o/--out must be given; else (`bitbyte graph shard`) they are optional,
// and the options that only change what the job prints are accepted and have no effect.
void AddShardJobOptions(CLI::App* c, ShardArgs* a, bool for_job);
shard::ShardJobOptions ShardJobOptionsOf(const ShardArgs& a);  // throws UsageError

// --threads (in [0, limits::kMaxThreads]) and --device (train, eval, generate).
void AddRuntimeOptions(CLI::App* c, int* threads, std::string* device);

// A check for a number option: finite (never nan or inf) and in [lo, hi] (CLI::Range lets nan
// through). `zero_too`: 0 is accepted as well (e.g. --temperature: 0 or [0.001, 1000]).
CLI::Validator FiniteRange(double lo, double hi, bool zero_too = false);

struct TrainArgs {
  train::TrainOptions o;
  std::string resume_dir;
  int64_t steps = 0;
  double minutes = 0;  // --minutes: steps fitted to this many minutes by a probe run (train only)
  bool allow_other_data = false;
  bool print_config = false, quiet = false, stats = false;
};
// `for_job`: the job's help; else (`bitbyte graph train`) the options that only change what the
// job prints are accepted and have no effect.
void AddTrainJobOptions(CLI::App* c, TrainArgs* a, bool for_job);
train::TrainOptions TrainOptionsOf(const TrainArgs& a);  // --out/--resume resolved; throws UsageError

// The options of `bitbyte quantize` (and of `bitbyte graph quantize`, which takes the same).
void AddQuantizeJobOptions(CLI::App* c, train::QuantizeOptions* o);

}  // namespace bitbyte::cli
