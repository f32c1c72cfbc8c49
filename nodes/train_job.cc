#include "nodes/train_job.h"

#include <dlfcn.h>
#include <tbb/version.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "models/registry.h"
#include "nodes/append_log.h"
#include "nodes/batches.h"
#include "nodes/checkpoint.h"
#include "nodes/config.h"
#include "nodes/evaluator.h"
#include "nodes/generation.h"
#include "nodes/tensorboard.h"
#include "nodes/trainer.h"
#include "pipeline/graph.h"
#include "pipeline/monitor.h"
#include "pipeline/progress.h"
#include "sharding/error.h"
#include "sharding/file_io.h"
#include "sharding/reader.h"

namespace bitbyte::train {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using pipeline::Graph;

constexpr char kConfigFile[] = "config.txtpb";
constexpr char kRunFile[] = "run.json";
constexpr char kMetricsFile[] = "metrics.jsonl";
constexpr char kCheckpointDir[] = "checkpoints";

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");  // a /proc file has no size to read by
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) return line.substr(line.find(':') + 2);
  return "unknown";
}

// What the numbers depend on besides the config: recorded in run.json.
json Environment(int threads, const torch::Device& device) {
  using CoreName = char* (*)();
  const auto core = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  return {{"threads", threads}, {"device", device.str()}, {"libtorch", TORCH_VERSION},
          {"blas_core", core ? core() : "unknown (not OpenBLAS)"}, {"openblas_coretype_env", env ? env : ""},
          {"bitbyte", BITBYTE_VERSION}, {"tbb", TBB_VERSION_STRING}, {"cpu", CpuModel()}, {"host", pipeline::HostName()}};
}

// `cause` with another message and the same kind (what decides the exit code: bad value, bad
// data, anything else), so whoever reports the cause rather than the NodeError says it all.
std::exception_ptr WithMessage(const std::exception_ptr& cause, const std::string& message) {
  if (!cause) return cause;
  try {
    std::rethrow_exception(cause);
  } catch (const std::invalid_argument&) {
    return std::make_exception_ptr(std::invalid_argument(message));
  } catch (const DataError&) {
    return std::make_exception_ptr(DataError(message));
  } catch (const std::exception&) {
    return std::make_exception_ptr(std::runtime_error(message));
  } catch (...) {
    return cause;
  }
}

std::string HexId(uint64_t id) {  // as `bitbyte inspect` prints a dataset id
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---- signals: SIGINT/SIGTERM ask the job to stop after the current step ----
std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }

class StopSignals {
 public:
  StopSignals() {
    g_stop.store(false);
    struct sigaction sa = {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ = {}, old_term_ = {};
};

// metrics.jsonl: one JSON object per line, each written with one append so a kill leaves at
// most one torn last line (skipped by readers and dropped on resume).
class MetricsLog {
 public:
  // Keeps the records of steps <= keep_through (a resumed run rewrites what follows).
  MetricsLog(const std::string& path, int64_t keep_through) : log_(Prepare(path, keep_through, evals_)) {}
  // Evaluations among the kept records, (step, bpb).
  const std::vector<std::pair<int64_t, double>>& evals() const { return evals_; }
  bool HasEval(int64_t step) const {
    return std::any_of(evals_.begin(), evals_.end(), [&](const auto& e) { return e.first == step; });
  }
  void Write(const json& record) { log_.Append(record.dump() + "\n"); }

 private:
  static std::string Prepare(const std::string& path, int64_t keep_through, std::vector<std::pair<int64_t, double>>& evals) {
    if (keep_through >= 0 && io::Posix().Exists(path)) {
      std::istringstream in(io::ReadFile(io::Posix(), path));
      std::string line, kept;
      while (std::getline(in, line)) {
        const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() >= 0 &&
            j["step"].get<int64_t>() <= keep_through) {
          kept += line + "\n";
          if (j.contains("val_bpb") && j["val_bpb"].is_number())
            evals.emplace_back(j["step"].get<int64_t>(), j["val_bpb"].get<double>());
        }
      }
      io::WriteFileAtomic(io::Posix(), path, kept);
    }
    return path;
  }
  std::vector<std::pair<int64_t, double>> evals_;  // before log_: Prepare fills it
  AppendLog log_;
};

// What a run's run.json says, read so that garbage or wrong types only cost a warning naming
// the file (it is a record for people and tools, rewritten at every start).
struct RunRecord {
  bool found = false;       // the file exists and holds a JSON object
  std::string data;         // "data": the dataset directory ("" when absent or unusable)
  std::optional<uint64_t> dataset_id;  // "dataset_id" (a decimal string)
  std::optional<int64_t> threads;      // "threads"
  std::string problem;      // why `data` is empty, for an error message
};

RunRecord ReadRunRecord(io::FileSystem& fs, const std::string& path, const std::function<void(const std::string&)>& warn) {
  RunRecord r;
  if (!fs.Exists(path)) {
    r.problem = "there is no " + path;
    return r;
  }
  json j;
  try {
    j = json::parse(io::ReadFile(fs, path), nullptr, /*allow_exceptions=*/false);
  } catch (const std::exception& e) {
    warn(std::string(e.what()) + "; ignoring " + path);
    r.problem = "cannot read " + path;
    return r;
  }
  if (!j.is_object()) {
    warn(path + " is not a JSON object (damaged?); ignoring it");
    r.problem = path + " is damaged";
    return r;
  }
  r.found = true;
  if (j.contains("data")) {
    if (j["data"].is_string() && !j["data"].get<std::string>().empty()) {
      r.data = j["data"].get<std::string>();
    } else {
      warn(path + ": \"data\" is not a directory name; ignoring it");
      r.problem = path + " has no usable \"data\"";
    }
  } else {
    r.problem = path + " does not name the dataset";
  }
  if (j.contains("dataset_id")) {
    const json& v = j["dataset_id"];
    uint64_t id = 0;
    const std::string text = v.is_string() ? v.get<std::string>() : "";
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id, 10);
    if (!text.empty() && ec == std::errc() && ptr == text.data() + text.size()) r.dataset_id = id;
    else warn(path + ": \"dataset_id\" is not a decimal dataset id in a string; ignoring it");
  }
  if (j.contains("threads")) {
    if (j["threads"].is_number_integer()) r.threads = j["threads"].get<int64_t>();
    else warn(path + ": \"threads\" is not an integer; ignoring it");
  }
  return r;
}

// Runs work on one long-lived thread and waits for it. The train step and the eval node use one
// each, so their LibTorch work always starts from the same thread whichever TBB worker runs the
// node: one OpenMP team and one malloc arena per node instead of one per TBB worker (measured:
// steadier step times and a smaller RSS).
class PinnedThread {
 public:
  PinnedThread() : thread_([this] { Loop(); }) {}
  ~PinnedThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  template <typename Fn>
  auto Run(Fn fn) -> decltype(fn()) {
    using R = decltype(fn());
    std::optional<R> result;
    std::exception_ptr error;
    std::unique_lock<std::mutex> lock(mu_);
    job_ = [&] {
      try {
        result.emplace(fn());
      } catch (...) {
        error = std::current_exception();
      }
    };
    done_ = false;
    cv_.notify_all();
    cv_.wait(lock, [&] { return done_; });
    if (error) std::rethrow_exception(error);
    return std::move(*result);
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || job_; });
      if (!job_) return;
      auto job = std::move(job_);
      job_ = nullptr;
      lock.unlock();
      job();
      lock.lock();
      done_ = true;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool done_ = true, stop_ = false;
  std::thread thread_;
};

struct Event {
  enum class Kind { kStep, kEval } kind = Kind::kStep;
  size_t seq = 0;        // kStep: position in this run's batches (orders the metrics)
  bool skipped = false;  // kStep: a prefetched batch dropped after a stop signal
  int64_t step = 0;      // steps done
  StepStats stats;
  double wait_s = 0, stall_s = 0;
  uint64_t bytes = 0;
  bool want_eval = false, want_checkpoint = false;
  std::shared_ptr<const Snapshot> snapshot;
  EvalResult eval;
};
using EventPtr = std::shared_ptr<const Event>;
using BatchPtr = std::shared_ptr<const Batch>;

bool Due(int64_t step, int64_t every, int64_t last) { return step == last || (every > 0 && step % every == 0); }

std::string FormatLr(double lr) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", lr);
  return buf;
}

void CheckDataset(const shard::Dataset& data) {
  if (data.SplitBytes(shard::Split::kVal) < 2)
    throw Error("dataset " + data.dir() + " has no validation split (" + std::to_string(data.SplitBytes(shard::Split::kVal)) +
                " bytes); shard it again with --val-fraction above 0");
}

// The work of each node of the training graph; WireTrainGraph is the wiring, and nothing else,
// so `bitbyte graph train` builds the same graph with empty bodies (never called: it does not
// run).
struct TrainBodies {
  std::function<bool(int64_t&)> next_step;
  std::function<BatchPtr(int64_t)> prepare;
  std::function<EventPtr(const BatchPtr&)> train_step;
  std::function<EventPtr(const EventPtr&)> eval;
  std::function<EventPtr(const EventPtr&)> metrics;
  std::function<void(const EventPtr&)> checkpoint;
};

void WireTrainGraph(Graph& g, const pb::TrainConfig& config, int64_t start, const TrainBodies& b) {
  auto& source = g.Source<int64_t>("batch_source", [&b](int64_t& step) { return b.next_step(step); });
  auto& prefetch = g.Limiter<int64_t>("prefetch", static_cast<size_t>(config.data().prefetch()));
  auto& prepare = g.Function<int64_t, BatchPtr>(
      "prepare", 0, [&b](int64_t step) { return b.prepare(step); }, [](const BatchPtr& x) { return x->bytes.size(); });
  auto& order = g.Add<tbb::flow::sequencer_node<BatchPtr>>(
      "order", "sequencer", 1, [start](const BatchPtr& x) { return static_cast<size_t>(x->step - start); });
  auto& train_step = g.Function<BatchPtr, EventPtr>(
      "train_step", 1, [&b](const BatchPtr& batch) { return b.train_step(batch); },
      [](const EventPtr& e) { return e->skipped ? 0 : e->bytes; });
  // Serial outputs can overtake one another on their way out of a tbb::flow node: restore the
  // step order before metrics, so records are in order and every step before a checkpoint has
  // its record before the checkpoint is submitted.
  auto& metrics_order = g.Add<tbb::flow::sequencer_node<EventPtr>>(
      "metrics_order", "sequencer", 1, [](const EventPtr& e) { return e->seq; });
  auto& eval = g.Function<EventPtr, EventPtr>(
      "eval", 1, [&b](const EventPtr& in) { return b.eval(in); }, [](const EventPtr& e) { return e ? e->eval.bytes : 0; });
  auto& metrics = g.Function<EventPtr, EventPtr>(
      "metrics", 1, [&b](const EventPtr& e) { return b.metrics(e); }, [](const EventPtr&) { return 0; },
      tbb::flow::node_priority_t(1));
  // After metrics: a checkpoint is committed only once its step's figures are in metrics.jsonl,
  // so a resumed run never leaves a hole in the metrics.
  auto& checkpoint = g.Function<EventPtr, tbb::flow::continue_msg>(
      "checkpoint", 1,
      [&b](const EventPtr& e) {
        b.checkpoint(e);
        return tbb::flow::continue_msg();
      },
      [](const tbb::flow::continue_msg&) { return 0; }, tbb::flow::node_priority_t(1));
  g.Connect(source, prefetch, "step");
  g.Connect(prefetch, prepare, "step");
  g.Connect(prepare, order, "batch");
  g.Connect(order, train_step, "batch, in step order");
  g.ReturnTokens(train_step, prefetch);
  g.Connect(train_step, metrics_order, "step figures, snapshot");
  g.Connect(metrics_order, metrics, "in step order");
  g.Connect(train_step, eval, "weights snapshot");
  g.Connect(eval, metrics, "val bpb");
  g.Connect(metrics, checkpoint, "snapshot, val bpb");
}

}  // namespace

pb::TrainConfig ResolveConfig(const TrainOptions& o) {
  pb::TrainConfig config;
  std::optional<pb::TrainConfig> saved;
  if (o.resume) {
    const std::string path = io::JoinPath(o.run_dir, kConfigFile);
    if (!io::Posix().Exists(path)) throw std::invalid_argument("--resume " + o.run_dir + ": no " + kConfigFile + " there (not a run directory)");
    saved = ParseConfigText(io::ReadFile(io::Posix(), path), path);
    config = *saved;
  }
  if (!o.config_path.empty()) config = LoadConfigFile(o.config_path);
  if (!o.model.empty()) config.mutable_model()->set_name(o.model);
  for (const std::string& s : o.overrides) ApplyOverride(config, s);
  if (o.steps) config.set_steps(*o.steps);
  FillDefaults(config);
  ValidateConfig(config);
  if (saved) {
    const std::string diff = IncompatibleField(*saved, config);
    if (!diff.empty())
      throw std::invalid_argument("--resume " + o.run_dir + ": the requested config differs from the run's in " + diff +
                                  "; only steps, log_every, eval.every and checkpoint.* may change on resume");
  }
  return config;
}

TrainSummary RunTraining(const TrainOptions& o) {
  const pb::TrainConfig config = ResolveConfig(o);
  io::FileSystem& fs = io::Posix();
  if (o.threads < 0 || o.threads > limits::kMaxThreads)
    throw std::invalid_argument("--threads must be in [0, " + std::to_string(limits::kMaxThreads) + "] (0: all cores), got " +
                                std::to_string(o.threads));
  const int threads = o.threads > 0 ? o.threads : pipeline::DefaultThreads();
  const torch::Device device = ParseDevice(o.device);
  auto log = [&](const std::string& line) {
    if (o.console) std::fprintf(stderr, "%s\n", line.c_str());
  };
  auto warn = [](const std::string& line) { std::fprintf(stderr, "warning: %s\n", line.c_str()); };  // even with -q

  // ---- run directory ----
  if (o.allow_other_data && !o.resume)
    throw std::invalid_argument("--allow-other-data goes with --resume (a new run trains on the --data it is given)");
  fs.CreateDirs(o.run_dir);
  io::DirLock lock(o.run_dir);
  const std::string ckpt_dir = io::JoinPath(o.run_dir, kCheckpointDir);
  const std::string run_file = io::JoinPath(o.run_dir, kRunFile);
  std::string data_dir = o.data_dir;
  RunRecord saved_run;  // the run's run.json, on resume
  std::optional<LoadedCheckpoint> loaded;  // the checkpoint to resume from
  if (o.resume) {
    saved_run = ReadRunRecord(fs, run_file, warn);
    if (data_dir.empty()) data_dir = saved_run.data;
    if (data_dir.empty())
      throw std::invalid_argument("--resume " + o.run_dir + ": " + saved_run.problem +
                                  ", so the run's dataset is unknown; give it with --data DIR");
    if (saved_run.threads && *saved_run.threads != threads)
      warn("the run was trained with --threads " + std::to_string(*saved_run.threads) + ", this resume uses " +
           std::to_string(threads) + "; results are bit-exact only at the same thread count");
    loaded = LoadNewestGood(fs, ckpt_dir, warn);
  } else if (fs.Exists(io::JoinPath(o.run_dir, kConfigFile)) || fs.Exists(ckpt_dir)) {
    throw Error(o.run_dir + " already holds a training run; continue it with --resume " + o.run_dir +
                " or choose another --out");
  }
  if (data_dir.empty()) throw std::invalid_argument("--data is required");

  const auto data = shard::Dataset::Open(data_dir);
  CheckDataset(*data);
  const uint64_t dataset_id = data->manifest().dataset_id();
  const int rows = config.data().batch_size() * config.data().grad_accum();  // bounded by ValidateConfig
  const BatchSampler sampler(*data, config.seed(), rows, config.data().seq_len());  // checks the train split
  if (o.resume) {
    // The data the run was trained on: the checkpoint's record (what the weights saw), else
    // run.json's (a run without a usable checkpoint, or one from before checkpoints recorded it).
    uint64_t trained_on = 0;
    std::string where;
    if (loaded && loaded->snapshot.dataset_id != 0) {
      trained_on = loaded->snapshot.dataset_id;
      where = "checkpoint " + loaded->dir;
    } else if (saved_run.dataset_id) {
      trained_on = *saved_run.dataset_id;
      where = run_file;
    }
    if (trained_on == 0) {
      warn("cannot check that " + data_dir + " (dataset id " + HexId(dataset_id) + ") is the data of run " + o.run_dir +
           ": neither its checkpoint nor run.json records a dataset id");
    } else if (trained_on != dataset_id) {
      if (!o.allow_other_data)
        throw std::invalid_argument("--resume " + o.run_dir + ": dataset " + data_dir + " (dataset id " + HexId(dataset_id) +
                                    ") is not the one this run was trained on (dataset id " + HexId(trained_on) +
                                    ", recorded in " + where + "); give the run's dataset with --data, or add "
                                    "--allow-other-data to go on training on this one (fine-tuning)");
      warn("--allow-other-data: run " + o.run_dir + " was trained on dataset id " + HexId(trained_on) +
           "; it continues on " + data_dir + " (dataset id " + HexId(dataset_id) + "), and run.json now names that dataset");
    }
  }
  {
    // run.json first: config.txtpb is what marks a directory as a run, and a run must always
    // know its dataset (a kill between the two writes leaves a directory that is not a run yet).
    char cwd[4096];
    const std::string abs = (!data_dir.empty() && data_dir[0] == '/') || !::getcwd(cwd, sizeof cwd)
                                ? data_dir : io::JoinPath(cwd, data_dir);
    json run = Environment(threads, device);
    run["data"] = abs;
    run["dataset_id"] = std::to_string(dataset_id);
    io::WriteFileAtomic(fs, run_file, run.dump(2) + "\n");
  }
  io::WriteFileAtomic(fs, io::JoinPath(o.run_dir, kConfigFile), ConfigToText(config));

  // ---- threads: one budget for TBB and LibTorch ----
  // LibTorch computes with `threads` OpenMP threads on the train thread (and on the eval thread
  // while an evaluation runs). TBB gets `threads` for data preparation and the sinks, plus the
  // two TBB threads that only wait on the train and eval threads, so neither wait can starve
  // the prefetch.
  pipeline::ScopedParallelism parallelism(threads + 2);
  UseTorchThreads(threads);

  // ---- state ----
  std::optional<Trainer> trainer_holder;
  std::shared_ptr<models::ByteModel> eval_model;
  WithoutTorchFrames("building the model", [&] {
    trainer_holder.emplace(config, device);
    // Built before Restore: its initialisation draws from the generator Restore then resets, so a
    // resumed run's random stream (dropout) continues exactly where the checkpoint left it.
    eval_model = models::CreateModel(config.model());
    eval_model->to(device);
    return 0;
  });
  Trainer& trainer = *trainer_holder;
  trainer.set_dataset_id(dataset_id);
  int64_t start = 0;
  if (o.resume) {
    if (loaded) {
      pb::TrainConfig saved;
      try {
        saved = ParseConfigText(loaded->snapshot.config_text, loaded->dir + "/meta.pb");
      } catch (const std::invalid_argument& e) {
        throw DataError(std::string(e.what()) + " (the checkpoint's config)");
      }
      const std::string diff = IncompatibleField(saved, config);
      if (!diff.empty())
        throw std::invalid_argument("checkpoint " + loaded->dir + " was trained with another config: " + diff);
      WithoutTorchFrames("restoring " + loaded->dir, [&] {
        trainer.Restore(loaded->snapshot);
        return 0;
      });
      start = trainer.steps_done();
      log("resuming " + o.run_dir + " from " + loaded->dir + " (step " + std::to_string(start) + ")");
      loaded.reset();  // its tensors are in the trainer now
    } else {
      warn("no usable checkpoint in " + ckpt_dir + "; starting from step 0");
    }
    // Newer checkpoints were all unusable (LoadNewestGood took the newest good one): set them
    // aside for inspection, out of the way of pruning and of the steps about to be retrained.
    for (const std::string& name : ListCheckpoints(fs, ckpt_dir)) {
      if (name <= CheckpointName(start)) continue;
      std::string aside = io::JoinPath(ckpt_dir, "damaged-" + name);
      for (int i = 2; fs.Exists(aside); ++i) aside = io::JoinPath(ckpt_dir, "damaged-" + name + "-" + std::to_string(i));
      fs.Rename(io::JoinPath(ckpt_dir, name), aside);
      warn("moved unusable checkpoint " + name + " to " + aside);
    }
  }
  const int64_t total = config.steps();
  if (start >= total) log("the run already has " + std::to_string(start) + " of " + std::to_string(total) + " steps");
  log(trainer.model().Describe() + "; " + std::to_string(threads) + " threads, device " + device.str());

  MetricsLog metrics(io::JoinPath(o.run_dir, kMetricsFile), start);
  // The same scalars for `tensorboard --logdir RUN_DIR` (docs/training.md: run directory).
  tb::EventWriter events(o.run_dir, start);
  CheckpointSink sink(fs, ckpt_dir, config.checkpoint().keep(), log);

  const uint64_t val_len = config.eval().max_bytes() > 0
                               ? std::min<uint64_t>(config.eval().max_bytes(), data->SplitBytes(shard::Split::kVal))
                               : data->SplitBytes(shard::Split::kVal);
  const std::string val_bytes = data->Read(shard::Split::kVal, 0, val_len);
  const uint64_t bytes_per_step = static_cast<uint64_t>(rows) * config.data().seq_len();

  // Test hook: poison a weight before step N (1-based, like metrics and checkpoint names).
  const char* nan_env = std::getenv("BITBYTE_TEST_NAN_AT_STEP");
  const int64_t nan_at = nan_env ? std::atoll(nan_env) : -1;

  StopSignals signals;
  TrainSummary summary;
  summary.start_step = start;
  std::atomic<int64_t> last_ckpt_step{-1}, latest_eval{-1};
  // A non-finite loss stops the run like a signal does (the steps before it reach metrics and
  // the checkpoint sink), then RunTraining reports it as an error.
  std::atomic<bool> failed{false};
  std::exception_ptr step_error;
  int64_t next_step = start;
  bool halted = false;
  Clock::time_point prev_end = Clock::now();
  double wait_total = 0, busy_total = 0, stall_total = 0;
  int64_t stall_count = 0, steps_run = 0;
  std::optional<double> last_bpb;
  const auto t_start = Clock::now();

  auto record_eval = [&](int64_t step, const EvalResult& r) {
    last_bpb = r.bpb;
    events.AddScalars(step, pipeline::UnixSeconds(), {{"val/bpb", r.bpb}});
    events.Flush();
    metrics.Write({{"step", step}, {"val_bpb", r.bpb}, {"val_bytes", r.bytes}, {"eval_s", r.seconds},
                   {"elapsed_s", Since(t_start)}});
    char line[160];
    std::snprintf(line, sizeof line, "eval  step %lld  val_bpb %.4f  (%llu bytes, %.1f s)", (long long)step, r.bpb,
                  (unsigned long long)r.bytes, r.seconds);
    log(line);
  };
  auto evaluate = [&](const Snapshot& weights) {
    UseTorchThreads(threads);
    return WithoutTorchFrames("evaluation", [&] {
      LoadModule(*eval_model, "model/", weights);
      return EvaluateBpb(*eval_model, {std::string_view(val_bytes)}, config.data().seq_len(),
                         config.eval().batch_size(), device);
    });
  };
  for (const auto& [step, bpb] : metrics.evals()) sink.RecordEval(step, bpb);  // `best` sees them all
  // A kill between a checkpoint and its step's evaluation loses that evaluation: redo it.
  if (start > 0 && Due(start, config.eval().every(), total) && !metrics.HasEval(start)) {
    const EvalResult r = evaluate(*trainer.TakeSnapshot(false));
    record_eval(start, r);
    sink.RecordEval(start, r.bpb);
  }

  PinnedThread train_thread, eval_thread;
  pipeline::Monitor monitor({io::JoinPath(o.run_dir, pipeline::kFiguresFile), "train", threads, o.figures_interval_s});
  TrainBodies bodies;
  bodies.next_step = [&](int64_t& step) {
    if (next_step >= total || g_stop.load() || failed.load()) return false;
    step = next_step++;
    return true;
  };
  bodies.prepare = [&](int64_t step) {
    auto b = std::make_shared<Batch>();
    sampler.Fill(step, *b);
    return BatchPtr(b);
  };
  bodies.train_step = [&](const BatchPtr& batch) -> EventPtr {
    const auto t_in = Clock::now();
    auto ev = std::make_shared<Event>();
    ev->seq = static_cast<size_t>(batch->step - start);
    if (halted) {  // stopping: batches already prefetched are dropped
      ev->skipped = true;
      return ev;
    }
    ev->wait_s = steps_run == 0 ? 0.0 : std::chrono::duration<double>(t_in - prev_end).count();
    if (batch->step + 1 == nan_at) {
      torch::NoGradGuard no_grad;
      trainer.model().parameters().front().fill_(NAN);
    }
    try {
      ev->stats = train_thread.Run([&] {
        UseTorchThreads(threads);
        return WithoutTorchFrames("train step " + std::to_string(batch->step + 1), [&] { return trainer.Step(*batch); });
      });
    } catch (const NonFiniteLoss&) {
      step_error = std::current_exception();
      failed = true;
      halted = true;
      ev->skipped = true;
      return ev;
    }
    ev->step = trainer.steps_done();
    ev->bytes = bytes_per_step;
    if (g_stop.load()) halted = true;
    ev->want_checkpoint = halted || Due(ev->step, config.checkpoint().every(), total);
    ev->want_eval = !halted && Due(ev->step, config.eval().every(), total);
    if (ev->want_eval) latest_eval = ev->step;
    if (ev->want_checkpoint || ev->want_eval) {
      const auto t0 = Clock::now();
      ev->snapshot = train_thread.Run(
          [&] { return WithoutTorchFrames("snapshot", [&] { return trainer.TakeSnapshot(ev->want_checkpoint); }); });
      if (ev->want_checkpoint) last_ckpt_step = ev->step;
      ev->stall_s = Since(t0);
      if (ev->want_checkpoint) {
        stall_total += ev->stall_s;
        ++stall_count;
      }
    }
    prev_end = Clock::now();
    wait_total += ev->wait_s;
    busy_total += std::chrono::duration<double>(prev_end - t_in).count();
    ++steps_run;
    return ev;
  };
  // An evaluation still queued when a newer one is due, or after a stop signal, is skipped:
  // a slow evaluation never piles up snapshots, and a stop is not held up by old evaluations.
  bodies.eval = [&](const EventPtr& in) -> EventPtr {
    if (in->skipped || !in->want_eval || g_stop.load() || in->step < latest_eval.load()) return nullptr;
    auto ev = std::make_shared<Event>();
    ev->kind = Event::Kind::kEval;
    ev->step = in->step;
    ev->eval = eval_thread.Run([&] { return evaluate(*in->snapshot); });
    return EventPtr(ev);
  };
  bodies.metrics = [&](const EventPtr& e) -> EventPtr {
    if (!e || e->skipped) return e;
    const double elapsed = Since(t_start);
    if (e->kind == Event::Kind::kEval) {
      record_eval(e->step, e->eval);
      return e;
    }
    const double step_wall = e->stats.seconds + e->stall_s + e->wait_s;
    json rec = {{"step", e->step}, {"loss", e->stats.loss}, {"lr", e->stats.lr}, {"grad_norm", e->stats.grad_norm},
                {"bytes_per_s", step_wall > 0 ? e->bytes / step_wall : 0.0},
                {"data_wait_frac", step_wall > 0 ? e->wait_s / step_wall : 0.0}, {"step_s", e->stats.seconds},
                {"step_wall_s", step_wall},
                {"elapsed_s", elapsed}};
    if (e->want_checkpoint) rec["ckpt_stall_s"] = e->stall_s;
    metrics.Write(rec);
    std::vector<std::pair<std::string, double>> scalars = {
        {"train/loss", e->stats.loss}, {"train/lr", e->stats.lr}, {"train/grad_norm", e->stats.grad_norm},
        {"train/bytes_per_s", rec["bytes_per_s"].get<double>()}, {"train/data_wait_frac", rec["data_wait_frac"].get<double>()}};
    if (e->want_checkpoint) scalars.emplace_back("train/ckpt_stall_s", e->stall_s);
    events.AddScalars(e->step, pipeline::UnixSeconds(), scalars);
    events.Flush();
    if (config.log_every() > 0 && (e->step % config.log_every() == 0 || e->step == total || e->want_checkpoint)) {
      const double done = static_cast<double>(e->step - start);
      const double eta = done > 0 ? elapsed / done * static_cast<double>(total - e->step) : 0;
      char line[200];
      std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f  lr %s  %s/s  wait %.1f%%  eta %s",
                    (long long)e->step, (long long)total, e->stats.loss, FormatLr(e->stats.lr).c_str(),
                    pipeline::Progress::FormatBytes(step_wall > 0 ? e->bytes / step_wall : 0).c_str(),
                    step_wall > 0 ? 100.0 * e->wait_s / step_wall : 0.0, pipeline::Progress::FormatDuration(eta).c_str());
      log(line);
    }
    return e;
  };
  bodies.checkpoint = [&](const EventPtr& e) {
    if (!e) return;
    if (e->kind == Event::Kind::kEval) sink.RecordEval(e->step, e->eval.bpb);
    else if (e->want_checkpoint) sink.Submit(e->snapshot);
  };
  Graph g("train");
  WireTrainGraph(g, config, start, bodies);

  auto last_good = [&] {
    const auto good = ListCheckpoints(fs, ckpt_dir);
    return "; last good checkpoint: " + (good.empty() ? std::string("none") : io::JoinPath(ckpt_dir, good.back()));
  };
  try {
    pipeline::Monitor::Watch watch(monitor, g);  // the graph's figures, while it runs
    g.Run();
  } catch (const pipeline::NodeError& e) {
    try {
      sink.Flush();
    } catch (...) {
    }
    const std::string what = e.what();
    const std::string message = what.substr(what.find(": ") + 2) + last_good();
    throw pipeline::NodeError(e.node(), message, WithMessage(e.cause(), message));
  }
  if (step_error) {
    sink.Flush();
    try {
      std::rethrow_exception(step_error);
    } catch (const std::exception& e) {
      const std::string message = e.what() + last_good();
      throw pipeline::NodeError("train_step", message, WithMessage(step_error, message));
    }
  }
  // Whatever the graph did not checkpoint (a stop seen only by the source) is saved now.
  if (trainer.steps_done() > start && last_ckpt_step.load() != trainer.steps_done()) {
    const auto t0 = Clock::now();
    sink.Submit(WithoutTorchFrames("snapshot", [&] { return trainer.TakeSnapshot(true); }));
    stall_total += Since(t0);
    ++stall_count;
  }
  sink.Flush();

  summary.end_step = trainer.steps_done();
  summary.interrupted = g_stop.load() && summary.end_step < total;
  summary.seconds = Since(t_start);
  const double loop_wall = wait_total + busy_total;
  summary.bytes_per_s = loop_wall > 0 ? static_cast<double>(steps_run * bytes_per_step) / loop_wall : 0;
  summary.mean_step_s = steps_run > 0 ? busy_total / steps_run : 0;
  summary.data_wait_frac = loop_wall > 0 ? wait_total / loop_wall : 0;
  summary.ckpt_stall_s = stall_count > 0 ? stall_total / stall_count : 0;
  const CheckpointSink::Stats cs = sink.stats();
  summary.checkpoints_written = cs.written;
  summary.checkpoints_replaced = cs.replaced;
  summary.final_val_bpb = last_bpb;
  summary.stats_table = g.StatsTable(summary.seconds, threads);
  monitor.Finish(summary.interrupted ? "interrupted" : "finished");
  return summary;
}

std::string DescribeTrainJob(const TrainOptions& o) {
  const pb::TrainConfig config = ResolveConfig(o);
  Graph g("train");
  const TrainBodies none;  // never called: the graph does not run
  WireTrainGraph(g, config, 0, none);
  return pipeline::DescribeJson("train", {g.Describe()});
}

// ---- inference ----

namespace {

// A checkpoint's model, ready for inference on `device_name`, with LibTorch's threads set.
struct InferenceModel {
  std::string dir;
  torch::Device device;
  std::shared_ptr<models::ByteModel> model;
  int64_t window;        // data.seq_len it was trained with: evaluation windows, as during training
  uint64_t dataset_id;   // the data it was trained on (0: not recorded)
};

InferenceModel LoadInferenceModel(const std::string& checkpoint, int threads, const std::string& device_name) {
  UseTorchThreads(threads > 0 ? threads : pipeline::DefaultThreads());
  const torch::Device device = ParseDevice(device_name);
  LoadedCheckpoint ckpt = LoadForInference(checkpoint, [](const std::string& m) { std::fprintf(stderr, "warning: %s\n", m.c_str()); });
  pb::TrainConfig config;
  try {  // a checkpoint whose config does not parse or is out of bounds is damaged data
    config = ParseConfigText(ckpt.snapshot.config_text, ckpt.dir + "/meta.pb");
    FillDefaults(config);
    models::ValidateModelConfig(config.model());
    if (config.data().seq_len() < 2 || config.data().seq_len() > limits::kMaxSeqLen)
      throw std::invalid_argument("config field data.seq_len: " + std::to_string(config.data().seq_len()) + " is out of bounds");
  } catch (const std::invalid_argument& e) {
    throw DataError(ckpt.dir + "/meta.pb: the checkpoint's config is not usable: " + e.what());
  }
  auto model = WithoutTorchFrames("loading " + ckpt.dir, [&] { return ModelFromSnapshot(ckpt.snapshot, config.model(), device); });
  return {ckpt.dir, device, model, config.data().seq_len(), ckpt.snapshot.dataset_id};
}

void CheckThreads(int threads) {
  if (threads < 0 || threads > limits::kMaxThreads)
    throw std::invalid_argument("--threads must be in [0, " + std::to_string(limits::kMaxThreads) + "] (0: all cores), got " +
                                std::to_string(threads));
}

}  // namespace

void ValidateEvalOptions(const EvalOptions& o) {
  CheckThreads(o.threads);
  if (o.max_bytes < 0 || o.max_bytes > limits::kMaxEvalBytes)
    throw std::invalid_argument("--max-bytes must be in [0, " + std::to_string(limits::kMaxEvalBytes) + "] (0: all), got " +
                                std::to_string(o.max_bytes));
  if (o.batch_size < 1 || o.batch_size > limits::kMaxBatch)
    throw std::invalid_argument("--batch-size must be in [1, " + std::to_string(limits::kMaxBatch) + "], got " +
                                std::to_string(o.batch_size));
}

void ValidateGenerateOptions(const GenerateOptions& o) {
  CheckThreads(o.threads);
  if (!(o.temperature == 0 || (o.temperature >= limits::kMinTemperature && o.temperature <= limits::kMaxTemperature))) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "--temperature must be 0 (greedy) or in [%g, %g], got %g", limits::kMinTemperature,
                  limits::kMaxTemperature, o.temperature);
    throw std::invalid_argument(buf);
  }
  if (o.top_k < 0 || o.top_k > limits::kMaxTopK)
    throw std::invalid_argument("--top-k must be in [0, " + std::to_string(limits::kMaxTopK) + "] (0: all), got " +
                                std::to_string(o.top_k));
  if (o.n < 0 || o.n > limits::kMaxGenerateBytes)
    throw std::invalid_argument("-n must be in [0, " + std::to_string(limits::kMaxGenerateBytes) + "], got " + std::to_string(o.n));
  if (o.prompt.empty()) throw std::invalid_argument("--prompt must not be empty: the model needs at least one byte of context");
}

EvalSummary RunEval(const EvalOptions& o) {
  ValidateEvalOptions(o);
  const InferenceModel m = LoadInferenceModel(o.checkpoint, o.threads, o.device);
  if (int64_t{o.batch_size} * m.window > limits::kMaxEvalMicroBatchBytes)
    throw std::invalid_argument("--batch-size " + std::to_string(o.batch_size) + " x the checkpoint's window " +
                                std::to_string(m.window) + " = " + std::to_string(int64_t{o.batch_size} * m.window) +
                                " bytes a forward pass; at most " + std::to_string(limits::kMaxEvalMicroBatchBytes));
  std::vector<std::string> owned;
  if (!o.data_dir.empty()) {
    const auto data = shard::Dataset::Open(o.data_dir);
    CheckDataset(*data);
    const uint64_t id = data->manifest().dataset_id();
    // Evaluating a model on other data is legitimate (how well does it transfer?): a warning,
    // so the figure is not taken for the run's own val bpb.
    if (m.dataset_id != 0 && m.dataset_id != id)
      std::fprintf(stderr, "warning: %s (dataset id %s) is not the dataset %s was trained on (dataset id %s)\n",
                   o.data_dir.c_str(), HexId(id).c_str(), m.dir.c_str(), HexId(m.dataset_id).c_str());
    const uint64_t n = data->SplitBytes(shard::Split::kVal);
    owned.push_back(data->Read(shard::Split::kVal, 0, o.max_bytes > 0 ? std::min<uint64_t>(n, o.max_bytes) : n));
  }
  for (const std::string& f : o.files) {
    owned.push_back(io::ReadFile(io::Posix(), f));
    if (o.max_bytes > 0 && owned.back().size() > static_cast<uint64_t>(o.max_bytes)) owned.back().resize(o.max_bytes);
  }
  if (owned.empty()) throw std::invalid_argument("nothing to evaluate: give --data DIR or files");
  std::vector<std::string_view> streams(owned.begin(), owned.end());
  if (PredictedBytes(streams) == 0) throw std::invalid_argument("the inputs have no byte to predict (each needs at least 2 bytes)");
  const EvalResult r =
      WithoutTorchFrames("evaluation", [&] { return EvaluateBpb(*m.model, streams, m.window, o.batch_size, m.device); });
  return {r.bpb, r.bytes, r.seconds, m.dir};
}

std::string Generate(const GenerateOptions& o, const std::function<void(char)>& emit) {
  ValidateGenerateOptions(o);
  const InferenceModel m = LoadInferenceModel(o.checkpoint, o.threads, o.device);
  return WithoutTorchFrames("generate", [&] {
    models::ByteModel& model = *m.model;
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
    std::string text = o.prompt, out;
    // No window longer than the training windows: positions beyond them were never trained.
    NextByte next_byte(model, std::min(model.context(), m.window), m.device, o.recurrent);
    for (int64_t i = 0; i < o.n; ++i) {
      torch::Tensor logits = next_byte.Logits(text);
      int64_t next;
      if (o.temperature == 0) {
        next = logits.argmax().item<int64_t>();
      } else {
        logits = logits / o.temperature;
        if (o.top_k > 0 && o.top_k < 256) {
          const torch::Tensor kth = std::get<0>(logits.topk(o.top_k)).min();
          logits = logits.masked_fill(logits < kth, -INFINITY);
        }
        const torch::Tensor p = torch::softmax(logits, -1);
        if (!torch::isfinite(p).all().item<bool>())
          throw std::runtime_error("the model's next-byte probabilities are not finite after " + std::to_string(i) +
                                   " bytes (a damaged checkpoint?)");
        next = torch::multinomial(p, 1, false, gen).item<int64_t>();
      }
      const char c = static_cast<char>(static_cast<uint8_t>(next));
      text.push_back(c);
      out.push_back(c);
      if (emit) emit(c);
    }
    return out;
  });
}

}  // namespace bitbyte::train
