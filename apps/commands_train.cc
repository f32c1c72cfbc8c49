// bitbyte train / eval / generate: parsing and wiring only; the jobs live in train/.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "apps/job_options.h"
#include "apps/step_probe.h"
#include "base/error.h"
#include "base/file_io.h"
#include "models/registry.h"
#include "pipeline/progress.h"
#include "train/config.h"
#include "train/train_job.h"

namespace bitbyte::cli {
namespace {

std::string TrackList() {
  std::string s;
  for (const auto& t : models::Tracks()) s += "\n  " + t.name + ": " + t.summary;
  return s;
}

// --minutes: a probe run (a `bitbyte train` child of kProbeSteps steps in a scratch directory)
// times a step, and the steps are set to what fits.
train::TrainOptions FitToMinutes(train::TrainOptions o, double minutes, bool steps_given, bool quiet) {
  if (o.resume) throw UsageError("--minutes is for a new run (a resumed run keeps its steps; --steps changes them)");
  if (steps_given) throw UsageError("give --steps or --minutes, not both");
  const train::pb::TrainConfig config = train::ResolveConfig(o);
  std::string dir = "/tmp/bitbyte-probe-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) throw Error(ErrnoMessage("create a directory in", "/tmp", errno));
  const std::string run = io::JoinPath(dir, "run"), path = io::JoinPath(dir, "probe.txtpb");
  double step_s = 0;
  try {
    io::WriteFileAtomic(io::Default(), path, train::ConfigToText(ProbeConfig(config)));
    if (!quiet) std::fprintf(stderr, "timing %lld steps to fit %g minutes ...\n", (long long)kProbeSteps, minutes);
    Spawn({kSelfExe, "train", "--data", o.data_dir, "--out", run, "--config", path, "-q", "--threads",
           std::to_string(o.threads), "--device", o.device});
    step_s = MedianStepWall(run, kProbeWarmup);
  } catch (...) {
    Spawn({"rm", "-rf", dir});
    throw;
  }
  Spawn({"rm", "-rf", dir});
  if (!(step_s > 0)) throw Error("--minutes: the probe run timed no step");
  o.steps = StepsInMinutes(minutes, step_s);
  if (!quiet)
    std::fprintf(stderr, "%lld steps fit in %g minutes (%.3f s a step in the probe)\n", (long long)*o.steps, minutes,
                 step_s);
  return o;
}

}  // namespace

void AddTrainCommand(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* c =
      app.add_subcommand("train",
                         "Train a byte-level model on a sharded dataset, as one tbb::flow graph: batch source ->\n"
                         "prefetch -> train step -> metrics, eval (val bpb) and an asynchronous checkpoint sink.\n"
                         "Writes RUN_DIR/config.txtpb, run.json, metrics.jsonl and checkpoints/. SIGINT or SIGTERM\n"
                         "stops after the current step with a checkpoint; --resume RUN_DIR continues bit-exactly.\n"
                         "Config: protobuf text (train/train_config.proto); see --print-config and docs/training.md.\n"
                         "Models:" +
                             TrackList());
  AddTrainJobOptions(c, a.get(), /*for_job=*/true);
  c->callback([a] {
    train::TrainOptions o = TrainOptionsOf(*a);
    if (a->print_config) {
      std::fputs(train::ConfigToText(train::ResolveConfig(o)).c_str(), stdout);
      return;
    }
    if (o.run_dir.empty()) throw UsageError("--out RUN_DIR is required (or --resume RUN_DIR)");
    if (o.data_dir.empty() && !o.resume) throw UsageError("--data DIR is required");
    if (a->minutes > 0) o = FitToMinutes(o, a->minutes, a->steps > 0, a->quiet);
    const train::TrainSummary s = train::RunTraining(o);
    if (a->stats) std::fprintf(stderr, "%s", s.stats_table.c_str());
    if (a->quiet) return;
    std::fprintf(stderr,
                 "%s at step %lld (%lld this run) in %s: %s/s, %.3f s/step, data wait %.2f%%, checkpoint stall "
                 "%.1f ms (%.2f%% of a step), %llu checkpoints written (%llu replaced while pending)",
                 s.interrupted ? "stopped" : "done", (long long)s.end_step, (long long)(s.end_step - s.start_step),
                 pipeline::Progress::FormatDuration(s.seconds).c_str(),
                 pipeline::Progress::FormatBytes(s.bytes_per_s).c_str(), s.mean_step_s, 100 * s.data_wait_frac,
                 1000 * s.ckpt_stall_s, s.mean_step_s > 0 ? 100 * s.ckpt_stall_s / s.mean_step_s : 0.0,
                 (unsigned long long)s.checkpoints_written, (unsigned long long)s.checkpoints_replaced);
    if (s.final_val_bpb) std::fprintf(stderr, ", val bpb %.4f", *s.final_val_bpb);
    std::fprintf(stderr, "\n");
  });
}

void AddQuantizeOption(CLI::App* c, std::string* scheme) {
  c->add_option("--quantize", *scheme,
                "Run the Linear layers quantized, computed from the checkpoint's float32 weights as it loads: "
                "int8 (weights per output channel, activations per token, integer products) or int4 (weights "
                "in groups of 64, rounded to nearest: 'bitbyte quantize' calibrates better ones; activations per "
                "token in int8, integer products) or ternary (weights in {-1, 0, +1} times their mean |w|, inputs "
                "RMS-normalised and in int8, products without multiplications; to run a ternary quantization-"
                "aware checkpoint on its kernel); the output head stays float32; CPU only")
      ->check(CLI::IsMember({"int8", "int4", "ternary"}));
}

void AddQuantizeCommand(CLI::App& app) {
  auto o = std::make_shared<train::QuantizeOptions>();
  CLI::App* c = app.add_subcommand(
      "quantize",
      "Write a quantized checkpoint of a checkpoint's model: its Linear layers in int8 (weights per\n"
      "output channel; activations per token as it runs) or int4 (weights group-wise, GPTQ or\n"
      "round-to-nearest; activations int8 per token), the output head, embeddings and norms in float32,\n"
      "no optimizer state.\n"
      "'bitbyte eval' and 'generate' take it like any checkpoint. One flow graph: load -> (calibrate)\n"
      "-> quantize -> write, and with --data the float32 and the quantized model evaluated on the\n"
      "validation split beside the write ('bitbyte graph quantize' draws it; docs/quantization.md).");
  AddQuantizeJobOptions(c, o.get());
  c->callback([o] {
    const train::QuantizeSummary s = train::RunQuantize(*o);
    std::printf("wrote %s: %s, %zu Linear layers; %.2f MB against %.2f MB of the source checkpoint (%.2fx)\n",
                s.written.c_str(), s.scheme.c_str(), s.layers.size(), s.bytes / 1e6, s.source_bytes / 1e6,
                s.source_bytes > 0 ? static_cast<double>(s.bytes) / static_cast<double>(s.source_bytes) : 0.0);
    if (s.calib_bytes > 0)
      std::printf("calibrated %s on %llu bytes of the train split in %.1f s (forward passes in %s)\n",
                  s.scheme == "int4" ? "GPTQ Hessians" : "static activation scales", (unsigned long long)s.calib_bytes,
                  s.calib_seconds, s.calib_precision.c_str());
    if (s.evaluated)
      std::printf("val bpb over %llu bytes: %s %.6f, %s %.6f (%+.6f); eval %.2f s and %.2f s (side by side)\n",
                  (unsigned long long)s.eval_bytes, o->from_qat ? "source (its QAT forward)" : "float32",
                  s.reference_bpb, s.scheme.c_str(), s.quantized_bpb, s.quantized_bpb - s.reference_bpb,
                  s.reference_seconds, s.quantized_seconds);
  });
}

void AddEvalCommand(CLI::App& app) {
  struct Args {
    train::EvalOptions o;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand(
      "eval",
      "Bits per byte of a checkpoint on a dataset's validation split or on files.\n"
      "bpb = mean NLL (nats) / ln 2 over predicted bytes. Each stream (the validation split, or each\n"
      "file) is cut into windows of the model's context; its first byte has no context and is not\n"
      "predicted, every other byte is predicted exactly once (docs/training.md).");
  c->add_option("--checkpoint", a->o.checkpoint, "Checkpoint directory, or a run directory (its newest good one)")
      ->required();
  c->add_option("--data", a->o.data_dir, "Dataset directory: evaluate on its validation split");
  c->add_option("files", a->o.files, "Files to evaluate on, each a separate stream");
  c->add_option("--max-bytes", a->o.max_bytes, "Only the first N bytes of each stream (0: all)")
      ->check(CLI::Range(int64_t{0}, train::limits::kMaxEvalBytes));
  c->add_option("--batch-size", a->o.batch_size, "Windows per forward pass")
      ->check(CLI::Range(1, train::limits::kMaxBatch))
      ->capture_default_str();
  AddRuntimeOptions(c, &a->o.threads, &a->o.device);
  AddQuantizeOption(c, &a->o.quantize);
  c->add_option("--precision", a->o.precision,
                "fp32, or bf16: the float matrix products in bfloat16 (autocast, as a bf16 training step runs "
                "them); faster where the CPU has bf16 instructions, and a slightly different bpb")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  c->add_flag("--json", a->json,
              "Print {\"bpb\": ..., \"bytes\": ..., \"seconds\": ...} (and \"bound\": true for a diffusion model, "
              "whose bpb is its ELBO's upper bound)");
  c->callback([a] {
    if (a->o.data_dir.empty() == a->o.files.empty()) throw UsageError("give exactly one of --data DIR or FILE...");
    train::ValidateEvalOptions(a->o);
    const train::EvalSummary s = train::RunEval(a->o);
    if (a->json) {
      nlohmann::json j = {{"bpb", s.bpb}, {"bytes", s.bytes}, {"seconds", s.seconds}};
      if (s.bound) j["bound"] = true;
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("val bpb %s%.4f over %llu bytes (%s, %.1f s)%s\n", s.bound ? "<= " : "", s.bpb,
                  (unsigned long long)s.bytes, s.checkpoint.c_str(), s.seconds,
                  s.bound ? "; an upper bound: the diffusion ELBO" : "");
    }
  });
}

void AddGenerateCommand(CLI::App& app) {
  auto o = std::make_shared<train::GenerateOptions>();
  CLI::App* c = app.add_subcommand(
      "generate", "Sample bytes from a checkpoint after a prompt; writes prompt and sample to stdout.");
  c->add_option("--checkpoint", o->checkpoint, "Checkpoint directory, or a run directory (its newest good one)")
      ->required();
  c->add_option("--prompt", o->prompt, "Text to continue (at least one byte)")->required();
  c->add_option("-n", o->n, "Bytes to generate")
      ->check(CLI::Range(int64_t{0}, train::limits::kMaxGenerateBytes))
      ->capture_default_str();
  c->add_option("--temperature", o->temperature, "Softmax temperature; 0 is greedy")
      ->check(FiniteRange(train::limits::kMinTemperature, train::limits::kMaxTemperature, /*zero_too=*/true))
      ->capture_default_str();
  c->add_option("--top-k", o->top_k, "Sample among the k likeliest bytes (0: all)")
      ->check(CLI::Range(0, train::limits::kMaxTopK))
      ->capture_default_str();
  c->add_option("--seed", o->seed, "Sampling seed (same seed, same text)")->capture_default_str();
  c->add_flag("!--no-recurrent", o->recurrent,
              "Re-run the model over a sliding window for every byte instead of its recurrent form (by default "
              "BitByteLM keeps a key/value cache and MambaMLM its scan state)");
  c->add_option("--gate", o->gate,
                "The telemetry gate on the output (K, C, S against the run's telemetry.* bounds; docs/tracks.md): "
                "off, flag (write it, warn on stderr) or refuse (write nothing, exit 1); default: the run's "
                "telemetry.generation_gate")
      ->check(CLI::IsMember({"off", "flag", "refuse"}));
  auto* show = c->add_flag("--telemetry", "Print the output's K, C and S to stderr");
  c->add_option("--denoise-steps", o->denoise_steps,
                "A diffusion-mode model's denoising steps (default: its model.bit_transformer_lm.diffusion_steps)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  AddRuntimeOptions(c, &o->threads, &o->device);
  AddQuantizeOption(c, &o->quantize);
  c->callback([o, show] {
    // The prompt goes out with the first sampled byte, so a bad checkpoint prints nothing.
    bool started = false;
    auto start = [&] {
      if (!started) std::fwrite(o->prompt.data(), 1, o->prompt.size(), stdout);
      started = true;
    };
    train::ValidateGenerateOptions(*o);  // before the checkpoint is read
    train::GenerateReport report;
    train::Generate(
        *o,
        [&](char ch) {
          start();
          std::fputc(ch, stdout);
          std::fflush(stdout);
        },
        &report);
    start();
    std::fputc('\n', stdout);
    std::fflush(stdout);
    const train::Telemetry& t = report.telemetry;
    if (*show || !report.violation.empty())
      std::fprintf(stderr, "telemetry of the output: K %.4f  C %.4f  S %.4f  (%lld bits)\n", t.k, t.c, t.s,
                   static_cast<long long>(t.bits));
    if (!report.violation.empty())
      std::fprintf(stderr, "warning: telemetry gate: the generated text's %s (flagged; --gate refuse withholds it)\n",
                   report.violation.c_str());
  });
}

}  // namespace bitbyte::cli
