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
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "apps/job_options.h"
#include "apps/step_probe.h"
#include "base/error.h"
#include "base/file_io.h"
#include "base/numbers.h"
#include "models/registry.h"
#include "pipeline/graph.h"
#include "runs/run_dir.h"
#include "runs/track_bench.h"
#include "train/config.h"
#include "train/train_graph.h"
#include "train/train_job.h"

namespace bitbyte::cli {
namespace {

struct Args {
  std::string data, out = "docs/tracks.md", work = "/tmp/bitbyte-bench", tracks,
                    seq_lens = "256,512,1024,2048,4096,8192";
  std::string budget_bytes, budget_minutes, scaling_bytes = "8K", lrs, val_bytes, variants = "int8,ternary";
  bool minutes = false, sweep = true, keep_runs = false;
  double sweep_share = 0.25;
  int64_t params = 0, scaling_steps = 5;
  int seeds = 3, threads = 0, evals = 4;
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

// One budget of the comparison: bytes per run, or minutes per run (steps fitted per track).
struct Budget {
  uint64_t bytes = 0;
  double minutes = 0;
  std::string text;  // as given
  std::string Label() const {
    return minutes > 0 ? FormatDouble("%g", minutes) + " minutes per run" : text + " bytes per run";
  }
};

// What became of one run: its wall time, peak RSS, and, for a run that may fail, why it did.
// A resumed run's wall time is its records' (RunDirContents::WallSeconds): each attempt up to
// the last record it left, so neither the work redone after a kill nor a bench killed with its
// child loses or doubles time.
struct Done {
  double wall_s = 0;
  long rss_kb = 0;
  bool resumed = false;
  std::string failure;
};

class Bench {
 public:
  explicit Bench(Args a) : a_(std::move(a)) {}

  void Run() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines as they come, into a log too
    threads_ = a_.threads > 0 ? a_.threads : pipeline::DefaultThreads();
    Prepare();
    runs::TracksReport report;
    report.command = Command();
    try {
      if (a_.minutes) Probe();
      if (a_.sweep) report.sweeps = Sweep(report.sweep_budget);
      for (size_t k = 0; k < budgets_.size(); ++k) report.budgets.push_back(TrainBudget(k));
      report.setup = Setup(report.budgets);
      if (!lens_.empty()) {
        report.scaling_bytes_per_step = scaling_bytes_;
        report.scaling = Scaling();
      }
    } catch (const std::exception& e) {
      throw Error(std::string(e.what()) + "\n(the runs so far are kept in " + dir_ +
                  "; the same command continues from them)");
    }
    report.target_params = target_;
    // The charts beside the document, named after it.
    std::string stem = a_.out.substr(a_.out.find_last_of('/') + 1);
    if (stem.size() > 3 && stem.compare(stem.size() - 3, 3, ".md") == 0) stem.resize(stem.size() - 3);
    std::vector<std::pair<std::string, std::string>> files;
    if (!report.budgets.empty()) {
      for (bool by_time : {false, true}) {
        const std::string svg = runs::CurvesSvg(report.budgets.back(), by_time);
        if (svg.empty()) continue;
        const std::string name = stem + (by_time ? "-time.svg" : "-bytes.svg");
        (by_time ? report.chart_time : report.chart_bytes) = name;
        files.emplace_back(io::JoinPath(io::DirName(a_.out), name), svg);
      }
    }
    const std::string doc = runs::TracksMarkdown(report);
    files.emplace_back(a_.out, doc);
    // A copy in the bench directory first: a failing -o then loses nothing.
    io::WriteFileAtomic(io::Default(), io::JoinPath(dir_, "tracks.md"), doc);
    try {
      for (const auto& [path, text] : files) io::WriteFileAtomic(io::Default(), path, text);
    } catch (const std::exception& e) {
      throw Error(std::string(e.what()) + "\n(the document and the runs are kept in " + dir_ + ")");
    }
    for (const auto& b : report.budgets) std::printf("\n%s: %s", b.label.c_str(), runs::Recommend(b.tracks).c_str());
    std::printf("\nwrote %s\n", a_.out.c_str());
    if (a_.keep_runs)
      std::printf("runs kept in %s\n", dir_.c_str());
    else
      Spawn({"rm", "-rf", dir_});
  }

 private:
  // Everything that can be wrong with the options, found before any training.
  void Prepare() {
    if (!a_.budget_bytes.empty() && !a_.budget_minutes.empty())
      throw UsageError("give --budget-bytes or --budget-minutes, not both");
    if (a_.budget_bytes.empty() && a_.budget_minutes.empty()) a_.budget_bytes = "1M";
    a_.minutes = !a_.budget_minutes.empty();
    for (const std::string& t : Split(a_.minutes ? a_.budget_minutes : a_.budget_bytes)) {
      Budget b;
      b.text = t;
      if (a_.minutes) {
        char* end = nullptr;
        b.minutes = std::strtod(t.c_str(), &end);
        if (*end != '\0' || !std::isfinite(b.minutes) || b.minutes < 0.001 || b.minutes > 525600)
          throw UsageError("--budget-minutes: '" + t + "' is not a number of minutes from 0.001 to 525600");
      } else {
        b.bytes = ParseSize(t, "--budget-bytes");
        if (b.bytes == 0) throw UsageError("--budget-bytes: must be positive");
      }
      budgets_.push_back(b);
    }
    if (budgets_.empty()) throw UsageError("no budget given");
    std::stable_sort(budgets_.begin(), budgets_.end(), [](const Budget& x, const Budget& y) {
      return x.minutes > 0 ? x.minutes < y.minutes : x.bytes < y.bytes;
    });
    for (size_t k = 1; k < budgets_.size(); ++k)
      if (budgets_[k].minutes == budgets_[k - 1].minutes && budgets_[k].bytes == budgets_[k - 1].bytes)
        throw UsageError("budget '" + budgets_[k].text + "' is listed twice");
    for (const std::string& v : Split(a_.lrs)) {
      char* end = nullptr;
      const double lr = std::strtod(v.c_str(), &end);
      if (*end != '\0' || !std::isfinite(lr) || lr <= 0 || lr > 10)
        throw UsageError("--lrs: '" + v + "' is not a learning rate in (0, 10]");
      lrs_.push_back(lr);
    }
    std::sort(lrs_.begin(), lrs_.end());
    if (!lrs_.empty() && !a_.sweep) throw UsageError("--lrs needs the sweep (drop --no-sweep)");
    if (!lrs_.empty() && lrs_.size() < 2) throw UsageError("--lrs: give at least 2 rates (3 or more on a log grid)");
    for (const std::string& v : Split(a_.variants)) {
      if (v != "int8" && v != "ternary") throw UsageError("--variants: '" + v + "' is not int8 or ternary");
      variants_.push_back(v);
    }
    val_bytes_ = a_.val_bytes.empty() ? 0 : ParseSize(a_.val_bytes, "--val-bytes");
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
    for (const Budget& b : budgets_)
      if (b.bytes > 0 && StepsFor(b.bytes) > static_cast<uint64_t>(train::limits::kMaxSteps))
        throw UsageError("--budget-bytes " + b.text + ": " + std::to_string(StepsFor(b.bytes)) + " steps; at most " +
                         std::to_string(train::limits::kMaxSteps));
    if (!io::Default().Exists(io::JoinPath(a_.data, "manifest.pb")))
      throw UsageError("--data " + a_.data +
                       ": not a dataset directory (no manifest.pb; make one with 'bitbyte shard')");
    // The document's directory must exist now, not after an hour of training.
    const std::string dir = io::DirName(a_.out);
    if (!dir.empty() && dir != "." && !io::Default().Exists(dir))
      throw UsageError("-o " + a_.out + ": directory " + dir + " does not exist");
    // The bench directory: kept between attempts, so a killed bench continues where it stopped
    // (each run is reused when its config is the same, resumed from its checkpoint when it did
    // not finish).
    dir_ = io::JoinPath(a_.work, "bench-tracks");
    io::Default().CreateDirs(dir_);
    if (io::Default().Exists(io::JoinPath(dir_, "tracks.md")) || !io::Default().ListDir(dir_).empty())
      std::printf("continuing the bench in %s (finished runs are reused)\n", dir_.c_str());
  }

  uint64_t StepsFor(uint64_t bytes) const {
    const uint64_t per = BytesPerStep(configs_.front());
    return std::max<uint64_t>(1, bytes / per + (bytes % per != 0));
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

  // A config for a run of `steps` steps, evaluated `evals` times on the chosen validation bytes,
  // checkpointed at each evaluation (kept: the int8 variant evaluates them).
  train::pb::TrainConfig RunConfig(train::pb::TrainConfig c, int64_t steps, uint64_t seed, int evals) const {
    c.set_steps(steps);
    c.set_seed(seed);
    const int64_t every = std::max<int64_t>(1, (steps + evals - 1) / evals);
    c.mutable_eval()->set_every(every);
    c.mutable_eval()->set_max_bytes(static_cast<int64_t>(val_bytes_));
    c.mutable_checkpoint()->set_every(every);
    c.mutable_checkpoint()->set_keep(evals + 2);
    // Warm-up at most a tenth of a short run.
    c.mutable_optim()->set_warmup_steps(std::min<int64_t>(c.optim().warmup_steps(), std::max<int64_t>(1, steps / 10)));
    train::ValidateConfig(c);
    return c;
  }

  static std::string LastLine(const std::string& path) {
    std::string last;
    if (!io::Default().Exists(path)) return last;
    std::istringstream err(io::ReadFile(io::Default(), path));
    for (std::string line; std::getline(err, line);)
      if (!line.empty()) last = line;
    return last.substr(0, 200);
  }

  // Whether a run's stored request (its .txtpb: the config, then "# threads N") asks for what
  // `text` does: the same threads and the same config once defaults are filled in, so a field a
  // later bitbyte added (at its default) does not make a finished run look like another one,
  // unless the field changed what the run did. A request that does not parse is another one.
  bool SameRequest(const std::string& stored, const std::string& text, const train::pb::TrainConfig& config) const {
    if (stored == text) return true;
    const std::string threads = "# threads " + std::to_string(threads_) + "\n";
    if (stored.size() < threads.size() || stored.compare(stored.size() - threads.size(), threads.size(), threads) != 0)
      return false;
    try {
      const train::pb::TrainConfig old = train::ParseConfigText(stored, "stored request");
      // Before qat_precision, one probe of the quantized model chose every step's precision: a
      // QAT run of then is not one of now.
      if (!old.has_qat_precision() && old.model().qat().scheme() != "none") return false;
      return train::ConfigDifference(old, config).empty();
    } catch (const Error&) {
      return false;
    }
  }

  // One `bitbyte train` child on `config`, in the bench directory under `name`. A run whose
  // config is the one asked for is reused when it finished and resumed from its checkpoint when
  // it did not. A failure throws when `must_succeed`, else it is returned (and kept: a diverged
  // sweep run is not run again).
  Done TrainRun(const train::pb::TrainConfig& config, const std::string& name, bool must_succeed) {
    io::FileSystem& fs = io::Default();
    const std::string run = io::JoinPath(dir_, name), path = run + ".txtpb", done_path = run + ".done",
                      parts = run + ".parts", err = run + ".err";
    const std::string text = train::ConfigToText(config) + "# threads " + std::to_string(threads_) + "\n";
    const bool same = fs.Exists(path) && SameRequest(io::ReadFile(fs, path), text, config);
    parent_rss_mib_ = std::max(parent_rss_mib_, SelfRssMib());  // also when the run is reused
    Done d;
    if (same && fs.Exists(done_path)) {
      std::istringstream in(io::ReadFile(fs, done_path));
      int resumed = 0;
      if (in >> d.wall_s >> d.rss_kb >> resumed) {
        std::getline(in >> std::ws, d.failure);
        d.resumed = resumed != 0;
        if (d.resumed && d.failure.empty()) d.wall_s = runs::ReadRunDir(run).WallSeconds();
        if (!d.failure.empty() && must_succeed) throw Error(name + ": " + d.failure);
        return d;
      }
    }
    d = Done{};
    const bool resume = same && fs.Exists(io::JoinPath(run, "checkpoints/latest"));
    if (resume && fs.Exists(parts)) {  // its earlier parts' peak RSS (and time, kept for a failure)
      std::istringstream in(io::ReadFile(fs, parts));
      in >> d.wall_s >> d.rss_kb;
    }
    if (!resume) {  // from the start: nothing of an earlier attempt (or of another config) is kept
      Spawn({"rm", "-rf", run, parts, done_path});
      io::WriteFileAtomic(fs, path, text);
    }
    parent_rss_mib_ = std::max(parent_rss_mib_, SelfRssMib());
    SpawnOptions so;
    so.throw_on_failure = false;
    so.stderr_path = err;
    std::vector<std::string> argv = {kSelfExe, "train"};
    if (resume)
      argv.insert(argv.end(), {"--resume", run});
    else
      argv.insert(argv.end(), {"--data", a_.data, "--out", run, "--config", path});
    argv.insert(argv.end(), {"-q", "--threads", std::to_string(threads_)});
    const RunResult rr = Spawn(argv, so);
    d.wall_s += rr.seconds;
    d.rss_kb = std::max(d.rss_kb, rr.max_rss_kb);
    d.resumed = d.resumed || resume;
    io::WriteFileAtomic(fs, parts, FormatDouble("%.3f", d.wall_s) + " " + std::to_string(d.rss_kb) + "\n");
    if (!rr.failure.empty()) {
      const std::string last = LastLine(err);
      d.failure = rr.failure + (last.empty() ? "" : " — " + last);
      if (must_succeed) throw Error(name + ": " + d.failure);
    } else {
      // A child stopped by SIGINT/SIGTERM exits 0 after a checkpoint: unfinished, not done.
      const runs::RunDirContents contents = runs::ReadRunDir(run);
      const int64_t last_step = contents.LastStep();
      if (d.resumed) d.wall_s = contents.WallSeconds();
      if (last_step < config.steps())
        throw Error(name + ": stopped at step " + std::to_string(last_step) + " of " + std::to_string(config.steps()) +
                    " (interrupted)");
    }
    io::WriteFileAtomic(fs, done_path,
                        FormatDouble("%.3f", d.wall_s) + " " + std::to_string(d.rss_kb) + " " +
                            std::to_string(d.resumed ? 1 : 0) + " " + d.failure + "\n");
    return d;
  }

  // A short run of each track: its median step time decides how many steps fit in the minutes.
  void Probe() {
    for (auto& c : configs_) {
      const std::string name = "probe-" + c.model().name();
      TrainRun(ProbeConfig(c), name, true);
      const double step_s = MedianStepWall(io::JoinPath(dir_, name), kProbeWarmup);
      if (step_s <= 0) throw Error(name + "/metrics.jsonl: the probe run has no timed steps");
      step_s_.push_back(step_s);
      std::printf("%s: %.3f s a step\n", c.model().name().c_str(), step_s);
    }
  }

  // Steps of track i at budget b.
  int64_t Steps(size_t i, const Budget& b) const {
    if (b.minutes <= 0) return static_cast<int64_t>(StepsFor(b.bytes));
    return StepsInMinutes(b.minutes, step_s_[i]);
  }

  static std::string LrName(double lr) { return FormatDouble("%.4g", lr); }

  // Each track's learning rate from a sweep at a short budget (a share of the shortest one):
  // the given rates, or the configured one times 1/2, 1 and 2; extended past an edge that wins,
  // at most twice. The chosen rate replaces the configured one (and min_lr keeps its ratio).
  std::vector<runs::TrackSweep> Sweep(std::string& budget_words) {
    Budget share = budgets_.front();
    share.minutes *= a_.sweep_share;
    share.bytes = static_cast<uint64_t>(std::ceil(static_cast<double>(share.bytes) * a_.sweep_share));
    budget_words = share.minutes > 0 ? FormatDouble("about %.3g minutes a run", share.minutes)
                                     : FormatDouble("%.0f bytes a run", static_cast<double>(share.bytes));
    budget_words += FormatDouble(", %g of the shortest budget", a_.sweep_share);
    std::vector<runs::TrackSweep> sweeps;
    for (size_t i = 0; i < configs_.size(); ++i) {
      train::pb::TrainConfig& c = configs_[i];
      runs::TrackSweep sw;
      sw.track = c.model().name();
      sw.steps = Steps(i, share);
      const double ratio = c.optim().min_lr() / c.optim().lr();
      std::vector<double> grid = lrs_;
      if (grid.empty()) grid = {c.optim().lr() / 2, c.optim().lr(), c.optim().lr() * 2};
      auto run = [&](double lr) {
        train::pb::TrainConfig s = RunConfig(c, sw.steps, 1, 1);
        s.mutable_optim()->set_lr(lr);
        s.mutable_optim()->set_min_lr(lr * ratio);
        s.mutable_checkpoint()->set_keep(1);
        std::printf("sweep %s lr %s, %lld steps ...", sw.track.c_str(), LrName(lr).c_str(), (long long)sw.steps);
        std::fflush(stdout);
        const std::string name = "sweep-" + sw.track + "-lr" + LrName(lr);
        const Done d = TrainRun(s, name, false);
        runs::SweepPoint p;
        p.lr = lr;
        p.val_bpb = std::nan("");
        p.failure = d.failure;
        if (d.failure.empty()) {
          const runs::RunDirContents contents = runs::ReadRunDir(io::JoinPath(dir_, name));
          p.val_bpb = runs::SummariseRun(contents, sw.steps, BytesPerStep(s)).val_bpb;
          std::printf(" val bpb %.4f\n", p.val_bpb);
        } else {
          std::printf(" failed: %s\n", d.failure.c_str());
        }
        sw.points.push_back(p);
        std::sort(sw.points.begin(), sw.points.end(),
                  [](const runs::SweepPoint& x, const runs::SweepPoint& y) { return x.lr < y.lr; });
      };
      for (double lr : grid) run(lr);
      for (int extra = 0; extra < 2; ++extra) {
        const runs::SweepPoint* best = sw.Best();
        if (best == nullptr)
          run(sw.points.front().lr / 2);  // all diverged: lower
        else if (sw.AtEdge())
          run(best == &sw.points.front() ? best->lr / 2 : best->lr * 2);
        else
          break;
      }
      const runs::SweepPoint* best = sw.Best();
      if (best == nullptr)
        throw Error("sweep: every learning rate failed for " + sw.track + " (the last: " + sw.points.back().failure +
                    ")");
      c.mutable_optim()->set_lr(best->lr);
      c.mutable_optim()->set_min_lr(best->lr * ratio);
      std::printf("%s: learning rate %s\n", sw.track.c_str(), LrName(best->lr).c_str());
      sweeps.push_back(std::move(sw));
    }
    return sweeps;
  }

  runs::TrackRun Summarise(const train::pb::TrainConfig& c, const std::string& name, const Done& d, uint64_t seed) {
    runs::RunDirContents contents = runs::ReadRunDir(io::JoinPath(dir_, name));
    FillSkippedEvals(c, io::JoinPath(dir_, name), contents);
    for (const auto& [k, v] : contents.run_info)
      if (k == "cpu" && std::find(cpus_.begin(), cpus_.end(), v) == cpus_.end()) cpus_.push_back(v);
    run_info_ = contents.run_info;
    runs::TrackRun tr = runs::SummariseRun(contents, c.steps(), BytesPerStep(c));
    val_bytes_seen_ = static_cast<uint64_t>(tr.curve.back().val_bytes);
    tr.seed = seed;
    tr.peak_rss_mib = static_cast<double>(d.rss_kb) / 1024.0;
    tr.wall_s = d.wall_s;
    tr.resumed = d.resumed;
    return tr;
  }

  // An evaluation the run skipped (the previous one was still running: a slow track's evaluation
  // can take longer than its interval) is made up from the checkpoint of that step when there is
  // one (the sink may have replaced it; the last step's is always written), so the curves have
  // their points. A made-up record has no eval_s: it excludes no step from the timing.
  void FillSkippedEvals(const train::pb::TrainConfig& c, const std::string& run, runs::RunDirContents& contents) {
    std::set<int64_t> have;
    for (const runs::EvalRecord& e : contents.evals) have.insert(e.step);
    for (int64_t step = 1; step <= c.steps(); ++step) {
      if (!train::Due(step, c.eval().every(), c.steps()) || have.count(step) != 0) continue;
      runs::EvalRecord e;
      e.step = step;
      e.val_bpb = CheckpointBpb(run, step, "", false, &e.val_bytes);
      if (std::isfinite(e.val_bpb)) contents.evals.push_back(e);
    }
  }

  runs::TrackResult Describe(const train::pb::TrainConfig& c, int64_t steps) const {
    runs::TrackResult r;
    r.name = c.model().name();
    r.model = ModelLine(c.model());
    r.params = models::ParameterCount(c.model());
    r.steps = steps;
    r.bytes_per_step = BytesPerStep(c);
    r.lr = c.optim().lr();
    return r;
  }

  runs::BudgetResult TrainBudget(size_t k) {
    const Budget& b = budgets_[k];
    const std::string tag = "b" + std::to_string(k + 1) + "-";
    runs::BudgetResult out;
    out.label = b.Label();
    std::printf("\n== budget: %s\n", out.label.c_str());
    for (size_t i = 0; i < configs_.size(); ++i) {
      runs::TrackResult r = Describe(configs_[i], Steps(i, b));
      std::printf("%-10s %s parameters (target %s, %+.1f%%), %lld steps of %llu bytes, lr %g\n", r.name.c_str(),
                  std::to_string(r.params).c_str(), std::to_string(target_).c_str(),
                  100.0 * static_cast<double>(r.params - target_) / static_cast<double>(target_), (long long)r.steps,
                  (unsigned long long)r.bytes_per_step, r.lr);
      out.tracks.push_back(r);
    }
    // Seeds outermost, so slow drift of a shared machine falls on every track alike.
    const int total = a_.seeds * static_cast<int>(configs_.size());
    int done = 0;
    for (int s = 1; s <= a_.seeds; ++s)
      for (size_t i = 0; i < configs_.size(); ++i) {
        runs::TrackResult& r = out.tracks[i];
        const train::pb::TrainConfig c = RunConfig(configs_[i], r.steps, static_cast<uint64_t>(s), a_.evals);
        const std::string name = tag + r.name + "-seed" + std::to_string(s);
        std::printf("[%d/%d] %s seed %d: training %lld steps ...", ++done, total, r.name.c_str(), s,
                    (long long)c.steps());
        std::fflush(stdout);
        const runs::TrackRun tr = Summarise(c, name, TrainRun(c, name, true), static_cast<uint64_t>(s));
        std::printf(" val bpb %.4f, %.0f bytes/s, %.0f MiB, %.0f s%s\n", tr.val_bpb, tr.bytes_per_s, tr.peak_rss_mib,
                    tr.wall_s, tr.resumed ? " (resumed)" : "");
        r.runs.push_back(tr);
      }
    // The quantized variants of the best track, at the longest budget.
    if (k + 1 == budgets_.size() && !variants_.empty()) {
      const runs::TrackResult* best = runs::BestTrack(out.tracks);
      const size_t i = static_cast<size_t>(best - out.tracks.data());
      out.variants_of = best->name;
      for (const std::string& v : variants_) out.variants.push_back(Variant(v, configs_[i], *best, tag));
    }
    return out;
  }

  runs::TrackResult Variant(const std::string& what, const train::pb::TrainConfig& base, const runs::TrackResult& fp,
                            const std::string& tag) {
    runs::TrackResult r = fp;
    r.runs.clear();
    for (const runs::TrackRun& f : fp.runs) {
      const std::string float_name = tag + fp.name + "-seed" + std::to_string(f.seed);
      if (what == "ternary") {
        r.name = fp.name + " ternary QAT";
        train::pb::TrainConfig c = RunConfig(base, fp.steps, f.seed, a_.evals);
        c.mutable_model()->mutable_qat()->set_scheme("ternary");
        c.mutable_model()->mutable_qat()->set_start_step(fp.steps / 2);
        train::ValidateConfig(c);
        const std::string name = tag + fp.name + "-ternary-seed" + std::to_string(f.seed);
        std::printf("%s seed %llu: training %lld steps ...", r.name.c_str(), (unsigned long long)f.seed,
                    (long long)c.steps());
        std::fflush(stdout);
        const runs::TrackRun tr = Summarise(c, name, TrainRun(c, name, true), f.seed);
        std::printf(" val bpb %.4f\n", tr.val_bpb);
        r.runs.push_back(tr);
      } else {
        r.name = fp.name + " int8 PTQ";
        runs::TrackRun tr = f;
        // The checkpoint sink may skip an evaluation step's checkpoint when writes fall behind
        // (a newer snapshot replaces a pending one): those points are left out; the last one is
        // always written.
        tr.curve.clear();
        for (runs::EvalRecord e : f.curve) {
          const double bpb =
              CheckpointBpb(io::JoinPath(dir_, float_name), e.step, "int8", e.step == f.curve.back().step, nullptr);
          if (std::isnan(bpb)) continue;
          e.val_bpb = bpb;
          tr.curve.push_back(e);
        }
        tr.val_bpb = tr.curve.back().val_bpb;
        std::printf("%s seed %llu: val bpb %.4f\n", r.name.c_str(), (unsigned long long)f.seed, tr.val_bpb);
        r.runs.push_back(tr);
      }
    }
    return r;
  }

  // val bpb of a run's checkpoint at `step` on the bench's validation bytes, with dynamic int8
  // Linear layers when `quantize` is "int8", as trained when it is empty; kept beside the run
  // (<run>-<int8|eval>-<step>.json), so a continued bench does not evaluate it again. NaN when there
  // is no checkpoint at that step (and it need not exist). `val_bytes`, when given, receives the
  // number of bytes evaluated.
  double CheckpointBpb(const std::string& run, int64_t step, const std::string& quantize, bool must_exist,
                       double* val_bytes) {
    char dir[64];
    std::snprintf(dir, sizeof dir, "checkpoints/step-%09lld", (long long)step);
    const std::string ckpt = io::JoinPath(run, dir),
                      cache = run + "-" + (quantize.empty() ? "eval" : quantize) + "-" + std::to_string(step) + ".json";
    io::FileSystem& fs = io::Default();
    if (!fs.Exists(cache)) {
      if (!fs.Exists(ckpt)) {
        if (must_exist) throw Error(ckpt + ": no checkpoint at the run's last step (" + quantize + " variant)");
        return std::nan("");
      }
      std::printf(" [evaluating %s%s]", dir, quantize.empty() ? "" : (" as " + quantize).c_str());
      std::fflush(stdout);
      std::vector<std::string> argv = {kSelfExe, "eval",      "--checkpoint",          ckpt,
                                       "--data", a_.data,     "--max-bytes",           std::to_string(val_bytes_),
                                       "--json", "--threads", std::to_string(threads_)};
      if (!quantize.empty()) argv.insert(argv.end(), {"--quantize", quantize});
      SpawnOptions so;
      so.stdout_path = cache + ".tmp";
      Spawn(argv, so);
      fs.Rename(cache + ".tmp", cache);
    }
    const nlohmann::json out = nlohmann::json::parse(io::ReadFile(fs, cache), nullptr, /*allow_exceptions=*/false);
    auto number = [&](const char* key) {
      if (!out.is_object() || !out.contains(key) || !out[key].is_number())
        throw Error(cache + ": no number \"" + key + "\" in eval's --json output");
      return out[key].get<double>();
    };
    if (val_bytes != nullptr) *val_bytes = number("bytes");
    return number("bpb");
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
      const std::string name = "scaling-" + p.track + "-" + std::to_string(p.seq_len);
      const Done d = TrainRun(c, name, false);
      const double step_s = d.failure.empty() ? MedianStepWall(io::JoinPath(dir_, name), kScalingWarmup) : 0;
      if (step_s <= 0) {
        p.failure = "failed: " + (d.failure.empty() ? std::string("no timed steps") : d.failure.substr(0, 200));
        failed.push_back(p.track);
        std::printf(" %s\n", p.failure.c_str());
      } else {
        p.step_s = step_s;
        p.bytes_per_s = static_cast<double>(BytesPerStep(c)) / p.step_s;
        p.peak_rss_mib = static_cast<double>(d.rss_kb) / 1024.0;
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

  std::vector<std::string> Setup(const std::vector<runs::BudgetResult>& budgets) const {
    std::vector<std::string> s;
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    s.push_back(std::string("Date ") + date + "; machine: " + RunInfo("cpu") + ", " + std::to_string(threads_) +
                (threads_ == 1 ? " thread (" : " threads (") + std::to_string(pipeline::DefaultThreads()) +
                " cores available); host " + RunInfo("host") + "; bitbyte " + RunInfo("bitbyte") + ".");
    if (cpus_.size() > 1) {
      std::string list;
      for (const std::string& c : cpus_) list += (list.empty() ? "" : "; ") + c;
      s.push_back("**Warning: the runs ran on more than one CPU** (the bench was continued on another machine): " +
                  list + ". Throughput and time budgets do not compare across them.");
    }
    s.push_back("Data: `" + a_.data + "` (dataset id " + RunInfo("dataset_id") + "); val bpb on " +
                (val_bytes_ > 0 ? "the first " + std::to_string(val_bytes_) + " bytes of the validation split"
                                : std::string("the whole validation split")) +
                " (" + std::to_string(val_bytes_seen_) +
                " bytes predicted); the same batches for every track (a batch is a function of seed and step).");
    const auto& c = configs_.front();
    s.push_back("Matched size: target " + std::to_string(target_) +
                " parameters; each track's depth (n_layer) is the one closest to it, widths as configured.");
    std::string labels;
    for (const auto& b : budgets) labels += (labels.empty() ? "" : ", ") + b.label;
    std::string probes;
    for (size_t i = 0; i < step_s_.size(); ++i)
      probes += (i ? ", " : "") + configs_[i].model().name() + FormatDouble(" %.3f s", step_s_[i]);
    s.push_back("Budgets: " + labels +
                (a_.minutes ? " (steps fitted per track from a probe run of 8 steps: " + probes + " a step)" : "") +
                "; " + std::to_string(a_.seeds) + " seeds (1.." + std::to_string(a_.seeds) + ") per track and budget.");
    char line[400];
    std::snprintf(line, sizeof line,
                  "Training: sequence %d, batch %d x %d accumulation (%llu bytes a step); AdamW, cosine schedule to a "
                  "tenth of the peak rate, linear warm-up of %lld steps (at most a tenth of the run), weight decay "
                  "%g, clip %g; the same schedule for every track, each with its own peak rate (the sweep).",
                  c.data().seq_len(), c.data().batch_size(), c.data().grad_accum(), (unsigned long long)BytesPerStep(c),
                  (long long)c.optim().warmup_steps(), c.optim().weight_decay(), c.optim().grad_clip());
    s.push_back(line);
    s.push_back("Evaluation: " + std::to_string(a_.evals) + " times a run (every ceil(steps / " +
                std::to_string(a_.evals) + ") steps and after the last), in windows of the training sequence length.");
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
  std::vector<std::string> names_, variants_, cpus_;
  std::vector<int64_t> lens_;
  std::vector<double> lrs_, step_s_;
  std::vector<Budget> budgets_;
  uint64_t scaling_bytes_ = 0, val_bytes_ = 0, val_bytes_seen_ = 0;
  std::vector<train::pb::TrainConfig> configs_;
  int64_t target_ = 0;
  std::string dir_;
  std::vector<std::pair<std::string, std::string>> run_info_;  // run.json of the latest run
  std::vector<train::pb::TrainConfig> scaling_;                // lengths outer, tracks inner
  double parent_rss_mib_ = 0;
};

}  // namespace

void AddBenchTracksCommand(CLI::App& bench) {
  auto a = std::make_shared<Args>();
  CLI::App* c = bench.add_subcommand(
      "tracks",
      "Compare the registered tracks as a reviewer would ask: matched parameter count, the same data,\n"
      "seeds and budgets, each track with its own learning rate from a sweep (a log grid at a short\n"
      "budget). For each budget: val bpb (mean ± std over seeds), bytes/s, peak memory, learning\n"
      "curves against bytes and training time, and a recommendation that says whether the gap is\n"
      "beyond noise (seed-paired 95% interval), within it, or cannot be judged (one seed). At the\n"
      "longest budget, the best track's quantized variants (int8 PTQ, ternary QAT). Then step time\n"
      "and memory against the sequence length. Writes a markdown document (-o, default\n"
      "docs/tracks.md) and two SVG charts beside it. Each run is a 'bitbyte train' child kept in\n"
      "--work-dir: a killed bench, run again with the same options, reuses the finished runs and\n"
      "resumes the unfinished one from its checkpoint.");
  c->add_option("--data", a->data, "Dataset directory from 'bitbyte shard'")->required();
  c->add_option("-o,--out", a->out, "The document to write (atomically, at the end)")->capture_default_str();
  c->add_option("--tracks", a->tracks, "Comma-separated tracks (default: all registered)");
  auto* bytes = c->add_option("--budget-bytes", a->budget_bytes,
                              "Training bytes per run, comma-separated budgets, the same for every track (e.g. "
                              "4M,16M; default 1M)");
  c->add_option("--budget-minutes", a->budget_minutes,
                "Or: minutes of training per run, comma-separated budgets (e.g. 10,60), steps fitted to each "
                "track's speed")
      ->excludes(bytes);
  c->add_option("--seeds", a->seeds, "Runs per track and budget, with seeds 1..N (at most 100)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  c->add_option("--lrs", a->lrs,
                "Learning rates of the sweep, comma-separated, for every track (default: each track's configured "
                "rate times 1/2, 1 and 2)");
  c->add_flag("--no-sweep{false}", a->sweep, "Use the configured learning rates, no sweep");
  c->add_option("--sweep-share", a->sweep_share, "A sweep run's budget, as a share of the shortest budget")
      ->check(FiniteRange(0.001, 1))
      ->capture_default_str();
  c->add_option("--val-bytes", a->val_bytes,
                "Evaluate on the first N bytes of the validation split (e.g. 256K; default: all of it)");
  c->add_option("--evals", a->evals, "Evaluations per run (the points of the learning curves)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  c->add_option("--variants", a->variants,
                "Quantized variants of the best track at the longest budget: int8 (PTQ of its checkpoints), "
                "ternary (QAT from half the steps); empty: none")
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
                "Where the runs are kept (in WORK_DIR/bench-tracks): the same command continues a killed bench "
                "from them; removed at the end unless --keep-runs")
      ->capture_default_str();
  c->add_flag("--keep-runs", a->keep_runs, "Keep the runs' directories after the document is written");
  c->callback([a, c] {
    Args args = *a;
    // The command line as parsed, for the document.
    for (const CLI::Option* opt : c->get_options()) {
      if (opt->count() == 0 || opt->get_lnames().empty() || opt->get_lnames()[0] == "help") continue;
      if (opt->get_lnames()[0] == "keep-runs" || opt->get_lnames()[0] == "no-sweep") {  // the flags
        args.argv.push_back("--" + opt->get_lnames()[0]);
        continue;
      }
      for (const std::string& v : opt->results()) args.argv.insert(args.argv.end(), {"--" + opt->get_lnames()[0], v});
    }
    Bench(std::move(args)).Run();
  });
}

}  // namespace bitbyte::cli
