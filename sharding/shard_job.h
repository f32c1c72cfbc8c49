#pragma once
// The `bitbyte shard` job as one tbb::flow graph in two phases:
//   scan:  enumerate -> read (bounded) -> split -> order (sequencer) -> route
//   write: plan (source) -> tokens (limiter) -> compress (parallel) -> order (sequencer)
//          -> write (serial) -> manifest (sink); the sink returns a token per item.
// In-flight memory is bounded by the tokens: at most `max_in_flight` frames (raw + compressed)
// exist at once, whatever the corpus size (docs/shard-format.md states the bound).
#include <cstdint>
#include <string>
#include <vector>

#include "base/file_io.h"
#include "pipeline/progress.h"
#include "sharding/plan.h"

namespace bitbyte::shard {

struct ShardJobOptions {
  std::vector<std::string> inputs;
  std::string out_dir;
  Params params;
  int threads = 0;          // 0: all cores
  int max_open_inputs = 4;  // concurrency of the read node
  int max_in_flight = 0;    // frame tokens; 0: 4 per thread
  bool overwrite = false;
  pipeline::ProgressMode progress = pipeline::ProgressMode::kAuto;
  std::string figures_path;  // live per-node figures (pipeline.json); empty: none
  double figures_interval_s = 2.0;
};

struct ShardJobResult {
  uint64_t sources = 0, documents = 0, bad_records = 0;
  uint64_t train_bytes = 0, val_bytes = 0, file_bytes = 0;
  uint64_t shards_written = 0, shards_reused = 0;
  double seconds = 0;
  std::string stats_table;  // per-node figures of both phases
};

ShardJobResult RunShardJob(const ShardJobOptions& opts, io::FileSystem& fs = io::Default());

// The job's two graphs as `bitbyte graph shard` shows them (a pipeline document without
// figures, docs/pipeline.md), built from the same wiring without running anything.
std::string DescribeShardJob(const ShardJobOptions& opts);

}  // namespace bitbyte::shard
