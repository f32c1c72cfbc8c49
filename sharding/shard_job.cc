#include "sharding/shard_job.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <regex>

#include "base/error.h"
#include "base/stop_signals.h"
#include "pipeline/graph.h"
#include "pipeline/monitor.h"
#include "sharding/reader.h"
#include "sharding/writer.h"

namespace bitbyte::shard {
namespace {

using pipeline::DefaultThreads;
using pipeline::DescribeJson;
using pipeline::Graph;
using pipeline::kFiguresFile;
using pipeline::Monitor;
using pipeline::Progress;
using pipeline::ProgressMode;
using pipeline::ScopedParallelism;

using shard::FrameWork;
using WorkPtr = std::shared_ptr<FrameWork>;

constexpr char kSpoolDir[] = ".bitbyte-tmp";

bool IsOurs(const std::string& name) {
  static const std::regex ours(
      R"((train|val)-\d{5,}-[0-9a-f]{16}\.bbs(\.tmp)?|manifest\.pb(\.tmp)?|\.bitbyte-tmp|pipeline\.json(\.tmp)?)");
  return std::regex_match(name, ours);
}

std::optional<shard::pb::Manifest> LoadExisting(io::FileSystem& fs, const ShardJobOptions& o) {
  const std::string mpath = io::JoinPath(o.out_dir, shard::kManifestName);
  if (fs.Exists(mpath)) {
    try {
      return shard::ParseManifest(shard::ReadManifestBytes(fs, mpath), mpath);
    } catch (const Error& e) {
      if (o.overwrite) return std::nullopt;
      throw Error("output directory '" + o.out_dir + "' holds a damaged dataset (" + e.what() +
                  "); use --overwrite to replace it");
    }
  }
  if (!o.overwrite) {
    for (const std::string& name : fs.ListDir(o.out_dir))
      if (!IsOurs(name))
        throw Error("output directory '" + o.out_dir + "' is not empty and is not a bitbyte dataset (it holds '" +
                    name + "'); choose another directory or use --overwrite");
  }
  return std::nullopt;
}

bool SameParams(const shard::pb::CreationParams& a, const shard::Params& b) {
  return a.frame_bytes() == b.frame_bytes && a.shard_bytes() == b.shard_bytes && a.level() == b.level &&
         a.val_fraction() == b.val_fraction && a.jsonl_field() == b.jsonl_field &&
         a.skip_bad_records() == b.skip_bad_records;
}

[[noreturn]] void RefuseDifferent(const ShardJobOptions& o, const shard::pb::Manifest& m, const std::string& why) {
  throw Error("output directory '" + o.out_dir + "' holds a different dataset (" + why + ", " +
              std::to_string(m.sources_size()) + " sources, " + std::to_string(m.shards_size()) +
              " shards); use --overwrite to replace it, or choose another directory");
}

uint64_t InputBytes(const std::vector<input::InputFile>& inputs) {
  uint64_t total = 0;
  for (const auto& in : inputs) {
    struct stat st;
    if (in.path != "-" && ::stat(in.path.c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

// Removes the spool directory however the job ends.
class SpoolDir {
 public:
  SpoolDir(io::FileSystem& fs, std::string path) : fs_(fs), path_(std::move(path)) {
    Clear();
    fs_.CreateDirs(path_);
  }
  ~SpoolDir() {
    try {
      Clear();
      ::rmdir(path_.c_str());
    } catch (...) {
    }
  }
  const std::string& path() const { return path_; }

 private:
  void Clear() {
    if (!fs_.Exists(path_)) return;
    for (const std::string& n : fs_.ListDir(path_)) fs_.Remove(io::JoinPath(path_, n));
  }
  io::FileSystem& fs_;
  std::string path_;
};

struct ScanItem {
  uint64_t seq = 0;
  std::shared_ptr<input::SourceData> data;
  std::shared_ptr<shard::ScannedSource> scanned;
};

// The work of each node, apart from the wiring (so `bitbyte graph shard` can build the graph
// without work to do: empty bodies are never called).
struct ScanBodies {
  std::function<bool(ScanItem&)> enumerate;
  std::function<ScanItem(const ScanItem&)> read, split;
  std::function<void(const ScanItem&)> route;
};

// Phase 1: every input read, split into documents and routed, in input order.
void WireScan(Graph& g, const ShardJobOptions& o, const ScanBodies& b) {
  auto& enumerate = g.Source<ScanItem>("enumerate", [&b](ScanItem& item) { return b.enumerate(item); });
  auto& read = g.Function<ScanItem, ScanItem>(
      "read", o.max_open_inputs, [&b](const ScanItem& in) { return b.read(in); },
      [](const ScanItem& it) { return it.data->size; });
  auto& split = g.Function<ScanItem, ScanItem>(
      "split", 0, [&b](const ScanItem& in) { return b.split(in); },
      [](const ScanItem& it) {
        uint64_t n = 0;
        for (const auto& d : it.scanned->docs) n += d.length;
        return n;
      });
  auto& order = g.Add<tbb::flow::sequencer_node<ScanItem>>("order_docs", "sequencer", 1,
                                                           [](const ScanItem& it) { return it.seq; });
  auto& route = g.Function<ScanItem, tbb::flow::continue_msg>(
      "route", 1,
      [&b](const ScanItem& in) {
        b.route(in);
        return tbb::flow::continue_msg();
      },
      [](const tbb::flow::continue_msg&) { return uint64_t{0}; });
  g.Connect(enumerate, read, "input file");
  g.Connect(read, split, "source bytes");
  g.Connect(split, order, "documents");
  g.Connect(order, route, "documents in input order");
}

// SIGINT or SIGTERM while the job runs: it stops before the next input or frame. Nothing is
// committed before the manifest, so the directory keeps what it held.
void ThrowIfStopped(const ShardJobOptions& o) {
  if (StopSignals::Requested())
    throw InterruptedError("interrupted by a signal before the dataset was complete; " + o.out_dir +
                           " keeps its previous dataset, if it had one, and the same command again finishes the "
                           "job, reusing the shards already written");
}

void Scan(Graph& g, Monitor& monitor, const std::vector<input::InputFile>& inputs, const ShardJobOptions& o,
          io::FileSystem& fs, const std::string& spool, shard::DatasetPlan& plan, Progress& progress) {
  size_t next = 0;
  const input::SplitOptions split_opts{o.params.jsonl_field, o.params.skip_bad_records};
  ScanBodies b;
  b.enumerate = [&](ScanItem& item) {
    if (next >= inputs.size()) return false;
    item.seq = next++;
    return true;
  };
  b.read = [&](const ScanItem& in) {
    ThrowIfStopped(o);
    ScanItem out = in;
    out.data = std::make_shared<input::SourceData>(
        input::ReadSource(inputs[in.seq], static_cast<uint32_t>(in.seq), spool, fs));
    progress.Add(out.data->size);
    return out;
  };
  b.split = [&](const ScanItem& in) {
    input::SplitResult r = input::SplitDocuments(*in.data, split_opts, spool, fs);
    // JSONL texts now live in their own spool file: the decompressed source is not needed.
    if (!split_opts.jsonl_field.empty() && in.data->data_file->spool) fs.Remove(in.data->data_file->path);
    ScanItem out;
    out.seq = in.seq;
    out.scanned = std::make_shared<shard::ScannedSource>();
    out.scanned->index = in.data->index;
    out.scanned->path = in.data->path;
    out.scanned->size = in.data->size;
    out.scanned->xxh64 = in.data->xxh64;
    out.scanned->bad_records = r.bad_records;
    out.scanned->docs = std::move(r.docs);
    return out;
  };
  b.route = [&](const ScanItem& in) { plan.AddSource(std::move(*in.scanned)); };
  WireScan(g, o, b);
  Monitor::Watch watch(monitor, g);
  g.Run();
}

struct WriteBodies {
  std::function<bool(WorkPtr&)> plan;
  std::function<WorkPtr(const WorkPtr&)> compress;
  std::function<std::optional<shard::ShardResult>(const WorkPtr&)> write;
  std::function<void(const std::optional<shard::ShardResult>&)> manifest;
};

int FrameTokens(const ShardJobOptions& o, int threads) { return o.max_in_flight > 0 ? o.max_in_flight : 4 * threads; }

// Phase 2: frames compressed in parallel, written in order, shards committed one by one.
void WireWrite(Graph& g, const ShardJobOptions& o, int threads, const WriteBodies& b) {
  using Committed = std::optional<shard::ShardResult>;
  auto& source = g.Source<WorkPtr>("plan", [&b](WorkPtr& w) { return b.plan(w); });
  auto& limit = g.Limiter<WorkPtr>("tokens", static_cast<size_t>(FrameTokens(o, threads)));
  auto& compress = g.Function<WorkPtr, WorkPtr>(
      "compress", 0, [&b](const WorkPtr& w) { return b.compress(w); },
      [](const WorkPtr& w) { return w->keep_existing ? w->kept.file_bytes : w->raw.size(); });
  auto& order = g.Add<tbb::flow::sequencer_node<WorkPtr>>("order_frames", "sequencer", 1,
                                                          [](const WorkPtr& w) { return w->seq; });
  auto& write = g.Function<WorkPtr, Committed>(
      "write", 1, [&b](const WorkPtr& w) { return b.write(w); },
      [](const Committed& c) { return c ? c->file_bytes : 0; });
  auto& manifest = g.Function<Committed, tbb::flow::continue_msg>(
      "manifest", 1,
      [&b](const Committed& c) {
        b.manifest(c);
        return tbb::flow::continue_msg();
      },
      [](const tbb::flow::continue_msg&) { return uint64_t{0}; });
  g.Connect(source, limit, "frame plan");
  g.Connect(limit, compress, "frame");
  g.Connect(compress, order, "compressed frame");
  g.Connect(order, write, "frames in order");
  g.Connect(write, manifest, "committed shards");
  g.ReturnTokens(manifest, limit);
}

std::vector<shard::ShardResult> Write(Graph& g, Monitor& monitor, const shard::DatasetPlan& plan,
                                      std::vector<bool> keep, const ShardJobOptions& o, io::FileSystem& fs, int threads,
                                      Progress& progress) {
  shard::WorkProducer producer(plan, std::move(keep));
  std::vector<shard::ShardResult> results;
  shard::ShardAssembler assembler(fs, o.out_dir);
  WriteBodies b;
  b.plan = [&](WorkPtr& w) {
    w = std::make_shared<FrameWork>();
    return producer.Next(*w);
  };
  b.compress = [&](const WorkPtr& w) {
    ThrowIfStopped(o);
    shard::ProcessWork(plan, fs, o.out_dir, *w);
    return w;
  };
  b.write = [&](const WorkPtr& w) {
    std::optional<shard::ShardResult> done = assembler.Consume(*w);
    progress.Add(w->keep_existing ? w->shard->raw_bytes : w->raw.size());
    return done;
  };
  // The manifest sink collects the committed shards; the manifest itself is written once the
  // graph is done (it is the commit point). Each item returns its token here. Results are
  // placed by the shard's position in the plan: arrival order across an edge out of a serial
  // node is not guaranteed by tbb::flow.
  results.resize(plan.shards().size());
  b.manifest = [&](const std::optional<shard::ShardResult>& c) {
    if (c) results[static_cast<size_t>(c->plan - plan.shards().data())] = *c;
  };
  WireWrite(g, o, threads, b);
  {
    Monitor::Watch watch(monitor, g);
    g.Run();
  }
  for (const auto& r : results)
    if (!r.plan) throw InternalError("a planned shard was not committed");
  return results;
}

}  // namespace

ShardJobResult RunShardJob(const ShardJobOptions& o, io::FileSystem& fs) {
  const auto t0 = std::chrono::steady_clock::now();
  shard::ValidateParams(o.params);
  const int threads = o.threads > 0 ? o.threads : DefaultThreads();
  ScopedParallelism parallelism(threads);
  StopSignals signals;

  std::vector<input::InputFile> inputs = input::Enumerate(o.inputs, o.out_dir);
  if (inputs.empty()) throw Error("no inputs: give files, directories, patterns or - for stdin");
  fs.CreateDirs(o.out_dir);
  io::DirLock lock(o.out_dir);  // before looking at what the directory holds
  std::optional<shard::pb::Manifest> existing = LoadExisting(fs, o);
  if (existing && !o.overwrite && !SameParams(existing->params(), o.params))
    RefuseDifferent(o, *existing, "created with other parameters");

  SpoolDir spool(fs, io::JoinPath(o.out_dir, kSpoolDir));
  Monitor monitor({o.figures_path, "shard", threads, o.figures_interval_s});
  shard::DatasetPlan plan(o.params);
  ShardJobResult res;
  {
    Progress progress("scan", InputBytes(inputs), o.progress);
    Graph scan("shard.scan");
    Scan(scan, monitor, inputs, o, fs, spool.path(), plan, progress);
    res.stats_table +=
        "phase scan\n" +
        scan.StatsTable(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), threads);
  }
  plan.Finish();
  const uint64_t manifest_estimate = plan.docs().size() * shard::kManifestBytesPerDocument +
                                     plan.sources().size() * 64 + plan.shards().size() * 128 + (1 << 20);
  if (manifest_estimate > shard::kMaxManifestBytes)
    throw Error("too many documents (" + std::to_string(plan.docs().size()) +
                ") for one dataset: its manifest would exceed the 2 GiB protobuf limit; shard the corpus "
                "into several datasets (e.g. by directory)");
  if (existing && !o.overwrite && existing->dataset_id() != plan.dataset_id())
    RefuseDifferent(o, *existing, "made from other input bytes");

  std::vector<bool> keep(plan.shards().size());
  for (size_t i = 0; i < keep.size(); ++i) keep[i] = shard::LooksFinished(fs, o.out_dir, plan.shards()[i]);

  const auto t1 = std::chrono::steady_clock::now();
  std::vector<shard::ShardResult> results;
  {
    Progress progress("shard", plan.total_bytes(), o.progress);
    Graph write("shard.write");
    results = Write(write, monitor, plan, keep, o, fs, threads, progress);
    res.stats_table +=
        "phase write\n" +
        write.StatsTable(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count(), threads);
  }

  std::vector<std::string> paths;
  for (const auto& in : inputs) paths.push_back(in.path);
  const shard::pb::Manifest m = shard::BuildManifest(plan, results, paths);
  shard::WriteManifest(fs, o.out_dir, m);

  // The new manifest is committed: files of earlier or interrupted runs that it does not name go.
  std::vector<std::string> referenced;
  for (const auto& sh : m.shards()) referenced.push_back(sh.name());
  for (const std::string& name : fs.ListDir(o.out_dir)) {
    if (name == shard::kManifestName || name == kSpoolDir || name.rfind(kFiguresFile, 0) == 0 || !IsOurs(name))
      continue;  // pipeline.json and its temp file are the monitor's, still live
    if (std::find(referenced.begin(), referenced.end(), name) == referenced.end())
      fs.Remove(io::JoinPath(o.out_dir, name));
  }

  res.sources = static_cast<uint64_t>(m.sources_size());
  res.documents = static_cast<uint64_t>(m.documents_size());
  for (const auto& s : m.sources()) res.bad_records += s.bad_records();
  res.train_bytes = m.splits(0).bytes();
  res.val_bytes = m.splits(1).bytes();
  for (const auto& r : results) {
    res.file_bytes += r.file_bytes;
    (r.reused ? res.shards_reused : res.shards_written) += 1;
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  monitor.Finish("finished");
  return res;
}

std::string DescribeShardJob(const ShardJobOptions& o) {
  shard::ValidateParams(o.params);  // draw only what the job would accept
  const int threads = o.threads > 0 ? o.threads : DefaultThreads();
  Graph scan("shard.scan"), write("shard.write");
  const ScanBodies no_scan;  // never called: the graphs do not run
  const WriteBodies no_write;
  WireScan(scan, o, no_scan);
  WireWrite(write, o, threads, no_write);
  return DescribeJson("shard", {scan.Describe(), write.Describe()});
}

}  // namespace bitbyte::shard
