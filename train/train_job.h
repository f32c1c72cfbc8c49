#pragma once
// The training job as one tbb::flow graph (docs/training.md):
//
//   batch_source -> prefetch (limiter, data.prefetch tokens) -> prepare (parallel) -> order
//     -> train_step (serial; returns the token) -> metrics (serial, metrics.jsonl + console)
//                                                -> eval (serial, val bpb on a model copy) -> metrics, checkpoint
//                                                -> checkpoint (hands snapshots to CheckpointSink)
//
// Torch-free header: the CLI includes it without Torch.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "train/telemetry.h"
#include "train/train_config.pb.h"

namespace bitbyte::io {
class FileSystem;
}

namespace bitbyte::train {

struct TrainOptions {
  std::string data_dir;  // dataset (from `bitbyte shard`); on resume, defaults to the run's own
  std::string run_dir;   // --out, or the --resume directory
  bool resume = false;
  // On resume: train on --data even when it is not the dataset the run was trained on (its
  // checkpoint or run.json records the dataset id); fine-tuning. Without it that is refused.
  bool allow_other_data = false;
  std::string config_path;             // protobuf text; empty: all defaults (or, on resume, the run's config)
  std::vector<std::string> overrides;  // "a.b=v"
  std::string model;                   // --model: model.name
  std::optional<int64_t> steps;        // --steps
  int threads = 0;                     // 0: all cores
  std::string device = "cpu";
  bool console = true;              // progress lines on stderr
  double figures_interval_s = 2.0;  // pipeline.json: live per-node figures, rewritten this often
  // Every file of the run (run.json, config, metrics.jsonl, events, checkpoints) is read and
  // written through this; null: io::Default(). Tests inject failures with it.
  io::FileSystem* fs = nullptr;
};

// The effective config for these options (file, --model, --set, --steps; on resume the run's
// saved config first), with every default filled in and validated. Throws UsageError.
pb::TrainConfig ResolveConfig(const TrainOptions& options);

struct TrainSummary {
  int64_t start_step = 0, end_step = 0;  // steps done before and after this run
  bool interrupted = false;              // stopped by SIGINT/SIGTERM
  double seconds = 0;                    // wall time of the training graph
  double bytes_per_s = 0;                // predicted bytes trained per second of wall time
  double mean_step_s = 0;                // train_step busy time per step
  double data_wait_frac = 0;             // train_step idle, waiting for a batch / wall
  double ckpt_stall_s = 0;               // mean time a checkpointing step was blocked by it
  uint64_t checkpoints_written = 0, checkpoints_replaced = 0;
  std::optional<double> final_val_bpb;
  std::string stats_table;
};

// Runs (or resumes) training. SIGINT and SIGTERM end it after the current step with a
// checkpoint (summary.interrupted). Throws on errors; a non-finite loss ends it with an error
// naming the step, and the checkpoints already written stay usable. A resume checks that --data
// (or the dataset run.json names) is the one the newest good checkpoint (else run.json) records:
// another one is refused naming both dataset ids (UsageError) unless
// allow_other_data.
TrainSummary RunTraining(const TrainOptions& options);

// The training graph these options would build, as a pipeline document without figures
// (docs/pipeline.md), from the same wiring, without running anything or touching a run dir.
std::string DescribeTrainJob(const TrainOptions& options);

// Evaluation and generation from a checkpoint (a checkpoint directory or a run directory).
struct EvalOptions {
  std::string checkpoint;
  std::string data_dir;            // its validation split ...
  std::vector<std::string> files;  // ... or these files, each a stream
  int64_t max_bytes = 0;           // 0: all (with --data: the whole validation split)
  int batch_size = 16;
  int threads = 0;
  std::string device = "cpu";
  std::string quantize;            // "", "int8" or "int4": the Linear layers quantized in memory (models/quant.h)
  std::string precision = "fp32";  // "bf16": the float matrix products under bf16 autocast
};
struct EvalSummary {
  double bpb = 0;
  bool bound = false;  // an upper bound (a diffusion model's ELBO)
  uint64_t bytes = 0;
  double seconds = 0;
  std::string checkpoint;
};
// Bounds of the options (limits in train/config.h); UsageError naming the option.
void ValidateEvalOptions(const EvalOptions& options);
// With data_dir: a warning on stderr when the dataset is not the one the checkpoint was trained
// on (evaluating on other data is legitimate; the figure is then not the run's val bpb).
EvalSummary RunEval(const EvalOptions& options);

// bitbyte quantize: a quantized checkpoint (train/quantized_checkpoint.h) of a checkpoint's model,
// written as OUT/<the source's step name> (atomically, verified like every checkpoint). A flow
// graph: load -> quantize -> write; with `data_dir` the float32 model (from load) and the quantized
// one (from quantize) are evaluated on its validation split beside the write.
struct QuantizeOptions {
  std::string checkpoint;
  std::string out;
  std::string scheme = "int8";
  std::string data_dir;   // "": no evaluation
  int64_t max_bytes = 0;  // of the validation split; 0: all
  // int8: "dynamic": activations scaled per row as they come; "static": one scale per layer, from
  // a calibration over calib_bytes of data_dir's train split (a "calibrate" node before quantize).
  std::string activations = "dynamic";
  // int4: inputs per group; "gptq": GPTQ rounding with Hessians from the same calibration, or
  // "nearest": round to nearest (no calibration).
  int64_t group = 64;
  std::string rounding = "gptq";
  std::string ternary_scale = "tensor";  // ternary: "tensor" or "channel" (one scale per output channel)
  int64_t calib_bytes = int64_t{1} << 20;
  int threads = 0;
  // The checkpoint was trained quantization-aware (model.qat): export it in the format it trained
  // in (int4: scheme int4, its group size, rounding to nearest, as the training forward did;
  // ternary: scheme ternary with its ternary_scale), in place of scheme, group, rounding and
  // ternary_scale.
  bool from_qat = false;
};
struct QuantizeSummary {
  std::string scheme;                    // the scheme written (--from-qat: the training's)
  std::string written;                   // the checkpoint directory
  std::vector<std::string> layers;       // the quantized Linear layers
  uint64_t source_bytes = 0, bytes = 0;  // tensor bytes of the source checkpoint and of the written one
  bool evaluated = false;                // with data_dir: the two evaluations
  double reference_bpb = 0, quantized_bpb = 0, reference_seconds = 0, quantized_seconds = 0;
  uint64_t eval_bytes = 0;
  uint64_t calib_bytes = 0;  // with a calibration: the bytes it ran over, its seconds and precision
  double calib_seconds = 0;
  std::string calib_precision;
};
QuantizeSummary RunQuantize(const QuantizeOptions& options);
// The graph RunQuantize builds for these options, as pipeline::DescribeJson (bitbyte graph).
std::string DescribeQuantizeJob(const QuantizeOptions& options);

struct GenerateOptions {
  std::string checkpoint;
  std::string prompt;
  int64_t n = 256;
  double temperature = 1.0;  // 0: greedy
  int top_k = 0;             // 0: all 256
  uint64_t seed = 1;
  int threads = 0;
  std::string device = "cpu";
  std::string quantize;  // as EvalOptions::quantize
  // Use the model's recurrent form (O(1) per byte) when it has one; false: re-run forward over
  // sliding windows, as for any model (the same bytes while prompt + output fit in a window).
  bool recurrent = true;
  // The telemetry gate on the output (train/telemetry.h): "off", "flag" (write it, report the
  // violation) or "refuse" (write nothing, TelemetryGateError); "": the run's
  // telemetry.generation_gate, with the run's telemetry bounds.
  std::string gate;
  // A diffusion-mode model's denoising steps (0: its config's diffusion_steps).
  int64_t denoise_steps = 0;
};
// K, C and S of the generated bytes, and the bound they broke ("" when none, or the gate is off).
struct GenerateReport {
  Telemetry telemetry;
  std::string violation;
};
// Bounds of the options: temperature 0 or in [limits::kMinTemperature, kMaxTemperature] (never
// nan or inf), top_k, n, threads, a non-empty prompt. UsageError naming the option.
void ValidateGenerateOptions(const GenerateOptions& options);
// Returns the generated bytes (without the prompt). `emit` gets each byte as it is sampled.
// `report`, when given, gets the output's telemetry.
std::string Generate(const GenerateOptions& options, const std::function<void(char)>& emit = {},
                     GenerateReport* report = nullptr);

}  // namespace bitbyte::train
