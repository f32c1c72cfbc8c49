#pragma once
// A single-threaded reference writer built from the same pieces as the flow-graph job: tests
// compare the graph's output with it byte for byte.
#include <string>
#include <vector>

#include "sharding/input.h"
#include "sharding/plan.h"
#include "sharding/reader.h"
#include "sharding/writer.h"

namespace bitbyte::testing {

// Every document's bytes, in manifest (input) order: equals the inputs concatenated.
inline std::string ReadAllDocuments(const std::string& dir) {
  auto ds = shard::Dataset::Open(dir);
  std::string all;
  for (const auto& d : ds->manifest().documents())
    all += ds->Read(static_cast<shard::Split>(d.split()), d.offset(), d.length());
  return all;
}

inline shard::pb::Manifest WriteDatasetSerial(const std::vector<std::string>& args, const std::string& out,
                                              const shard::Params& params) {
  io::FileSystem& fs = io::Posix();
  fs.CreateDirs(out);
  const std::string spool = out + "/.bitbyte-tmp";
  fs.CreateDirs(spool);
  auto inputs = input::Enumerate(args);
  shard::DatasetPlan plan(params);
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < inputs.size(); ++i) {
    input::SourceData d = input::ReadSource(inputs[i], i, spool);
    input::SplitResult r = input::SplitDocuments(d, {params.jsonl_field, params.skip_bad_records}, spool);
    shard::ScannedSource s;
    s.index = i;
    s.path = d.path;
    s.size = d.size;
    s.xxh64 = d.xxh64;
    s.bad_records = r.bad_records;
    s.docs = std::move(r.docs);
    plan.AddSource(std::move(s));
    paths.push_back(inputs[i].path);
  }
  plan.Finish();
  shard::WorkProducer producer(plan, {});
  shard::ShardAssembler assembler(fs, out);
  std::vector<shard::ShardResult> results;
  shard::FrameWork w;
  while (producer.Next(w)) {
    shard::ProcessWork(plan, fs, out, w);
    if (auto r = assembler.Consume(w)) results.push_back(*r);
  }
  shard::pb::Manifest m = shard::BuildManifest(plan, results, paths);
  shard::WriteManifest(fs, out, m);
  for (const auto& n : fs.ListDir(spool)) fs.Remove(spool + "/" + n);
  ::rmdir(spool.c_str());
  return m;
}

}  // namespace bitbyte::testing
