// bitbyte bench tracks: every registered track trained at a matched parameter count on the same
// data, seeds and budget, each run a `bitbyte train` child (peak RSS from wait4); then step time
// and memory against the sequence length. Writes docs/tracks.md (runs/track_bench.h).
#include <google/protobuf/descriptor.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "apps/job_options.h"
#include "base/error.h"
#include "base/file_io.h"
#include "base/numbers.h"
#include "models/registry.h"
#include "pipeline/graph.h"
#include "runs/run_dir.h"
#include "runs/track_bench.h"
#include "train/config.h"
#include "train/train_job.h"

namespace bitbyte::cli {
namespace {

struct Args {
  std::string data, out = "docs/tracks.md", work = "/tmp", tracks, seq_lens = "256,512,1024,2048,4096,8192";
  std::string budget_bytes, scaling_bytes = "8K";
  double budget_minutes = 0;
  int64_t params = 0, scaling_steps = 5;
  int seeds = 3, threads = 0;
  std::vector<std::string> overrides;
  std::vector<std::string> argv;  // as given, for the document
};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string ShellQuote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

uint64_t BytesPerStep(const train::pb::TrainConfig& c) {
  return static_cast<uint64_t>(c.data().batch_size()) * c.data().grad_accum() * c.data().seq_len();
}

// The track's own config message (the one named by model.name), one line, for the table.
std::string ModelLine(const models::pb::ModelConfig& m) {
  const google::protobuf::FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(m.name());
  if (f == nullptr || f->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE) return m.name();
  return m.GetReflection()->GetMessage(m, f).ShortDebugString();
}

// This process's resident set (VmRSS), MiB; 0 when /proc cannot tell.
double SelfRssMib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  return 0;
}

constexpr int64_t kScalingWarmup = 2;  // untimed steps of each scaling run

// The median wall time of a finished run's steps after `after_step`; 0 when it has none.
double MedianStepWall(const std::string& run, int64_t after_step) {
  std::vector<double> walls;
  for (const runs::StepRecord& s : runs::ReadRunDir(run).steps)
    if (s.step > after_step && std::isfinite(s.step_wall_s) && s.step_wall_s > 0) walls.push_back(s.step_wall_s);
  return Median(walls);
}

class Bench {
 public:
  explicit Bench(Args a) : a_(std::move(a)) {}

  void Run() {
    threads_ = a_.threads > 0 ? a_.threads : pipeline::DefaultThreads();
    Prepare();
    runs::TracksReport report;
    report.command = Command();
    try {
      report.tracks = Train();
      report.setup = Setup(report.tracks);
      if (!lens_.empty()) {
        report.scaling_bytes_per_step = scaling_bytes_;
        report.scaling = Scaling();
      }
    } catch (const std::exception& e) {
      throw Error(std::string(e.what()) + "\n(the runs so far are kept in " + work_ + ")");
    }
    report.target_params = target_;
    // A copy in the scratch directory first: a failing -o then loses nothing.
    const std::string doc = runs::TracksMarkdown(report), copy = io::JoinPath(work_, "tracks.md");
    io::WriteFileAtomic(io::Default(), copy, doc);
    try {
      io::WriteFileAtomic(io::Default(), a_.out, doc);
    } catch (const std::exception& e) {
      throw Error(std::string(e.what()) + "\n(the document and the runs are kept in " + work_ + ")");
    }
    std::printf("\n%s\nwrote %s\n", runs::Recommend(report.tracks).c_str(), a_.out.c_str());
    Spawn({"rm", "-rf", work_});
  }

 private:
  // Everything that can be wrong with the options, found before any training.
  void Prepare() {
    if (!a_.budget_bytes.empty() && a_.budget_minutes > 0)
      throw UsageError("give --budget-bytes or --budget-minutes, not both");
    if (a_.budget_bytes.empty() && a_.budget_minutes <= 0) a_.budget_bytes = "1M";
    for (const std::string& name : Split(a_.tracks)) {
      if (std::find(names_.begin(), names_.end(), name) != names_.end())
        throw UsageError("--tracks: '" + name + "' is listed twice");
      bool known = false;
      for (const models::Track& t : models::Tracks()) known = known || t.name == name;
      if (!known) {
        std::string list;
        for (const models::Track& t : models::Tracks()) list += (list.empty() ? "" : ", ") + t.name;
        throw UsageError("--tracks: unknown track '" + name + "' (known: " + list + ")");
      }
      names_.push_back(name);
    }
    if (names_.empty())
      for (const models::Track& t : models::Tracks()) names_.push_back(t.name);
    scaling_bytes_ = ParseSize(a_.scaling_bytes, "--scaling-bytes");
    if (scaling_bytes_ == 0) throw UsageError("--scaling-bytes: must be positive");
    for (const std::string& t : Split(a_.seq_lens)) {
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(t.c_str(), &end, 10);
      if (*end != '\0' || errno == ERANGE || v < 2 || v > (1 << 24))
        throw UsageError("--seq-lens: '" + t + "' is not a length from 2 to 16777216");
      if (std::find(lens_.begin(), lens_.end(), v) != lens_.end())
        throw UsageError("--seq-lens: " + t + " is listed twice");
      // The same bytes in every step, so that per-step figures compare across lengths.
      if (scaling_bytes_ % static_cast<uint64_t>(v) != 0)
        throw UsageError("--scaling-bytes " + a_.scaling_bytes + " is not a multiple of the length " + t +
                         " (every step of the scaling table trains on the same bytes)");
      lens_.push_back(v);
    }
    // The configs: each track's, with the shared --set overrides, at the depth that matches the
    // target size (by default the first track's own size).
    for (const std::string& name : names_) {
      train::TrainOptions o;
      o.model = name;
      // Each track's config has its own block: model.<another track>.* is for that track only.
      for (const std::string& set : a_.overrides) {
        bool other = false;
        for (const models::Track& t : models::Tracks())
          other = other || (t.name != name && set.rfind("model." + t.name + ".", 0) == 0);
        if (!other) o.overrides.push_back(set);
      }
      configs_.push_back(train::ResolveConfig(o));
    }
    target_ = a_.params > 0 ? a_.params : models::ParameterCount(configs_.front().model());
    for (auto& c : configs_) {
      *c.mutable_model() = models::MatchParameterCount(c.model(), target_);
      if (BytesPerStep(c) != BytesPerStep(configs_.front()))
        throw UsageError("--set: the tracks must share data.batch_size, grad_accum and seq_len");
    }
    for (const auto& c : configs_) {
      const double off =
          static_cast<double>(models::ParameterCount(c.model()) - target_) / static_cast<double>(target_);
      if (std::fabs(off) > 0.1)
        std::fprintf(stderr,
                     "warning: %s is %+.0f%% off the target size at its closest depth; set its widths with --set\n",
                     c.model().name().c_str(), 100 * off);
    }
    // Every scaling run's config, resolved now: a bad one fails here, not after the training.
    for (int64_t len : lens_)
      for (const auto& base : configs_) scaling_.push_back(ScalingConfig(base, len));
    if (!a_.budget_bytes.empty()) {
      const uint64_t budget = ParseSize(a_.budget_bytes, "--budget-bytes");
      if (budget == 0) throw UsageError("--budget-bytes: must be positive");
      const uint64_t per = BytesPerStep(configs_.front());
      const uint64_t steps = std::max<uint64_t>(1, budget / per + (budget % per != 0));
      if (steps > static_cast<uint64_t>(train::limits::kMaxSteps))
        throw UsageError("--budget-bytes " + a_.budget_bytes + ": " + std::to_string(steps) + " steps; at most " +
                         std::to_string(train::limits::kMaxSteps));
      for (auto& c : configs_) c.set_steps(static_cast<int64_t>(steps));
    }
    if (!io::Default().Exists(io::JoinPath(a_.data, "manifest.pb")))
      throw UsageError("--data " + a_.data +
                       ": not a dataset directory (no manifest.pb; make one with 'bitbyte shard')");
    // The document's directory must exist now, not after an hour of training.
    const std::string dir = io::DirName(a_.out);
    if (!dir.empty() && dir != "." && !io::Default().Exists(dir))
      throw UsageError("-o " + a_.out + ": directory " + dir + " does not exist");
    io::Default().CreateDirs(a_.work);
    std::string tmpl = io::JoinPath(a_.work, "bench-tracks-XXXXXX");
    if (::mkdtemp(tmpl.data()) == nullptr) throw Error(ErrnoMessage("create a directory in", a_.work, errno));
    work_ = tmpl;
  }

  // A matched config at sequence length `len` for the scaling table; a track whose context is
  // shorter takes the longer window.
  train::pb::TrainConfig ScalingConfig(const train::pb::TrainConfig& base, int64_t len) const {
    train::pb::TrainConfig c = base;
    std::vector<std::string> sets = {"data.seq_len=" + std::to_string(len),
                                     "data.batch_size=" + std::to_string(static_cast<int64_t>(scaling_bytes_) / len),
                                     "data.grad_accum=1",
                                     "optim.warmup_steps=1",
                                     "eval.every=0",
                                     "eval.max_bytes=" + std::to_string(len + 1),
                                     "steps=" + std::to_string(kScalingWarmup + a_.scaling_steps),
                                     "checkpoint.every=" + std::to_string(kScalingWarmup + a_.scaling_steps)};
    for (const std::string& set : sets) train::ApplyOverride(c, set);
    if (models::ModelContext(c.model()) < len) models::SetModelContext(*c.mutable_model(), len);
    train::ValidateConfig(c);
    return c;
  }

  std::string Command() const {
    std::string s = "bitbyte bench tracks";
    for (const std::string& w : a_.argv) s += " " + ShellQuote(w);
    return s;
  }

  // One `bitbyte train` child on `config`; its run directory is `run`.
  RunResult TrainChild(const train::pb::TrainConfig& config, const std::string& run, bool must_succeed,
                       const std::string& stderr_path = "") {
    Spawn({"rm", "-rf", run});
    const std::string path = run + ".txtpb";
    io::WriteFileAtomic(io::Default(), path, train::ConfigToText(config));
    parent_rss_mib_ = std::max(parent_rss_mib_, SelfRssMib());
    SpawnOptions so;
    so.throw_on_failure = must_succeed;
    so.stderr_path = stderr_path;
    return Spawn({kSelfExe, "train", "--data", a_.data, "--out", run, "--config", path, "-q", "--threads",
                  std::to_string(threads_)},
                 so);
  }

  // A short run of each track: its median step time decides how many steps fit in the minutes.
  void FitStepsToMinutes() {
    for (auto& c : configs_) {
      train::pb::TrainConfig probe = c;
      probe.set_steps(8);
      probe.mutable_eval()->set_every(0);
      probe.mutable_eval()->set_max_bytes(probe.data().seq_len() + 1);
      probe.mutable_checkpoint()->set_every(8);
      const std::string run = io::JoinPath(work_, "probe");
      TrainChild(probe, run, true);
      const double step_s = MedianStepWall(run, 2);
      if (step_s <= 0) throw Error(run + "/metrics.jsonl: the probe run has no timed steps");
      c.set_steps(
          static_cast<int64_t>(std::clamp(a_.budget_minutes * 60 / step_s, 1.0, double(train::limits::kMaxSteps))));
      std::printf("%s: %.2f s a step, %lld steps in %g minutes\n", c.model().name().c_str(), step_s,
                  (long long)c.steps(), a_.budget_minutes);
    }
  }

  std::vector<runs::TrackResult> Train() {
    if (a_.budget_minutes > 0) FitStepsToMinutes();
    std::vector<runs::TrackResult> results(configs_.size());
    for (size_t i = 0; i < configs_.size(); ++i) {
      const auto& c = configs_[i];
      runs::TrackResult& r = results[i];
      r.name = c.model().name();
      r.model = ModelLine(c.model());
      r.params = models::ParameterCount(c.model());
      r.steps = c.steps();
      r.bytes_per_step = BytesPerStep(c);
      std::printf("%-10s %s parameters (target %s, %+.1f%%), %lld steps of %llu bytes\n", r.name.c_str(),
                  std::to_string(r.params).c_str(), std::to_string(target_).c_str(),
                  100.0 * static_cast<double>(r.params - target_) / static_cast<double>(target_), (long long)r.steps,
                  (unsigned long long)r.bytes_per_step);
    }
    // Seeds outermost, so slow drift of a shared machine falls on every track alike.
    const int total = a_.seeds * static_cast<int>(configs_.size());
    int done = 0;
    for (int s = 1; s <= a_.seeds; ++s) {
      for (size_t i = 0; i < configs_.size(); ++i) {
        train::pb::TrainConfig c = configs_[i];
        c.set_seed(static_cast<uint64_t>(s));
        c.mutable_eval()->set_every((c.steps() + 3) / 4);  // at each quarter (and after the last step)
        c.mutable_eval()->set_max_bytes(0);                // the whole validation split, every time
        c.mutable_checkpoint()->set_every(c.steps());
        const std::string run = io::JoinPath(work_, results[i].name + "-seed" + std::to_string(s));
        std::printf("[%d/%d] %s seed %d: training %lld steps ...", ++done, total, results[i].name.c_str(), s,
                    (long long)c.steps());
        std::fflush(stdout);
        const RunResult rr = TrainChild(c, run, true);
        const runs::RunDirContents contents = runs::ReadRunDir(run);
        run_info_ = contents.run_info;  // the environment the runs record (the same for all)
        runs::TrackRun tr = runs::SummariseRun(contents, c.steps(), results[i].bytes_per_step);
        val_bytes_ = static_cast<uint64_t>(tr.curve.back().val_bytes);
        tr.seed = static_cast<uint64_t>(s);
        tr.peak_rss_mib = static_cast<double>(rr.max_rss_kb) / 1024.0;
        tr.wall_s = rr.seconds;
        std::printf(" val bpb %.4f, %.0f bytes/s, %.0f MiB, %.0f s\n", tr.val_bpb, tr.bytes_per_s, tr.peak_rss_mib,
                    tr.wall_s);
        results[i].runs.push_back(std::move(tr));
      }
    }
    return results;
  }

  std::vector<runs::ScalingPoint> Scaling() {
    std::vector<runs::ScalingPoint> points;
    std::vector<std::string> failed;  // tracks that failed at a shorter length
    for (const train::pb::TrainConfig& c : scaling_) {
      runs::ScalingPoint p;
      p.track = c.model().name();
      p.seq_len = c.data().seq_len();
      p.batch = c.data().batch_size();
      p.params = models::ParameterCount(c.model());
      if (std::find(failed.begin(), failed.end(), p.track) != failed.end()) {
        p.failure = "not run (failed at a shorter length)";
        points.push_back(p);
        continue;
      }
      std::printf("sequence %lld, batch %lld: %s ...", (long long)p.seq_len, (long long)p.batch, p.track.c_str());
      std::fflush(stdout);
      const std::string run = io::JoinPath(work_, "scaling");
      const RunResult rr = TrainChild(c, run, false, io::JoinPath(work_, "scaling.err"));
      const double step_s = rr.failure.empty() ? MedianStepWall(run, kScalingWarmup) : 0;
      if (step_s <= 0) {
        // Its own words (the last line it wrote), so a bug does not pass for running out of memory.
        std::string last;
        std::istringstream err(io::ReadFile(io::Default(), io::JoinPath(work_, "scaling.err")));
        for (std::string line; std::getline(err, line);)
          if (!line.empty()) last = line;
        p.failure = "failed: " + (rr.failure.empty() ? std::string("no timed steps") : rr.failure) +
                    (last.empty() ? "" : " — " + last.substr(0, 160));
        failed.push_back(p.track);
        std::printf(" %s\n", p.failure.c_str());
      } else {
        p.step_s = step_s;
        p.bytes_per_s = static_cast<double>(BytesPerStep(c)) / p.step_s;
        p.peak_rss_mib = static_cast<double>(rr.max_rss_kb) / 1024.0;
        std::printf(" %.3f s a step, %.0f MiB\n", p.step_s, p.peak_rss_mib);
      }
      points.push_back(p);
    }
    return points;
  }

  // A field of the runs' run.json ("cpu", "host", "dataset_id", ...).
  std::string RunInfo(const std::string& key) const {
    for (const auto& [k, v] : run_info_)
      if (k == key) return v;
    return "unknown";
  }

  std::vector<std::string> Setup(const std::vector<runs::TrackResult>& results) const {
    std::vector<std::string> s;
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    s.push_back(std::string("Date ") + date + "; machine: " + RunInfo("cpu") + ", " + std::to_string(threads_) +
                " threads (" + std::to_string(pipeline::DefaultThreads()) + " cores available); host " +
                RunInfo("host") + "; bitbyte " + RunInfo("bitbyte") + ".");
    s.push_back(
        "Data: `" + a_.data + "` (dataset id " + RunInfo("dataset_id") + "; " + std::to_string(val_bytes_) +
        " validation bytes predicted); the same batches for every track (a batch is a function of seed and step).");
    const auto& c = configs_.front();
    s.push_back("Matched size: target " + std::to_string(target_) +
                " parameters; each track's depth (n_layer) is the one closest to it, widths as configured.");
    char minutes[32];
    std::snprintf(minutes, sizeof minutes, "%g", a_.budget_minutes);
    const std::string budget = a_.budget_minutes > 0
                                   ? std::string("about ") + minutes +
                                         " minutes of training per run (steps fitted per track from a short probe run)"
                                   : a_.budget_bytes + " bytes per run";
    s.push_back("Budget: " + budget + "; " + std::to_string(a_.seeds) + " seeds (1.." + std::to_string(a_.seeds) +
                ") per track; steps per track: " +
                [&] {
                  std::string t;
                  for (const auto& r : results) t += (t.empty() ? "" : ", ") + r.name + " " + std::to_string(r.steps);
                  return t;
                }() +
                ".");
    char line[400];
    std::snprintf(line, sizeof line,
                  "Training: sequence %d, batch %d x %d accumulation (%llu bytes a step); AdamW lr %g to %g (cosine), "
                  "warmup %lld steps, weight decay %g, clip %g.",
                  c.data().seq_len(), c.data().batch_size(), c.data().grad_accum(), (unsigned long long)BytesPerStep(c),
                  c.optim().lr(), c.optim().min_lr(), (long long)c.optim().warmup_steps(), c.optim().weight_decay(),
                  c.optim().grad_clip());
    s.push_back(line);
    s.push_back(
        "Evaluation: the whole validation split, in windows of the training sequence length, every "
        "ceil(steps / 4) steps and after the last.");
    s.push_back("Peak RSS counts the whole training process; it cannot be below the " +
                std::to_string(static_cast<int64_t>(std::lround(parent_rss_mib_))) +
                " MiB this bench process held when it started each run (a forked child starts as its copy).");
    std::string sets;
    for (const auto& o : a_.overrides) sets += (sets.empty() ? "" : ", ") + std::string("`") + o + "`";
    if (!sets.empty()) s.push_back("Overrides for every track: " + sets + ".");
    return s;
  }

  Args a_;
  int threads_ = 1;
  std::vector<std::string> names_;
  std::vector<int64_t> lens_;
  uint64_t scaling_bytes_ = 0;
  std::vector<train::pb::TrainConfig> configs_;
  int64_t target_ = 0;
  std::string work_;
  std::vector<std::pair<std::string, std::string>> run_info_;  // run.json of the latest run
  std::vector<train::pb::TrainConfig> scaling_;                // lengths outer, tracks inner
  double parent_rss_mib_ = 0;
  uint64_t val_bytes_ = 0;
};

}  // namespace

void AddBenchTracksCommand(CLI::App& bench) {
  auto a = std::make_shared<Args>();
  CLI::App* c = bench.add_subcommand(
      "tracks",
      "Train every registered track at a matched parameter count on the same data, seeds and budget;\n"
      "report val bpb (mean ± std over seeds), bytes/s and peak memory, say which backbone to use\n"
      "(or that the difference is within noise), then measure step time and memory against the\n"
      "sequence length. Writes a markdown document (-o, default docs/tracks.md). Each run is a\n"
      "'bitbyte train' child; the model's depth is chosen to match the target size and everything\n"
      "else comes from the default config and --set.");
  c->add_option("--data", a->data, "Dataset directory from 'bitbyte shard'")->required();
  c->add_option("-o,--out", a->out, "The document to write (atomically, at the end)")->capture_default_str();
  c->add_option("--tracks", a->tracks, "Comma-separated tracks (default: all registered)");
  auto* bytes = c->add_option("--budget-bytes", a->budget_bytes,
                              "Training bytes per run, the same for every track (e.g. 4M; default 1M)");
  c->add_option("--budget-minutes", a->budget_minutes,
                "Or: minutes of training per run, steps fitted to each track's speed")
      ->check(FiniteRange(0.001, 525600))  // up to a year
      ->excludes(bytes);
  c->add_option("--seeds", a->seeds, "Runs per track, with seeds 1..N (at most 100)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  c->add_option("--params", a->params, "Target parameter count (default: the first track's configured size)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  c->add_option("--set", a->overrides,
                "Config override for every track, e.g. optim.lr=3e-4 or model.mamba_mlm.d_state=32 (repeatable)");
  c->add_option("--seq-lens", a->seq_lens, "Sequence lengths for the scaling table; empty: skip it")
      ->capture_default_str();
  c->add_option("--scaling-bytes", a->scaling_bytes,
                "Bytes per step in the scaling table, a multiple of every length (batch = bytes / length)")
      ->capture_default_str();
  c->add_option("--scaling-steps", a->scaling_steps, "Timed steps per scaling point (after 2 untimed)")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
      ->capture_default_str();
  c->add_option("--threads", a->threads, "Threads for every run (default: all cores)")
      ->check(CLI::Range(0, train::limits::kMaxThreads));
  c->add_option("--work-dir", a->work,
                "Where to make a scratch directory: removed at the end, kept (and named) when the bench fails")
      ->capture_default_str();
  c->callback([a, c] {
    Args args = *a;
    // The command line as parsed, for the document.
    for (const CLI::Option* opt : c->get_options()) {
      if (opt->count() == 0 || opt->get_lnames().empty() || opt->get_lnames()[0] == "help") continue;
      for (const std::string& v : opt->results()) args.argv.insert(args.argv.end(), {"--" + opt->get_lnames()[0], v});
    }
    Bench(std::move(args)).Run();
  });
}

}  // namespace bitbyte::cli
