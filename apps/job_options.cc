#include "apps/job_options.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "apps/cli_util.h"
#include "base/error.h"
#include "pipeline/graph.h"
#include "pipeline/monitor.h"
#include "sharding/plan.h"
#include "train/config.h"

namespace bitbyte::cli {

namespace {

// The help of an option that only changes what a job prints: `bitbyte graph` takes it too.
std::string PrintOnly(const std::string& help, bool for_job) {
  return for_job ? help : help + " (accepted so the job's command line works here; no effect)";
}

}  // namespace

void AddShardJobOptions(CLI::App* c, ShardArgs* a, bool for_job) {
  auto* inputs = c->add_option("inputs", a->inputs,
                               "Files, directories (recursive, sorted), glob patterns, or - for stdin; .zst/.gz/.xz "
                               "are decompressed");
  auto* out = c->add_option("-o,--out", a->out, "Output dataset directory (created if missing)");
  if (for_job) {
    inputs->required();
    out->required();
  }
  c->add_option("--threads", a->threads, "Worker threads (default: all cores)")
      ->check(CLI::Range(0, pipeline::kMaxThreads));
  c->add_option("--level", a->level, "zstd compression level, 1-22")->check(CLI::Range(1, 22))->capture_default_str();
  c->add_option("--val-fraction", a->val_fraction, "Share of documents (by hash) for validation, in [0,1)")
      ->capture_default_str();
  c->add_option("--frame-size", a->frame_size, "Raw bytes per zstd frame (e.g. 256K, 1M)")->capture_default_str();
  c->add_option("--shard-size", a->shard_size, "Raw bytes per shard, a multiple of the frame size")
      ->capture_default_str();
  c->add_option("--jsonl-field", a->jsonl_field, "Treat inputs as JSONL; each record's string field K is a document")
      ->check([](const std::string& k) {
        return k.empty() ? std::string("the field name is empty (leave --jsonl-field out to read plain files)") : "";
      });
  c->add_flag("--skip-bad-records", a->skip_bad, "JSONL: skip and count bad records instead of failing");
  c->add_flag("--overwrite", a->overwrite, "Replace a different dataset already in the output directory");
  c->add_option("--figures-every", a->figures_every,
                "Seconds between writes of the live per-node figures (OUT/pipeline.json; see 'bitbyte top')")
      ->check(FiniteRange(pipeline::kMinFiguresInterval, pipeline::kMaxFiguresInterval))
      ->capture_default_str();
  c->add_flag("--stats", a->stats, PrintOnly("Print per-node figures of the flow graph at the end", for_job));
  c->add_flag("-q,--quiet", a->quiet, PrintOnly("No progress output", for_job));
}

shard::ShardJobOptions ShardJobOptionsOf(const ShardArgs& a) {
  shard::ShardJobOptions o;
  o.inputs = a.inputs;
  o.out_dir = a.out;
  o.threads = a.threads;
  o.params.level = a.level;
  o.params.val_fraction = a.val_fraction;
  o.params.frame_bytes = ParseSize(a.frame_size, "--frame-size");
  o.params.shard_bytes = ParseSize(a.shard_size, "--shard-size");
  o.params.jsonl_field = a.jsonl_field;
  o.params.skip_bad_records = a.skip_bad;
  try {  // bad option values are usage errors (exit 2), found before any work
    shard::ValidateParams(o.params);
  } catch (const Error& e) {
    throw UsageError(std::string(e.what()) + " (options --frame-size, --shard-size, --level, --val-fraction)");
  }
  o.overwrite = a.overwrite;
  o.figures_interval_s = a.figures_every;
  return o;
}

void AddRuntimeOptions(CLI::App* c, int* threads, std::string* device) {
  c->add_option("--threads", *threads,
                "Threads for LibTorch (and, in train, TBB) (default: all cores). Results are bit-exact for "
                "a given thread count")
      ->check(CLI::Range(0, train::limits::kMaxThreads));
  c->add_option("--device", *device, "cpu, or cuda[:N] when LibTorch has CUDA")->capture_default_str();
}

CLI::Validator FiniteRange(double lo, double hi, bool zero_too) {
  char desc[96];
  std::snprintf(desc, sizeof desc, "%s[%g, %g]", zero_too ? "0 or " : "", lo, hi);
  return CLI::Validator(
      [lo, hi, zero_too, d = std::string(desc)](std::string& in) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(in.c_str(), &end);
        if (in.empty() || end != in.c_str() + in.size() || !std::isfinite(v))
          return "'" + in + "' is not a finite number";
        if ((zero_too && v == 0) || (v >= lo && v <= hi)) return "";
        return "Value " + in + " not in range " + d;
      },
      desc);
}

void AddTrainJobOptions(CLI::App* c, TrainArgs* a, bool for_job) {
  c->add_option("--data", a->o.data_dir, "Dataset directory from 'bitbyte shard' (on --resume: the run's own)");
  c->add_option("-o,--out", a->o.run_dir, "Run directory to create");
  c->add_option("--resume", a->resume_dir, "Continue the run in this directory from its newest good checkpoint");
  c->add_option("--config", a->o.config_path, "Config file, protobuf text format (default: all defaults)");
  c->add_option("--set", a->o.overrides, "Override a config field, e.g. --set optim.lr=3e-4 (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  c->add_option("--model", a->o.model, "Model track (config model.name)");
  c->add_option("--steps", a->steps, "Optimizer steps (config steps)")
      ->check(CLI::Range(int64_t{1}, train::limits::kMaxSteps));
  if (for_job)
    c->add_option("--minutes", a->minutes,
                  "Instead of --steps: train for about this many minutes. A probe run of 8 steps times a step on "
                  "this machine and the steps are fitted to it (printed, and kept in RUN_DIR/config.txtpb: "
                  "the schedule is a function of the steps, so a rerun with --steps N is the same run); "
                  "evaluations and checkpoints run beside training and add a little")
        ->check(FiniteRange(0.01, 525600));
  c->add_flag("--allow-other-data", a->allow_other_data,
              "With --resume: go on training on --data even when it is not the dataset the run was trained on "
              "(fine-tuning; without it that is refused)");
  AddRuntimeOptions(c, &a->o.threads, &a->o.device);
  c->add_option("--figures-every", a->o.figures_interval_s,
                "Seconds between writes of the live per-node figures (RUN_DIR/pipeline.json; see 'bitbyte top')")
      ->check(FiniteRange(pipeline::kMinFiguresInterval, pipeline::kMaxFiguresInterval))
      ->capture_default_str();
  c->add_flag(
      "--print-config", a->print_config,
      PrintOnly("Print the effective config (every field; of the model, the chosen track's block) and exit", for_job));
  c->add_flag("-q,--quiet", a->quiet, PrintOnly("No progress lines", for_job));
  c->add_flag("--stats", a->stats,
              PrintOnly("Print per-node figures of the graph at the end (items, busy time)", for_job));
}

train::TrainOptions TrainOptionsOf(const TrainArgs& a) {
  train::TrainOptions o = a.o;
  if (a.steps > 0) o.steps = a.steps;
  if (!a.resume_dir.empty()) {
    if (!o.run_dir.empty() && o.run_dir != a.resume_dir)
      throw UsageError("give either --out (a new run) or --resume (an existing run), not both");
    o.run_dir = a.resume_dir;
    o.resume = true;
  }
  if (a.allow_other_data && !o.resume)
    throw UsageError("--allow-other-data goes with --resume (a new run trains on the --data it is given)");
  o.allow_other_data = a.allow_other_data;
  o.console = !a.quiet;
  return o;
}

void AddQuantizeJobOptions(CLI::App* c, train::QuantizeOptions* o) {
  c->add_option("--checkpoint", o->checkpoint, "Checkpoint directory, or a run directory (its newest good one)")
      ->required();
  c->add_option("-o,--out", o->out, "Directory to write the quantized checkpoint in (new, or without checkpoints)")
      ->required();
  c->add_option("--scheme", o->scheme,
                "int8: weights per output channel and activations in int8, integer products; int4: weights in "
                "groups of --group-size inputs with a scale and zero point each, activations in int8 per token, "
                "integer products; ternary: weights in {-1, 0, +1} (2 bits) times their mean |w| (per "
                "--ternary-scale), inputs RMS-normalised and in int8, products without multiplications (meant for "
                "--from-qat: rounding a float32 model to ternary loses much)")
      ->check(CLI::IsMember({"int8", "int4", "ternary"}))
      ->capture_default_str();
  c->add_option("--data", o->data_dir,
                "Dataset directory: evaluate the float32 and the quantized model on its validation split, in "
                "parallel with the write");
  c->add_option("--max-bytes", o->max_bytes, "With --data: only the first N bytes of the validation split (0: all)")
      ->check(CLI::Range(int64_t{0}, train::limits::kMaxEvalBytes));
  c->add_option("--activations", o->activations,
                "dynamic: each input row scaled to int8 as it comes; static (int8 only): one scale per layer, "
                "calibrated on --data's train split")
      ->check(CLI::IsMember({"dynamic", "static"}))
      ->capture_default_str();
  c->add_option("--group-size", o->group, "int4: inputs per group (even)")
      ->check(CLI::Range(int64_t{2}, int64_t{4096}))
      ->capture_default_str();
  c->add_option("--rounding", o->rounding,
                "int4: gptq (error feedback through each layer's input Hessian, calibrated on --data's train "
                "split) or nearest (round to nearest, no calibration)")
      ->check(CLI::IsMember({"gptq", "nearest"}))
      ->capture_default_str();
  c->add_option("--ternary-scale", o->ternary_scale, "ternary: one scale per weight 'tensor' or per output 'channel'")
      ->check(CLI::IsMember({"tensor", "channel"}))
      ->capture_default_str();
  c->add_option("--calib-bytes", o->calib_bytes,
                "Bytes of calibration text from --data's train split (int8 --activations static; int4 gptq)")
      ->check(CLI::Range(int64_t{1}, train::limits::kMaxEvalBytes))
      ->capture_default_str();
  c->add_flag("--from-qat", o->from_qat,
              "The checkpoint was trained quantization-aware (model.qat): export it in the format it trained "
              "in, taking --scheme, --group-size, --rounding and --ternary-scale from its config (int4: rounded "
              "to nearest, ternary: packed in 2 bits, as its training forward rounded, so nothing further is "
              "lost)");
  c->add_option("--threads", o->threads, "Threads (default: all cores)")
      ->check(CLI::Range(0, train::limits::kMaxThreads));
}

}  // namespace bitbyte::cli
