// bitbyte bench train: training bytes/s of `bitbyte train` against the same model in Python
// PyTorch on the same LibTorch (scripts/bench_train.py), in the same run, alternating rounds.
// Both sides run as child processes; peak RSS from wait4. docs/benchmarks.md has the results.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "base/cpu.h"
#include "base/error.h"
#include "base/file_io.h"
#include "base/numbers.h"
#include "models/blas.h"
#include "models/blas_choice.h"
#include "models/tracks.h"
#include "pipeline/graph.h"
#include "runs/layout.h"
#include "runs/track_bench.h"
#include "train/config.h"
#include "train/train_job.h"

namespace bitbyte::cli {
namespace {

using json = nlohmann::json;

using bitbyte::Median;

struct Side {
  double bytes_per_s = 0;  // from the median timed step
  double rss_mib = 0;
  double data_wait = 0, stall_frac = 0;  // bitbyte only
};

// Figures of the timed steps (after `warmup`) of a bitbyte run, from its metrics.jsonl.
Side ReadBitbyteRun(const std::string& run_dir, int64_t warmup, uint64_t bytes_per_step) {
  std::istringstream in(io::ReadFile(io::Default(), io::JoinPath(run_dir, runs::kMetricsFile)));
  std::string line;
  std::vector<double> walls, stalls;
  double wait = 0, wall = 0;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    // Records of another shape (an eval, a damaged line) are skipped, never a json exception.
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer() || !j.contains("step_wall_s") ||
        !j["step_wall_s"].is_number() || !j.contains("data_wait_frac") || !j["data_wait_frac"].is_number() ||
        j["step"].get<int64_t>() <= warmup)
      continue;
    walls.push_back(j["step_wall_s"].get<double>());
    wait += j["data_wait_frac"].get<double>() * j["step_wall_s"].get<double>();
    wall += j["step_wall_s"].get<double>();
    if (j.contains("ckpt_stall_s") && j["ckpt_stall_s"].is_number()) stalls.push_back(j["ckpt_stall_s"].get<double>());
  }
  if (walls.empty()) throw Error("bench: no timed steps in " + run_dir);
  Side s;
  s.bytes_per_s = static_cast<double>(bytes_per_step) / Median(walls);
  s.data_wait = wall > 0 ? wait / wall : 0;
  s.stall_frac = stalls.empty() ? 0 : Median(stalls) / Median(walls);
  return s;
}

}  // namespace

void AddBenchTrainCommand(CLI::App& bench) {
  struct Args {
    std::string data, work = "/tmp", python = "/usr/bin/python3", script;
    std::vector<std::string> overrides;
    int threads = 0, rounds = 3;
    int64_t steps = 10, warmup = 3, checkpoint_every = 5;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = bench.add_subcommand(
      "train",
      "Training bytes/s of 'bitbyte train' against the same model in Python PyTorch on the same\n"
      "LibTorch (scripts/bench_train.py), alternating in the same run. Each side: --warmup untimed\n"
      "steps, then --steps timed; bytes/s from the median step. bitbyte runs as it comes (its\n"
      "precision auto); Python runs in each configuration a user would try: fp32 as the environment\n"
      "gives it, fp32 with OPENBLAS_CORETYPE set to this CPU's kernels, bf16 autocast (with either),\n"
      "and bitbyte is compared with the best of them. MFU: the model's training FLOPs a byte times\n"
      "bytes/s, against fp32 and bf16 GEMM peaks measured in the same run.\n"
      "Model and batch come from the default config and --set (default: d_model 256, 4 layers,\n"
      "4 heads, sequence 256, batch 16).");
  c->add_option("--data", a->data, "Dataset directory (its train split feeds both sides)")->required();
  c->add_option("--set", a->overrides, "Config override for the model and data (repeatable)");
  c->add_option("--steps", a->steps, "Timed steps per side")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
      ->capture_default_str();
  c->add_option("--warmup", a->warmup, "Untimed steps first")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->capture_default_str();
  c->add_option("--rounds", a->rounds, "Alternating rounds")->check(CLI::Range(1, 1000))->capture_default_str();
  c->add_option("--checkpoint-every", a->checkpoint_every,
                "bitbyte checkpoints every N steps during the run (0: at the end)")
      ->check(CLI::Range(int64_t{0}, train::limits::kMaxSteps))
      ->capture_default_str();
  c->add_option("--threads", a->threads, "Threads for both sides (default: all cores)")
      ->check(CLI::Range(0, train::limits::kMaxThreads));
  c->add_option("--python", a->python, "Python with torch")->capture_default_str();
  c->add_option("--script", a->script, "The Python peer (default: scripts/bench_train.py next to the build)");
  c->add_option("--work-dir", a->work, "Where to make a scratch directory (removed afterwards)")->capture_default_str();
  c->callback([a] {
    const int threads = a->threads > 0 ? a->threads : pipeline::DefaultThreads();
    train::TrainOptions topt;
    topt.overrides = a->overrides;
    const train::pb::TrainConfig cfg = train::ResolveConfig(topt);
    if (cfg.model().name() != "bitbyte_lm") throw UsageError("bench train compares bitbyte_lm only");
    const auto& m = cfg.model().bitbyte_lm();
    std::string script = a->script;
    if (script.empty()) {
      // build/<preset>/bin/bitbyte -> <source>/scripts/bench_train.py
      script = io::JoinPath(io::DirName(io::DirName(io::DirName(io::DirName(SelfExe())))), "scripts/bench_train.py");
      if (!io::Default().Exists(script)) script = "scripts/bench_train.py";
    }
    if (!io::Default().Exists(script)) throw UsageError("--script: cannot find " + script);
    // A fresh directory of our own under --work-dir, removed afterwards (never --work-dir itself).
    io::Default().CreateDirs(a->work);
    std::string tmpl = io::JoinPath(a->work, "bench-train-XXXXXX");
    if (::mkdtemp(tmpl.data()) == nullptr) throw Error(ErrnoMessage("create a directory in", a->work, errno));
    a->work = tmpl;
    const std::string train_bin = io::JoinPath(a->work, "train.bin");
    SpawnOptions to_file;
    to_file.stdout_path = train_bin;
    Spawn({kSelfExe, "cat", a->data, "--split", "train"}, to_file);
    const uint64_t bytes_per_step =
        static_cast<uint64_t>(cfg.data().batch_size()) * cfg.data().grad_accum() * cfg.data().seq_len();

    std::vector<std::string> py = {a->python,
                                   script,
                                   "--json",
                                   "--d-model",
                                   std::to_string(m.d_model()),
                                   "--n-layer",
                                   std::to_string(m.n_layer()),
                                   "--n-head",
                                   std::to_string(m.n_head()),
                                   "--d-ff",
                                   std::to_string(m.d_ff()),
                                   "--context",
                                   std::to_string(m.context()),
                                   "--seq",
                                   std::to_string(cfg.data().seq_len()),
                                   "--batch",
                                   std::to_string(cfg.data().batch_size() * cfg.data().grad_accum()),
                                   "--steps",
                                   std::to_string(a->steps),
                                   "--warmup-steps",
                                   std::to_string(a->warmup),
                                   "--lr",
                                   std::to_string(cfg.optim().lr()),
                                   "--threads",
                                   std::to_string(threads),
                                   "--data",
                                   train_bin};
    // The Python peer in each configuration a user would try: fp32 as the environment gives it,
    // fp32 on OpenBLAS's kernels for this CPU (the core bitbyte would choose), bf16 autocast
    // (with either); bitbyte is compared with the best of them in each round.
    struct Peer {
      std::string name, precision, core;  // core: OPENBLAS_CORETYPE to set ("" = as the environment has it)
    };
    // "As the environment gives it" is the user's environment, not the core bitbyte set for itself:
    // those peers run with OPENBLAS_CORETYPE unset then.
    const std::string env_core = models::UserOpenBlasCore();
    const auto set_core = [&](SpawnOptions& so, const std::string& core) {
      so.unset_env.push_back(models::kBlasChoiceMarker);
      if (!core.empty() || env_core.empty()) so.unset_env.push_back("OPENBLAS_CORETYPE");
      if (!core.empty()) so.set_env.emplace_back("OPENBLAS_CORETYPE", core);
    };
    const std::string best_core = models::PreferredOpenBlasCore(cpu::This());
    std::vector<Peer> peers = {{"py fp32", "fp32", ""}};
    const bool other_core = !best_core.empty() && best_core != env_core;
    if (other_core) peers.push_back({"py fp32 " + best_core, "fp32", best_core});
    peers.push_back({"py bf16", "bf16", ""});
    if (other_core) peers.push_back({"py bf16 " + best_core, "bf16", best_core});
    auto run_python = [&](const Peer& peer, Side& side) {
      SpawnOptions so;
      so.stdout_path = io::JoinPath(a->work, "python.json");
      set_core(so, peer.core);
      std::vector<std::string> argv = py;
      argv.insert(argv.end(), {"--precision", peer.precision});
      const RunResult r = Spawn(argv, so);
      const json j = json::parse(io::ReadFile(io::Default(), so.stdout_path), nullptr, /*allow_exceptions=*/false);
      if (!j.is_object() || !j.contains("median_step_s") || !j["median_step_s"].is_number() ||
          !(j["median_step_s"].get<double>() > 0))
        throw Error(so.stdout_path + ": the Python peer's output has no positive \"median_step_s\"");
      side.bytes_per_s = static_cast<double>(bytes_per_step) / j["median_step_s"].get<double>();
      side.rss_mib = static_cast<double>(r.max_rss_kb) / 1024.0;
    };
    // GEMM peaks of this machine, measured in this run through the same LibTorch: fp32 on the
    // environment's core and on the best one, bf16 (oneDNN).
    auto gemm_peak = [&](const std::string& core) {
      SpawnOptions so;
      so.stdout_path = io::JoinPath(a->work, "gemm.json");
      set_core(so, core);
      Spawn({a->python, script, "--gemm-peak", "2048", "--threads", std::to_string(threads)}, so);
      const json j = json::parse(io::ReadFile(io::Default(), so.stdout_path), nullptr, false);
      if (!j.is_object() || !j.contains("fp32_gflops") || !j["fp32_gflops"].is_number() || !j.contains("bf16_gflops") ||
          !j["bf16_gflops"].is_number())
        throw Error(so.stdout_path + ": the Python peer's GEMM peak output is not usable");
      return std::make_pair(j["fp32_gflops"].get<double>(), j["bf16_gflops"].get<double>());
    };
    const models::Track* track = models::FindTrack(cfg.model().name());
    const double flops_per_byte = track->train_flops_per_byte(cfg.model(), cfg.data().seq_len());

    std::printf(
        "bench train: %s d_model %d, %d layers, %d heads, seq %d, batch %d; %d threads; %lld+%lld steps; "
        "OPENBLAS_CORETYPE %s; bitbyte on %s (%s); %s\n",
        cfg.model().name().c_str(), m.d_model(), m.n_layer(), m.n_head(), cfg.data().seq_len(),
        cfg.data().batch_size() * cfg.data().grad_accum(), threads, (long long)a->warmup, (long long)a->steps,
        env_core.empty() ? "unset (OpenBLAS detects the CPU)" : env_core.c_str(), models::BlasInUse().core.c_str(),
        models::BlasInUse().chosen_by.c_str(), cpu::This().Summary().c_str());
    std::printf("model FLOPs per training byte: %.3g (%.3g GFLOP a step)\n", flops_per_byte,
                flops_per_byte * static_cast<double>(bytes_per_step) / 1e9);
    std::printf("%-6s %14s", "round", "bitbyte B/s");
    for (const Peer& p : peers) std::printf(" %16s", (p.name + " B/s").c_str());
    std::printf(" %10s\n", "vs best");
    std::vector<double> ratios, waits, stalls, ours_bps;
    std::vector<std::vector<double>> peer_bps(peers.size());
    Side ours, theirs;
    double peer_rss = 0;
    std::string precision;
    for (int round = 0; round < a->rounds; ++round) {
      const std::string run = io::JoinPath(a->work, "run");
      Spawn({"rm", "-rf", run});
      std::vector<std::string> argv = {kSelfExe,
                                       "train",
                                       "--data",
                                       a->data,
                                       "--out",
                                       run,
                                       "-q",
                                       "--threads",
                                       std::to_string(threads),
                                       "--steps",
                                       std::to_string(a->warmup + a->steps),
                                       "--set",
                                       "optim.warmup_steps=" + std::to_string(a->warmup),
                                       "--set",
                                       "eval.every=0",
                                       "--set",
                                       "eval.max_bytes=4096",
                                       "--set",
                                       "checkpoint.every=" + std::to_string(a->checkpoint_every)};
      for (const auto& o : a->overrides) argv.insert(argv.end(), {"--set", o});
      const RunResult r = Spawn(argv);
      ours = ReadBitbyteRun(run, a->warmup, bytes_per_step);
      ours.rss_mib = static_cast<double>(r.max_rss_kb) / 1024.0;
      precision =
          train::ParseConfigText(io::ReadFile(io::Default(), io::JoinPath(run, runs::kConfigFile)), runs::kConfigFile)
              .precision();
      ours_bps.push_back(ours.bytes_per_s);
      std::printf("%-6d %14.0f", round + 1, ours.bytes_per_s);
      double best = 0;
      for (size_t i = 0; i < peers.size(); ++i) {
        run_python(peers[i], theirs);
        peer_bps[i].push_back(theirs.bytes_per_s);
        peer_rss = std::max(peer_rss, theirs.rss_mib);
        best = std::max(best, theirs.bytes_per_s);
        std::printf(" %16.0f", theirs.bytes_per_s);
      }
      ratios.push_back(ours.bytes_per_s / best);
      waits.push_back(ours.data_wait);
      stalls.push_back(ours.stall_frac);
      std::printf(" %9.2fx\n", ratios.back());
      std::fflush(stdout);
    }
    size_t best_peer = 0;
    for (size_t i = 1; i < peers.size(); ++i)
      if (Median(peer_bps[i]) > Median(peer_bps[best_peer])) best_peer = i;
    std::printf("bitbyte trained in %s (precision auto unless --set says otherwise)\n", precision.c_str());
    std::printf(
        "median ratio bitbyte / best Python configuration in each round: %.2fx (target >= 1.5); best "
        "overall: %s\n",
        Median(ratios), peers[best_peer].name.c_str());
    const auto [fp32_env, bf16_peak] = gemm_peak("");
    const double fp32_best = other_core ? gemm_peak(best_core).first : fp32_env;
    const double peak = std::max({fp32_env, fp32_best, bf16_peak});
    std::printf("GEMM peaks (2048^3, %d threads): fp32 %.0f GFLOPS (%s), fp32 %.0f (%s), bf16 %.0f\n", threads,
                fp32_env, env_core.empty() ? "OpenBLAS's own core" : env_core.c_str(), fp32_best,
                other_core ? best_core.c_str() : "same", bf16_peak);
    const double ours_gflops = Median(ours_bps) * flops_per_byte / 1e9;
    std::printf(
        "MFU: bitbyte %.0f GFLOPS = %.0f%% of the faster GEMM peak (%.0f%% of fp32 %.0f, %.0f%% of bf16 %.0f)"
        " (target >= 60%%)\n",
        ours_gflops, 100 * ours_gflops / peak, 100 * ours_gflops / std::max(fp32_env, fp32_best),
        std::max(fp32_env, fp32_best), 100 * ours_gflops / bf16_peak, bf16_peak);
    for (size_t i = 0; i < peers.size(); ++i) {
      const double g = Median(peer_bps[i]) * flops_per_byte / 1e9;
      std::printf("MFU: %s %.0f GFLOPS = %.0f%% of the faster GEMM peak\n", peers[i].name.c_str(), g, 100 * g / peak);
    }
    std::printf(
        "bitbyte data wait %.3f%% of step time (target < 1%%); checkpoint stall %.2f%% of a step (target < 5%%)\n",
        100 * Median(waits), 100 * Median(stalls));
    std::printf("peak RSS: bitbyte %.0f MiB, python (largest) %.0f MiB\n", ours.rss_mib, peer_rss);
    Spawn({"rm", "-rf", a->work});
  });
}

}  // namespace bitbyte::cli
