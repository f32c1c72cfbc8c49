#pragma once
// A dataset of random text-like documents (testing::MakeCorpus) under t/in, sharded with the real
// job into t/ds (val_fraction 0.2), opened. For tests of what reads datasets.
#include <memory>
#include <random>

#include "sharding/reader.h"
#include "sharding/shard_job.h"
#include "tests/test_util.h"

namespace bitbyte::testing {

inline std::unique_ptr<shard::Dataset> MakeDataset(const TempDir& t, uint64_t seed, int documents = 40,
                                                   size_t max_len = 3000) {
  std::mt19937_64 rng(seed);
  MakeCorpus(rng, t / "in", documents, max_len);
  shard::ShardJobOptions o;
  o.inputs = {t / "in"};
  o.out_dir = t / "ds";
  o.params.val_fraction = 0.2;
  o.threads = 2;
  o.progress = pipeline::ProgressMode::kNone;
  shard::RunShardJob(o);
  return shard::Dataset::Open(t / "ds");
}

}  // namespace bitbyte::testing
