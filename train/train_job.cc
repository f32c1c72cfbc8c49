#include "train/train_job.h"

#include <tbb/version.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/cpu.h"
#include "base/error.h"
#include "base/file_io.h"
#include "base/stop_signals.h"
#include "base/version.h"
#include "models/blas.h"
#include "models/linear.h"
#include "models/precision.h"
#include "models/qat.h"
#include "models/quant.h"
#include "models/registry.h"
#include "pipeline/graph.h"
#include "pipeline/monitor.h"
#include "runs/layout.h"
#include "runs/metrics_log.h"
#include "runs/run_json.h"
#include "runs/tensorboard.h"
#include "sharding/reader.h"
#include "train/batches.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/evaluator.h"
#include "train/generation.h"
#include "train/precision.h"
#include "train/quantized_checkpoint.h"
#include "train/train_graph.h"
#include "train/trainer.h"

namespace bitbyte::train {
namespace {

using json = nlohmann::json;

using runs::kCheckpointDir;
using runs::kConfigFile;
using runs::kMetricsFile;
using runs::kRunFile;

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");  // a /proc file has no size to read by
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) return line.substr(line.find(':') + 2);
  return "unknown";
}

// What the numbers depend on besides the config: recorded in run.json.
json Environment(int threads, const torch::Device& device) {
  const std::string core = models::OpenBlasCore();
  return {{"threads", threads},
          {"device", device.str()},
          {"libtorch", TORCH_VERSION},
          {"blas_core", core.empty() ? "unknown (not OpenBLAS)" : core},
          {"openblas_coretype_env", models::UserOpenBlasCore()},
          {"blas_chosen_by", models::BlasInUse().chosen_by},
          {"blas_choice", models::BlasInUse().detail},
          {"linear_matmul", models::MatmulPathName(models::LinearPath().path)},
          {"linear_matmul_choice", models::LinearPath().detail},
          {"cpu_features", cpu::This().Summary()},
          {"bitbyte", kVersion},
          {"tbb", TBB_VERSION_STRING},
          {"cpu", CpuModel()},
          {"host", pipeline::HostName()}};
}

std::string HexId(uint64_t id) {  // as `bitbyte inspect` prints a dataset id
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

// What a run's run.json says, read so that garbage or wrong types only cost a warning naming
// the file (it is a record for people and tools, rewritten at every start).
struct RunRecord {
  runs::RunJson json;   // empty when the file is missing, unreadable or not a JSON object
  std::string problem;  // why json.data is empty, for an error message
};

RunRecord ReadRunRecord(io::FileSystem& fs, const std::string& path,
                        const std::function<void(const std::string&)>& warn) {
  RunRecord r;
  if (!fs.Exists(path)) {
    r.problem = "there is no " + path;
    return r;
  }
  std::string text, why;
  try {
    text = io::ReadFile(fs, path);
  } catch (const std::exception& e) {
    warn(std::string(e.what()) + "; ignoring " + path);
    r.problem = "cannot read " + path;
    return r;
  }
  std::optional<runs::RunJson> j = runs::ParseRunJson(text, &why);
  if (!j) {
    warn(path + " is not a JSON object (damaged?); ignoring it");
    r.problem = path + " is damaged";
    return r;
  }
  for (const std::string& w : j->warnings) warn(path + ": " + w);
  if (j->data.empty()) r.problem = j->has_data ? path + " has no usable \"data\"" : path + " does not name the dataset";
  r.json = std::move(*j);
  return r;
}

void CheckDataset(const shard::Dataset& data) {
  if (data.SplitBytes(shard::Split::kVal) < 2)
    throw Error("dataset " + data.dir() + " has no validation split (" +
                std::to_string(data.SplitBytes(shard::Split::kVal)) +
                " bytes); shard it again with --val-fraction above 0");
}

// Calibration windows of `window` bytes, spread evenly over the train split: calib_bytes / window
// of them (a function of the split and calib_bytes only). `what` names the option for errors.
std::vector<std::string> CalibrationWindows(const shard::Dataset& data, const std::string& dir, int64_t calib_bytes,
                                            int64_t window, const std::string& what) {
  const uint64_t train = data.SplitBytes(shard::Split::kTrain);
  if (train < static_cast<uint64_t>(window))
    throw UsageError(dir + ": the train split (" + std::to_string(train) + " bytes) is shorter than one " +
                     std::to_string(window) + "-byte calibration window");
  if (calib_bytes < window)
    throw UsageError(what + " " + std::to_string(calib_bytes) + " is less than one calibration window (" +
                     std::to_string(window) + " bytes, the checkpoint's data.seq_len)");
  const uint64_t n = static_cast<uint64_t>(calib_bytes) / window;
  std::vector<std::string> out;
  for (uint64_t i = 0; i < n; ++i)
    out.push_back(data.Read(shard::Split::kTrain, n == 1 ? 0 : i * (train - window) / (n - 1), window));
  return out;
}

// Windows a calibration forward pass: measured 1 MiB of int8 static calibration on 2 cores
// (AMD EPYC, bf16): 4 windows 32.7 s, 8 30.2 s, 16 36.2 s, 64 133.6 s.
constexpr size_t kCalibrationBatch = 8;

// Runs `windows` (of equal length) through `model`, kCalibrationBatch a forward pass, for a live
// quant::Calibrator to record what it needs; `bf16`: under bf16 autocast. `progress(done)` after
// each pass. Returns the bytes run.
uint64_t RunCalibration(models::ByteModel& model, const std::vector<std::string>& windows, bool bf16,
                        const std::function<void(size_t)>& progress) {
  models::Bf16Scope scope(torch::kCPU, bf16);
  torch::NoGradGuard no_grad;
  uint64_t bytes = 0;
  for (size_t i = 0; i < windows.size(); i += kCalibrationBatch) {
    const size_t n = std::min<size_t>(kCalibrationBatch, windows.size() - i);
    const int64_t len = static_cast<int64_t>(windows[i].size());
    torch::Tensor x = torch::empty({static_cast<int64_t>(n), len}, torch::kUInt8);
    for (size_t k = 0; k < n; ++k) std::memcpy(x[k].data_ptr(), windows[i + k].data(), len);
    model.Trace(x.to(torch::kLong));
    bytes += n * len;
    if (progress) progress(i + n);
  }
  return bytes;
}

// The LibTorch side of the training graph: the trainer, and a second model for evaluating
// snapshots on the eval thread while training goes on.
class TorchBackend : public TrainBackend {
 public:
  // `calibration`: windows of the train split for quant_eval's int4 calibration.
  TorchBackend(const pb::TrainConfig& config, torch::Device device, int threads, std::string val_bytes,
               std::vector<std::string> calibration)
      : config_(config),
        device_(device),
        threads_(threads),
        val_bytes_(std::move(val_bytes)),
        calibration_(std::move(calibration)) {
    WithoutTorchFrames("building the model", [&] {
      trainer_.emplace(config, device);
      // Built before Restore: its initialisation draws from the generator Restore then resets, so a
      // resumed run's random stream (dropout) continues exactly where the checkpoint left it.
      eval_model_ = models::CreateModel(config.model());
      eval_model_->to(device);
      return 0;
    });
  }
  Trainer& trainer() { return *trainer_; }

  int64_t steps_done() const override { return trainer_->steps_done(); }
  StepStats Step(const Batch& batch) override {
    UseTorchThreads(threads_);
    if (!named_train_team_) models::NameTorchThreads("omp-train"), named_train_team_ = true;
    return WithoutTorchFrames("train step " + std::to_string(batch.step + 1), [&] { return trainer_->Step(batch); });
  }
  std::shared_ptr<const Snapshot> TakeSnapshot(bool with_optimizer) override {
    return WithoutTorchFrames("snapshot", [&] { return trainer_->TakeSnapshot(with_optimizer); });
  }
  EvalResult Evaluate(const Snapshot& weights) override {
    UseTorchThreads(threads_);
    if (!named_eval_team_) models::NameTorchThreads("omp-eval"), named_eval_team_ = true;
    return WithoutTorchFrames("evaluation", [&] {
      LoadModule(*eval_model_, "model/", weights);
      UseDepthAt(*eval_model_, config_, weights.step);
      return EvaluateBpb(*eval_model_, {std::string_view(val_bytes_)}, config_.data().seq_len(),
                         config_.eval().batch_size(), device_);
    });
  }
  std::shared_ptr<const Snapshot> Quantize(const Snapshot& weights, const std::string& scheme) override {
    UseTorchThreads(threads_);
    return WithoutTorchFrames("quantization (" + scheme + ")", [&] {
      if (!quant_model_) {
        quant_model_ = models::CreateModel(config_.model());
        quant_model_->eval();
      }
      LoadModule(*quant_model_, "model/", weights);
      UseDepthAt(*quant_model_, config_, weights.step);
      models::quant::QuantizeOptions qo;
      qo.scheme = models::quant::ParseScheme(scheme);
      qo.group = config_.quant_eval().group();
      std::unique_ptr<models::quant::Calibrator> calibration;
      if (qo.scheme == models::quant::Scheme::kInt4) {  // GPTQ's Hessians
        calibration = std::make_unique<models::quant::Calibrator>(*quant_model_, qo);
        // In the precision of the forward it runs: a QAT model's is the quantized one (on from
        // construction), whatever the step.
        const bool qat = config_.model().qat().scheme() != "none";
        RunCalibration(*quant_model_, calibration_, (qat ? config_.qat_precision() : config_.precision()) == "bf16",
                       nullptr);
        qo.calibration = calibration.get();
      }
      const models::quant::QuantizedModel q(*quant_model_, qo);
      calibration.reset();
      return std::make_shared<const Snapshot>(QuantizedSnapshot(*quant_model_, q, weights));
    });
  }
  EvalResult EvaluateQuantized(const Snapshot& quantized) override {
    UseTorchThreads(threads_);
    return WithoutTorchFrames("quantized evaluation", [&] {
      std::unique_ptr<models::quant::QuantizedModel> q;
      const std::shared_ptr<models::ByteModel> model = ModelFromQuantizedSnapshot(quantized, config_.model(), &q);
      UseDepthAt(*model, config_, quantized.step);
      const EvalResult r = EvaluateBpb(*model, {std::string_view(val_bytes_)}, config_.data().seq_len(),
                                       config_.eval().batch_size(), torch::kCPU);
      q.reset();  // unregistered before its model goes
      return r;
    });
  }
  Telemetry MeasureTelemetry(const Snapshot& weights) override {
    UseTorchThreads(threads_);
    return WithoutTorchFrames("telemetry", [&] {
      if (!telemetry_model_) {
        telemetry_model_ = models::CreateModel(config_.model());
        telemetry_model_->to(device_);
      }
      LoadModule(*telemetry_model_, "model/", weights);
      UseDepthAt(*telemetry_model_, config_, weights.step);
      const size_t n = std::min<size_t>(val_bytes_.size(), static_cast<size_t>(config_.telemetry().probe_bytes()) + 1);
      return TextTelemetry(*telemetry_model_, std::string_view(val_bytes_).substr(0, n), config_.data().seq_len(),
                           device_);
    });
  }
  void PoisonWeights() override {
    torch::NoGradGuard no_grad;
    trainer_->model().parameters().front().fill_(NAN);
  }

 private:
  const pb::TrainConfig& config_;
  const torch::Device device_;
  const int threads_;
  const std::string val_bytes_;
  const std::vector<std::string> calibration_;
  bool named_train_team_ = false, named_eval_team_ = false;  // each on its own thread: no race
  std::optional<Trainer> trainer_;
  std::shared_ptr<models::ByteModel> eval_model_;
  std::shared_ptr<models::ByteModel> quant_model_;      // quant_eval's (its own thread)
  std::shared_ptr<models::ByteModel> telemetry_model_;  // the telemetry node's (its own thread)
};

void CheckThreads(int threads) {
  if (threads < 0 || threads > limits::kMaxThreads)
    throw UsageError("--threads must be in [0, " + std::to_string(limits::kMaxThreads) + "] (0: all cores), got " +
                     std::to_string(threads));
}

}  // namespace

pb::TrainConfig ResolveConfig(const TrainOptions& o) {
  io::FileSystem& fs = o.fs ? *o.fs : io::Default();
  pb::TrainConfig config;
  std::optional<pb::TrainConfig> saved;
  bool saved_one_precision = false;
  if (o.resume) {
    const std::string path = io::JoinPath(o.run_dir, kConfigFile);
    if (!fs.Exists(path))
      throw UsageError("--resume " + o.run_dir + ": no " + kConfigFile + " there (not a run directory)");
    saved = ParseConfigText(io::ReadFile(fs, path), path);
    // Runs from before train.precision trained in float32.
    if (!saved->has_precision()) saved->set_precision("fp32");
    // Runs from before train.qat_precision ran their quantization-aware steps in `precision`
    // (and go on doing so: below, unless qat_precision is asked for).
    saved_one_precision = !saved->has_qat_precision();
    config = *saved;
  }
  if (!o.config_path.empty()) config = LoadConfigFile(o.config_path);
  if (!o.model.empty()) models::SetTrack(*config.mutable_model(), o.model);
  for (const std::string& s : o.overrides) ApplyOverride(config, s);
  if (o.steps) config.set_steps(*o.steps);
  FillDefaults(config);
  ValidateConfig(config);
  // A resumed run keeps the precision it resolved when it started unless another one is asked for.
  if (saved && config.precision() == "auto") config.set_precision(saved->precision());
  if (saved && config.qat_precision() == "auto")
    config.set_qat_precision(saved_one_precision ? config.precision() : saved->qat_precision());
  if (saved) {
    const std::string diff = IncompatibleField(*saved, config);
    if (!diff.empty())
      throw UsageError(
          "--resume " + o.run_dir + ": the requested config differs from the run's in " + diff +
          "; only steps, log_every, eval.every, precision, qat_precision, checkpoint.* and quant_eval.* may "
          "change on resume");
  }
  return config;
}

TrainSummary RunTraining(const TrainOptions& o) {
  pb::TrainConfig config = ResolveConfig(o);
  io::FileSystem& fs = o.fs ? *o.fs : io::Default();
  CheckThreads(o.threads);
  const int threads = o.threads > 0 ? o.threads : pipeline::DefaultThreads();
  const torch::Device device = ParseDevice(o.device);
  auto log = [&](const std::string& line) {
    if (o.console) std::fprintf(stderr, "%s\n", line.c_str());
  };
  auto warn = [](const std::string& line) { std::fprintf(stderr, "warning: %s\n", line.c_str()); };  // even with -q

  // ---- run directory ----
  if (o.allow_other_data && !o.resume)
    throw UsageError("--allow-other-data goes with --resume (a new run trains on the --data it is given)");
  fs.CreateDirs(o.run_dir);
  io::DirLock lock(o.run_dir);
  const std::string ckpt_dir = io::JoinPath(o.run_dir, kCheckpointDir);
  const std::string run_file = io::JoinPath(o.run_dir, kRunFile);
  std::string data_dir = o.data_dir;
  RunRecord saved_run;                     // the run's run.json, on resume
  std::optional<LoadedCheckpoint> loaded;  // the checkpoint to resume from
  if (o.resume) {
    saved_run = ReadRunRecord(fs, run_file, warn);
    if (data_dir.empty()) data_dir = saved_run.json.data;
    if (data_dir.empty())
      throw UsageError("--resume " + o.run_dir + ": " + saved_run.problem +
                       ", so the run's dataset is unknown; give it with --data DIR");
    if (saved_run.json.threads && *saved_run.json.threads != threads)
      warn("the run was trained with --threads " + std::to_string(*saved_run.json.threads) + ", this resume uses " +
           std::to_string(threads) + "; results are bit-exact only at the same thread count");
    loaded = LoadNewestGood(fs, ckpt_dir, warn);
  } else if (fs.Exists(io::JoinPath(o.run_dir, kConfigFile)) || fs.Exists(ckpt_dir)) {
    throw Error(o.run_dir + " already holds a training run; continue it with --resume " + o.run_dir +
                " or choose another --out");
  }
  if (data_dir.empty()) throw UsageError("--data is required");

  const auto data = shard::Dataset::Open(data_dir);
  CheckDataset(*data);
  const uint64_t dataset_id = data->manifest().dataset_id();
  const int rows = config.data().batch_size() * config.data().grad_accum();  // bounded by ValidateConfig
  const BatchSampler sampler(
      *data, config.seed(), rows, config.data().seq_len(),  // checks the train split
      ParseStages(config.growth().seq_len(), "growth.seq_len", 2, config.data().seq_len(), false));
  if (o.resume) {
    // The data the run was trained on: the checkpoint's record (what the weights saw), else
    // run.json's (a run without a usable checkpoint, or one from before checkpoints recorded it).
    uint64_t trained_on = 0;
    std::string where;
    if (loaded && loaded->snapshot.dataset_id != 0) {
      trained_on = loaded->snapshot.dataset_id;
      where = "checkpoint " + loaded->dir;
    } else if (saved_run.json.dataset_id) {
      trained_on = *saved_run.json.dataset_id;
      where = run_file;
    }
    if (trained_on == 0) {
      warn("cannot check that " + data_dir + " (dataset id " + HexId(dataset_id) + ") is the data of run " + o.run_dir +
           ": neither its checkpoint nor run.json records a dataset id");
    } else if (trained_on != dataset_id) {
      if (!o.allow_other_data)
        throw UsageError("--resume " + o.run_dir + ": dataset " + data_dir + " (dataset id " + HexId(dataset_id) +
                         ") is not the one this run was trained on (dataset id " + HexId(trained_on) +
                         ", recorded in " + where +
                         "); give the run's dataset with --data, or add "
                         "--allow-other-data to go on training on this one (fine-tuning)");
      warn("--allow-other-data: run " + o.run_dir + " was trained on dataset id " + HexId(trained_on) +
           "; it continues on " + data_dir + " (dataset id " + HexId(dataset_id) +
           "), and run.json now names that dataset");
    }
  }
  {
    // run.json first: config.txtpb is what marks a directory as a run, and a run must always
    // know its dataset (a kill between the two writes leaves a directory that is not a run yet).
    char cwd[4096];
    const std::string abs = (!data_dir.empty() && data_dir[0] == '/') || !::getcwd(cwd, sizeof cwd)
                                ? data_dir
                                : io::JoinPath(cwd, data_dir);
    runs::WriteRunJson(fs, run_file, Environment(threads, device), abs, dataset_id);
  }
  // ---- threads: one budget for TBB and LibTorch ----
  // LibTorch computes with `threads` OpenMP threads on the train thread (and on the eval thread
  // while an evaluation runs), from here on (the precision probe too).
  UseTorchThreads(threads);
  // precision "auto" becomes what this machine runs faster, measured (cached), before config.txtpb
  // records the run's config: a resume goes on in the same precision.
  const PhasePrecisions precision =
      WithoutTorchFrames("precision probe", [&] { return ResolvePhasePrecisions(config, device, threads); });
  config.set_precision(precision.fp.precision);
  config.set_qat_precision(precision.qat.precision);
  log("precision: " + precision.Describe());
  io::WriteFileAtomic(fs, io::JoinPath(o.run_dir, kConfigFile), ConfigToText(config));

  // TBB gets `threads` for data preparation and the sinks, plus one slot for each node that only
  // waits on a thread of its own (the train graph's arena is as wide), so no wait can starve the
  // prefetch, the metrics or the checkpoints.
  pipeline::ScopedParallelism parallelism(threads + TrainGraph::WaitingNodes(config));

  // ---- the model side ----
  const uint64_t val_len = config.eval().max_bytes() > 0
                               ? std::min<uint64_t>(config.eval().max_bytes(), data->SplitBytes(shard::Split::kVal))
                               : data->SplitBytes(shard::Split::kVal);
  std::vector<std::string> calibration;
  const std::vector<std::string> quant_schemes = QuantEvalSchemes(config);
  if (config.quant_eval().every() > 0) {
    if (device.type() != torch::kCPU)
      throw UsageError("config quant_eval.every: quantized evaluation runs on the CPU, not on " + device.str() +
                       " (set quant_eval.every=0)");
    if (std::find(quant_schemes.begin(), quant_schemes.end(), "int4") != quant_schemes.end())
      calibration = CalibrationWindows(*data, data_dir, config.quant_eval().calib_bytes(), config.data().seq_len(),
                                       "config quant_eval.calib_bytes");
  }
  TorchBackend backend(config, device, threads, data->Read(shard::Split::kVal, 0, val_len), std::move(calibration));
  Trainer& trainer = backend.trainer();
  trainer.set_dataset_id(dataset_id);
  int64_t start = 0;
  if (o.resume) {
    if (loaded) {
      pb::TrainConfig saved;
      try {
        saved = ParseConfigText(loaded->snapshot.config_text, loaded->dir + "/meta.pb");
      } catch (const UsageError& e) {
        throw DataError(std::string(e.what()) + " (the checkpoint's config)");
      }
      const std::string diff = IncompatibleField(saved, config);
      if (!diff.empty()) throw UsageError("checkpoint " + loaded->dir + " was trained with another config: " + diff);
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
      for (int i = 2; fs.Exists(aside); ++i)
        aside = io::JoinPath(ckpt_dir, "damaged-" + name + "-" + std::to_string(i));
      fs.Rename(io::JoinPath(ckpt_dir, name), aside);
      warn("moved unusable checkpoint " + name + " to " + aside);
    }
  }
  const int64_t total = config.steps();
  if (start >= total) log("the run already has " + std::to_string(start) + " of " + std::to_string(total) + " steps");
  log(trainer.model().Describe() + "; " + std::to_string(threads) + " threads, device " + device.str());
  if (device.is_cpu()) {
    const models::BlasDecision& blas = models::BlasInUse();
    log("BLAS: OpenBLAS core " + (blas.core.empty() ? std::string("(none)") : blas.core) + ", chosen by " +
        blas.chosen_by + " (" + blas.detail + "); float32 Linear layers on " +
        models::MatmulPathName(models::LinearPath().path) + " (" + models::LinearPath().detail + ")");
  }

  runs::MetricsLog metrics(io::JoinPath(o.run_dir, kMetricsFile), start, fs);
  // The same scalars for `tensorboard --logdir RUN_DIR` (docs/training.md: run directory).
  tb::EventWriter events(o.run_dir, start, fs);
  CheckpointSink sink(fs, ckpt_dir, config.checkpoint().keep(), log);

  // Test hook: poison a weight before step N (1-based, like metrics and checkpoint names).
  const char* nan_env = std::getenv("BITBYTE_TEST_NAN_AT_STEP");
  const int64_t nan_at = nan_env ? std::atoll(nan_env) : -1;

  StopSignals signals;
  TrainGraph job(config, {start, threads, nan_at}, backend, sampler, {metrics, events, sink, fs, ckpt_dir, log},
                 StopSignals::flag());
  return job.Run({io::JoinPath(o.run_dir, pipeline::kFiguresFile), "train", threads, o.figures_interval_s});
}

std::string DescribeTrainJob(const TrainOptions& o) {
  const pb::TrainConfig config = ResolveConfig(o);
  pipeline::Graph g("train");
  TrainGraph::Wire(g, config, 0, nullptr);  // no bodies: the graph does not run
  return pipeline::DescribeJson("train", {g.Describe()});
}

// ---- inference ----

namespace {

// A checkpoint's model, ready for inference on `device_name`, with LibTorch's threads set.
struct InferenceModel {
  std::string dir;
  torch::Device device;
  std::shared_ptr<models::ByteModel> model;
  int64_t window;       // data.seq_len it was trained with: evaluation windows, as during training
  uint64_t dataset_id;  // the data it was trained on (0: not recorded)
  // A quantized checkpoint's int8 forms, registered while this lives (declared after `model`:
  // destroyed before it).
  std::shared_ptr<models::quant::QuantizedModel> quantized;
  models::pb::ModelConfig model_config;
  pb::TelemetryConfig telemetry;  // the run's telemetry bounds (generation's gate)
  int64_t depth = -1;             // the blocks it runs (growth.depth at its step; -1: all)
  Snapshot header;                // the checkpoint's step, config, dataset and blobs, without its tensors
  uint64_t tensor_bytes = 0;      // of the tensors it held
};

InferenceModel LoadInferenceModel(const std::string& checkpoint, int threads, const std::string& device_name) {
  UseTorchThreads(threads > 0 ? threads : pipeline::DefaultThreads());
  const torch::Device device = ParseDevice(device_name);
  LoadedCheckpoint ckpt =
      LoadForInference(checkpoint, [](const std::string& m) { std::fprintf(stderr, "warning: %s\n", m.c_str()); });
  pb::TrainConfig config;
  try {  // a checkpoint whose config does not parse or is out of bounds is damaged data
    config = ParseConfigText(ckpt.snapshot.config_text, ckpt.dir + "/meta.pb");
    FillDefaults(config);
    models::ValidateModelConfig(config.model());
    if (config.data().seq_len() < 2 || config.data().seq_len() > limits::kMaxSeqLen)
      throw UsageError("config field data.seq_len: " + std::to_string(config.data().seq_len()) + " is out of bounds");
  } catch (const UsageError& e) {
    throw DataError(ckpt.dir + "/meta.pb: the checkpoint's config is not usable: " + e.what());
  }
  const std::string scheme = QuantScheme(ckpt.snapshot);
  if (!scheme.empty() && !device.is_cpu())
    throw UsageError(ckpt.dir + " is a quantized checkpoint (" + scheme + "): it runs on the CPU, not on " +
                     device.str());
  std::unique_ptr<models::quant::QuantizedModel> quantized;
  auto model = WithoutTorchFrames("loading " + ckpt.dir, [&] {
    return scheme.empty() ? ModelFromSnapshot(ckpt.snapshot, config.model(), device)
                          : ModelFromQuantizedSnapshot(ckpt.snapshot, config.model(), &quantized);
  });
  const int64_t depth = config.growth().depth().empty() ? -1 : DepthAt(config, ckpt.snapshot.step);
  model->SetActiveDepth(depth);
  InferenceModel m{ckpt.dir,
                   device,
                   model,
                   config.data().seq_len(),
                   ckpt.snapshot.dataset_id,
                   std::move(quantized),
                   config.model(),
                   config.telemetry(),
                   {}};
  m.depth = depth;
  for (const TensorBlob& t : ckpt.snapshot.tensors) m.tensor_bytes += t.data.size();
  ckpt.snapshot.tensors.clear();  // the model holds the weights: the checkpoint's copy is not kept
  m.header = std::move(ckpt.snapshot);
  return m;
}

// A second float32 model with `m`'s weights (from memory, not the checkpoint again).
InferenceModel CopyInferenceModel(const InferenceModel& m) {
  InferenceModel copy = m;
  copy.quantized = nullptr;
  copy.model = WithoutTorchFrames("copying the model", [&] {
    std::shared_ptr<models::ByteModel> model = models::CreateModel(m.model_config);
    torch::NoGradGuard no_grad;
    const auto from = m.model->named_parameters();
    for (auto& p : model->named_parameters()) p.value().copy_(from[p.key()]);
    const auto buffers = m.model->named_buffers();
    for (auto& b : model->named_buffers()) b.value().copy_(buffers[b.key()]);
    model->SetActiveDepth(m.depth);
    model->to(m.device);
    model->eval();
    return model;
  });
  return copy;
}

}  // namespace

namespace {

// --quantize: "", "int8" or "int4", on the CPU (the integer kernels are CPU ones).
void CheckQuantize(const std::string& scheme, const std::string& device) {
  if (scheme.empty()) return;
  models::quant::ParseScheme(scheme);
  if (device != "cpu") throw UsageError("--quantize " + scheme + " runs on the CPU, not on " + device);
}

// The model's Linear layers quantized while the result lives, when `scheme` says so (int4: rounded
// to nearest in groups of 64: no calibration data here; ternary: γ per tensor, or as a ternary
// QAT checkpoint trained it).
std::unique_ptr<models::quant::QuantizedModel> Quantize(const InferenceModel& m, const std::string& scheme) {
  if (scheme.empty()) return nullptr;
  if (m.quantized) throw UsageError("--quantize " + scheme + ": " + m.dir + " is already a quantized checkpoint");
  models::quant::QuantizeOptions qo;
  qo.scheme = models::quant::ParseScheme(scheme);
  // A ternary QAT checkpoint: ternary with the scales it trained with (the export's rounding).
  if (const models::qat::QatModel* qat = m.model->qat();
      qat != nullptr && qat->scheme() == models::qat::Scheme::kTernary)
    qo.per_channel = qat->per_channel();
  return std::make_unique<models::quant::QuantizedModel>(*m.model, qo);
}

// The quantize options of `bitbyte quantize`'s, without a calibration.
models::quant::QuantizeOptions QuantOptions(const QuantizeOptions& o) {
  models::quant::QuantizeOptions qo;
  qo.scheme = models::quant::ParseScheme(o.scheme);
  qo.group = o.group;
  qo.per_channel = o.ternary_scale == "channel";
  return qo;
}

// Whether `bitbyte quantize` calibrates: int8 with static activations, int4 with GPTQ (ternary never).
bool Calibrates(const QuantizeOptions& o) {
  if (o.scheme == "ternary") return false;
  return o.scheme == "int4" ? o.rounding == "gptq" : o.activations == "static";
}

}  // namespace

namespace {

// What the quantize graph's bodies share: the options, the validation text, the results.
struct QuantizeRun {
  explicit QuantizeRun(const QuantizeOptions& options) : o(options) {}
  const QuantizeOptions& o;
  int threads = 1;
  std::string val;                       // the validation text both models are evaluated on ("": no evaluation)
  std::unique_ptr<shard::Dataset> data;  // with --data: its train split feeds the calibration
  QuantizeSummary s;
  bool loaded = false;
};

// The float32 model and a second copy to quantize (the int8 forms are registered by weight, so the
// reference must not share them).
struct LoadedModels {
  std::shared_ptr<InferenceModel> reference, target;
  std::shared_ptr<models::quant::Calibrator> calibration;  // after `target`: unregistered first
};
struct QuantizedModels {
  std::shared_ptr<LoadedModels> loaded;
  std::unique_ptr<models::quant::QuantizedModel> q;  // after `loaded`: unregistered first
  Snapshot snap;
};
using LoadedPtr = std::shared_ptr<LoadedModels>;
using QuantizedPtr = std::shared_ptr<QuantizedModels>;

// load -> quantize -> write; with --data, load -> eval-reference and quantize -> eval-<scheme>.
// One wiring for the run and for `bitbyte graph quantize` (which never runs the bodies).
void WireQuantize(pipeline::Graph& g, QuantizeRun& r) {
  const auto none = [](const auto&) { return uint64_t{0}; };
  const auto evaluate = [&r](models::ByteModel& model, int64_t window) {
    return WithoutTorchFrames("evaluation", [&] {
      return EvaluateBpb(model, {std::string_view(r.val)}, window, 16, torch::Device(torch::kCPU));
    });
  };
  auto& load = g.Source<LoadedPtr>("load", [&r](LoadedPtr& out) {
    if (r.loaded) return false;
    r.loaded = true;
    out = std::make_shared<LoadedModels>();
    out->reference = std::make_shared<InferenceModel>(LoadInferenceModel(r.o.checkpoint, r.threads, "cpu"));
    if (out->reference->quantized)
      throw UsageError(out->reference->dir + " is already a quantized checkpoint (" +
                       QuantScheme(out->reference->header) + ")");
    out->target = std::make_shared<InferenceModel>(CopyInferenceModel(*out->reference));
    return true;
  });
  auto& quantize = g.Function<LoadedPtr, QuantizedPtr>(
      "quantize", 1,
      [&r](const LoadedPtr& in) {
        auto out = std::make_shared<QuantizedModels>();
        out->loaded = in;
        WithoutTorchFrames("quantize", [&] {
          models::quant::QuantizeOptions qo = QuantOptions(r.o);
          qo.calibration = in->calibration.get();  // static activation scales, or GPTQ's Hessians
          out->q = std::make_unique<models::quant::QuantizedModel>(*in->target->model, qo);
          in->calibration.reset();  // what it recorded is in the quantized forms now
          out->snap = QuantizedSnapshot(*in->target->model, *out->q, in->target->header);
          // The written model runs its quantized forms: not quantization-aware training's
          // quantizers any more (model.qat cleared, so that nothing applies both).
          pb::TrainConfig config = ParseConfigText(out->snap.config_text, in->target->dir);
          if (config.model().qat().scheme() != "none") {
            config.mutable_model()->clear_qat();
            out->snap.config_text = ConfigToText(config);
          }
        });
        return out;
      },
      none);
  auto& write = g.Function<QuantizedPtr, int>(
      "write", 1,
      [&r](const QuantizedPtr& in) {
        io::Default().CreateDirs(r.o.out);
        r.s.written = WriteCheckpoint(io::Default(), r.o.out, in->snap);
        r.s.layers = in->q->layers();
        r.s.source_bytes = in->loaded->target->tensor_bytes;
        for (const TensorBlob& t : in->snap.tensors) r.s.bytes += t.data.size();
        return 0;
      },
      none);
  if (Calibrates(r.o)) {
    // Calibration: the target model over the calibration windows (RunCalibration), what the
    // scheme needs of each Linear layer's inputs recorded (quant::Calibrator).
    auto& calibrate = g.Function<LoadedPtr, LoadedPtr>(
        "calibrate", 1,
        [&r](const LoadedPtr& in) {
          const auto t0 = std::chrono::steady_clock::now();
          double next_report = 10;
          const std::vector<std::string> windows =
              CalibrationWindows(*r.data, r.o.data_dir, r.o.calib_bytes, in->target->window, "--calib-bytes");
          WithoutTorchFrames("calibration", [&] {
            // Forward passes for statistics only: in the precision this machine runs the model
            // faster in (train/precision.h, measured once and cached).
            pb::TrainConfig config = ParseConfigText(in->target->header.config_text, in->target->dir);
            FillDefaults(config);
            config.set_precision("auto");
            r.s.calib_precision = ResolvePrecision(config, torch::kCPU, r.threads).precision;
            in->calibration = std::make_shared<models::quant::Calibrator>(*in->target->model, QuantOptions(r.o));
            r.s.calib_bytes =
                RunCalibration(*in->target->model, windows, r.s.calib_precision == "bf16", [&](size_t done) {
                  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                  if (t >= next_report && done < windows.size()) {  // long work says how far it is
                    std::fprintf(stderr, "calibrating: %zu of %zu windows, %.0f s\n", done, windows.size(), t);
                    next_report = t + 10;
                  }
                });
          });
          r.s.calib_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          return in;
        },
        none);
    g.Connect(load, calibrate, "model");
    g.Connect(calibrate, quantize, "model, calibrated");
  } else {
    g.Connect(load, quantize, "model");
  }
  g.Connect(quantize, write, "quantized model");
  if (r.o.data_dir.empty()) return;
  auto& eval_reference = g.Function<LoadedPtr, int>(
      "eval-reference", 1,
      [&r, evaluate](const LoadedPtr& in) {
        const EvalResult e = evaluate(*in->reference->model, in->reference->window);
        r.s.reference_bpb = e.bpb;
        r.s.reference_seconds = e.seconds;
        r.s.eval_bytes = e.bytes;
        return 0;
      },
      none);
  auto& eval_quantized = g.Function<QuantizedPtr, int>(
      "eval-" + r.o.scheme, 1,
      [&r, evaluate](const QuantizedPtr& in) {
        const EvalResult e = evaluate(*in->loaded->target->model, in->loaded->target->window);
        r.s.quantized_bpb = e.bpb;
        r.s.quantized_seconds = e.seconds;
        return 0;
      },
      none);
  g.Connect(load, eval_reference, "float32 model");
  g.Connect(quantize, eval_quantized, "quantized model");
  r.s.evaluated = true;
}

}  // namespace

namespace {

// --from-qat: the options the checkpoint's quantization-aware training implies.
QuantizeOptions FromQat(const QuantizeOptions& given) {
  QuantizeOptions o = given;
  const LoadedCheckpoint ckpt = LoadForInference(given.checkpoint, [](const std::string&) {});
  pb::TrainConfig config = ParseConfigText(ckpt.snapshot.config_text, ckpt.dir + "/meta.pb");
  FillDefaults(config);
  const std::string& scheme = config.model().qat().scheme();
  if (scheme == "none")
    throw UsageError("--from-qat: " + ckpt.dir + " was not trained quantization-aware (its model.qat.scheme is none)");
  o.scheme = scheme;
  o.group = config.model().qat().group();
  o.rounding = "nearest";
  o.ternary_scale = config.model().qat().ternary_scale();
  return o;
}

}  // namespace

std::string DescribeQuantizeJob(const QuantizeOptions& given) {
  const QuantizeOptions o = given.from_qat ? FromQat(given) : given;
  pipeline::Graph g("quantize");
  QuantizeRun r{o};
  WireQuantize(g, r);  // no run: the bodies never execute
  return pipeline::DescribeJson("quantize", {g.Describe()});
}

QuantizeSummary RunQuantize(const QuantizeOptions& given) {
  const QuantizeOptions o = given.from_qat ? FromQat(given) : given;
  CheckThreads(o.threads);
  if (o.scheme.empty()) throw UsageError("--scheme: the schemes are int8, int4 and ternary");
  CheckQuantize(o.scheme, "cpu");
  if (o.out.empty()) throw UsageError("-o OUT: the directory to write the quantized checkpoint in");
  if (o.max_bytes < 0 || o.max_bytes > limits::kMaxEvalBytes)
    throw UsageError("--max-bytes must be in [0, " + std::to_string(limits::kMaxEvalBytes) + "] (0: all)");
  if (o.activations != "dynamic" && o.activations != "static")
    throw UsageError("--activations '" + o.activations + "': dynamic or static");
  if (o.activations == "static" && o.data_dir.empty())
    throw UsageError("--activations static calibrates on a dataset's train split: give --data DIR");
  if (o.scheme != "int8" && o.activations != "dynamic")
    throw UsageError("--activations static is for int8: " + o.scheme +
                     " scales each activation row as it comes (dynamic)");
  if (o.ternary_scale != "tensor" && o.ternary_scale != "channel")
    throw UsageError("--ternary-scale '" + o.ternary_scale + "': tensor or channel");
  if (o.rounding != "gptq" && o.rounding != "nearest")
    throw UsageError("--rounding '" + o.rounding + "': gptq or nearest");
  if (o.scheme == "int4" && o.rounding == "gptq" && o.data_dir.empty())
    throw UsageError(
        "int4 with --rounding gptq calibrates on a dataset's train split: give --data DIR, or "
        "--rounding nearest");
  if (o.group < 2 || o.group % 2 != 0 || o.group > 4096)
    throw UsageError("--group-size must be even and in [2, 4096], got " + std::to_string(o.group));
  if (o.calib_bytes < 1 || o.calib_bytes > limits::kMaxEvalBytes)
    throw UsageError("--calib-bytes must be in [1, " + std::to_string(limits::kMaxEvalBytes) + "]");
  if (io::Default().Exists(o.out) && !ListCheckpoints(io::Default(), o.out).empty())
    throw UsageError("-o " + o.out + " already holds checkpoints: give a new directory");
  QuantizeRun r{o};
  r.s.scheme = o.scheme;
  r.threads = o.threads > 0 ? o.threads : pipeline::DefaultThreads();
  if (!o.data_dir.empty()) {
    std::unique_ptr<shard::Dataset> data = shard::Dataset::Open(o.data_dir);
    CheckDataset(*data);
    const uint64_t n = data->SplitBytes(shard::Split::kVal);
    r.val = data->Read(shard::Split::kVal, 0, o.max_bytes > 0 ? std::min<uint64_t>(n, o.max_bytes) : n);
    if (PredictedBytes({r.val}) == 0) throw UsageError(o.data_dir + ": the validation split has no byte to predict");
    r.data = std::move(data);
  }
  pipeline::ScopedParallelism parallelism(r.threads);
  pipeline::Graph g("quantize");
  WireQuantize(g, r);
  g.Run();
  return r.s;
}

void ValidateEvalOptions(const EvalOptions& o) {
  CheckThreads(o.threads);
  if (o.precision != "fp32" && o.precision != "bf16")
    throw UsageError("--precision '" + o.precision + "': fp32 or bf16");
  CheckQuantize(o.quantize, o.device);
  if (o.max_bytes < 0 || o.max_bytes > limits::kMaxEvalBytes)
    throw UsageError("--max-bytes must be in [0, " + std::to_string(limits::kMaxEvalBytes) + "] (0: all), got " +
                     std::to_string(o.max_bytes));
  if (o.batch_size < 1 || o.batch_size > limits::kMaxBatch)
    throw UsageError("--batch-size must be in [1, " + std::to_string(limits::kMaxBatch) + "], got " +
                     std::to_string(o.batch_size));
}

void ValidateGenerateOptions(const GenerateOptions& o) {
  CheckThreads(o.threads);
  CheckQuantize(o.quantize, o.device);
  if (!(o.temperature == 0 || (o.temperature >= limits::kMinTemperature && o.temperature <= limits::kMaxTemperature))) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "--temperature must be 0 (greedy) or in [%g, %g], got %g", limits::kMinTemperature,
                  limits::kMaxTemperature, o.temperature);
    throw UsageError(buf);
  }
  if (o.top_k < 0 || o.top_k > limits::kMaxTopK)
    throw UsageError("--top-k must be in [0, " + std::to_string(limits::kMaxTopK) + "] (0: all), got " +
                     std::to_string(o.top_k));
  if (!o.gate.empty() && o.gate != "off" && o.gate != "flag" && o.gate != "refuse")
    throw UsageError("--gate: must be off, flag or refuse, got '" + o.gate + "'");
  if (o.n < 0 || o.n > limits::kMaxGenerateBytes)
    throw UsageError("-n must be in [0, " + std::to_string(limits::kMaxGenerateBytes) + "], got " +
                     std::to_string(o.n));
  if (o.prompt.empty()) throw UsageError("--prompt must not be empty: the model needs at least one byte of context");
}

EvalSummary RunEval(const EvalOptions& o) {
  ValidateEvalOptions(o);
  const InferenceModel m = LoadInferenceModel(o.checkpoint, o.threads, o.device);
  if (int64_t{o.batch_size} * m.window > limits::kMaxEvalMicroBatchBytes)
    throw UsageError("--batch-size " + std::to_string(o.batch_size) + " x the checkpoint's window " +
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
  if (owned.empty()) throw UsageError("nothing to evaluate: give --data DIR or files");
  std::vector<std::string_view> streams(owned.begin(), owned.end());
  if (PredictedBytes(streams) == 0)
    throw UsageError("the inputs have no byte to predict (each needs at least 2 bytes)");
  const auto quantized = Quantize(m, o.quantize);
  const EvalResult r = WithoutTorchFrames("evaluation", [&] {
    // bf16: the matrix products in bfloat16 through autocast, as a bf16 training step runs them
    // (models/precision.h); a quantized layer keeps its own kernels.
    models::Bf16Scope bf16(m.device, o.precision == "bf16");
    return EvaluateBpb(*m.model, streams, m.window, o.batch_size, m.device);
  });
  return {r.bpb, r.bound, r.bytes, r.seconds, m.dir};
}

namespace {

// Telemetry of a generation and the gate's verdict: filled into `report`, refused by throwing.
void GateGenerated(const Telemetry& t, const pb::TelemetryConfig& bounds, const std::string& gate,
                   GenerateReport* report) {
  const std::string violation = gate == "off" ? "" : GateViolation(bounds, t);
  if (report != nullptr) {
    report->telemetry = t;
    report->violation = violation;
  }
  if (!violation.empty() && gate == "refuse")
    throw TelemetryGateError("telemetry gate: the generated text's " + violation + " (telemetry.generation_gate " +
                             "refuse: nothing written; --gate flag writes it with a warning)");
}

// A diffusion model's generation: blocks of bytes, each denoised at once after the last half
// window of the text (at most the training window in all).
std::string GenerateByDenoising(const GenerateOptions& o, const InferenceModel& m,
                                const std::function<void(char)>& emit, const std::string& gate,
                                GenerateReport* report) {
  if (o.top_k > 0)
    throw UsageError("--top-k: a diffusion-mode model draws bits, not bytes from a distribution over 256");
  models::ByteModel& model = *m.model;
  const int64_t window = std::min(model.context(), m.window);
  const int64_t steps = o.denoise_steps > 0 ? o.denoise_steps : m.model_config.bit_transformer_lm().diffusion_steps();
  std::vector<torch::Tensor> qs;
  std::string text = o.prompt, out;
  WithoutTorchFrames("generate", [&] {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
    while (static_cast<int64_t>(out.size()) < o.n) {
      const int64_t ctx = std::min<int64_t>(static_cast<int64_t>(text.size()), std::max<int64_t>(1, window / 2));
      const int64_t n = std::min<int64_t>(o.n - static_cast<int64_t>(out.size()), window + 1 - ctx);
      torch::Tensor c = torch::empty({1, ctx}, torch::kUInt8);
      std::memcpy(c.data_ptr(), text.data() + text.size() - ctx, ctx);
      const models::ByteModel::Denoised d =
          model.Denoise(c.to(m.device).to(torch::kLong), n, steps, o.temperature, gen);
      const torch::Tensor bytes = d.bytes.to(torch::kCPU).contiguous();
      for (int64_t i = 0; i < n; ++i) {
        const char ch = static_cast<char>(static_cast<uint8_t>(bytes[i].item<int64_t>()));
        text.push_back(ch);
        out.push_back(ch);
        if (emit) emit(ch);
      }
      qs.push_back(d.q);
    }
    return 0;
  });
  if (out.empty()) return out;
  GateGenerated(BitTelemetry(torch::cat(qs), out, o.prompt + out), m.telemetry, gate, report);
  return out;
}

}  // namespace

std::string Generate(const GenerateOptions& o, const std::function<void(char)>& emit, GenerateReport* report) {
  ValidateGenerateOptions(o);
  const InferenceModel m = LoadInferenceModel(o.checkpoint, o.threads, o.device);
  const auto quantized = Quantize(m, o.quantize);
  const std::string gate = o.gate.empty() ? m.telemetry.generation_gate() : o.gate;
  // Refusing means writing nothing until the output has passed.
  const bool hold = gate == "refuse";
  std::vector<torch::Tensor> probs;  // each byte's distribution before temperature, for telemetry
  if (m.model->Denoises()) {
    const std::string out = GenerateByDenoising(o, m, hold ? std::function<void(char)>() : emit, gate, report);
    if (hold && emit)  // it passed the gate
      for (char c : out) emit(c);
    return out;
  }
  std::string generated = WithoutTorchFrames("generate", [&] {
    models::ByteModel& model = *m.model;
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
    std::string text = o.prompt, out;
    // No window longer than the training windows: positions beyond them were never trained.
    NextByte next_byte(model, std::min(model.context(), m.window), m.device, o.recurrent);
    for (int64_t i = 0; i < o.n; ++i) {
      torch::Tensor logits = next_byte.Logits(text);
      probs.push_back(torch::softmax(logits, -1));
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
          throw DataError("the model's next-byte probabilities are not finite after " + std::to_string(i) +
                          " bytes (a damaged checkpoint?)");
        next = torch::multinomial(p, 1, false, gen).item<int64_t>();
      }
      const char c = static_cast<char>(static_cast<uint8_t>(next));
      text.push_back(c);
      out.push_back(c);
      if (emit && !hold) emit(c);
    }
    return out;
  });
  if (generated.empty()) return generated;
  GateGenerated(GenerationTelemetry(torch::stack(probs), generated, o.prompt + generated), m.telemetry, gate, report);
  if (hold && emit)
    for (char c : generated) emit(c);
  return generated;
}

}  // namespace bitbyte::train
