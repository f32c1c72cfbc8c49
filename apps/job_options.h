#pragma once
// The options of the shard and train jobs, shared by `bitbyte shard` / `bitbyte train` and by
// `bitbyte graph shard|train`, which draws the graph the same options would build.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "train/train_job.h"
#include "sharding/shard_job.h"

namespace bitbyte::cli {

struct ShardArgs {
  std::vector<std::string> inputs;
  std::string out, frame_size = "1M", shard_size = "64M";
  int threads = 0, level = 3;
  double val_fraction = 0.05;
  std::string jsonl_field;
  bool skip_bad = false, overwrite = false;
  double figures_every = 2.0;
};
// `for_job`: inputs and -o/--out must be given; else (`bitbyte graph shard`, where -o is the
// drawing) they are optional and the output directory is --out only.
void AddShardJobOptions(CLI::App* c, ShardArgs* a, bool for_job);
shard::ShardJobOptions ShardJobOptionsOf(const ShardArgs& a);  // throws std::invalid_argument

// --threads (in [0, limits::kMaxThreads]) and --device (train, eval, generate).
void AddRuntimeOptions(CLI::App* c, int* threads, std::string* device);

// A check for a number option: finite (never nan or inf) and in [lo, hi] (CLI::Range lets nan
// through). `zero_too`: 0 is accepted as well (e.g. --temperature: 0 or [0.001, 1000]).
CLI::Validator FiniteRange(double lo, double hi, bool zero_too = false);

struct TrainArgs {
  train::TrainOptions o;
  std::string resume_dir;
  int64_t steps = 0;
  bool allow_other_data = false;
};
// `for_job`: -o is --out; else (`bitbyte graph train`) -o is the drawing and the run is --out.
void AddTrainJobOptions(CLI::App* c, TrainArgs* a, bool for_job);
train::TrainOptions TrainOptionsOf(const TrainArgs& a);  // --out/--resume resolved; throws std::invalid_argument

}  // namespace bitbyte::cli
