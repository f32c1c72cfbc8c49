// bitbyte top: parsing and wiring only. Reads a run's (or dataset's) pipeline.json and the tail
// of its metrics.jsonl (runs/run_dir.h), refreshed while a job holds the directory.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "apps/commands.h"
#include "apps/job_options.h"
#include "base/error.h"
#include "base/file_io.h"
#include "pipeline/monitor.h"
#include "pipeline/progress.h"
#include "runs/layout.h"
#include "runs/run_dir.h"
#include "train/config.h"

namespace bitbyte::cli {
namespace {

using pipeline::kFiguresFile;

struct Frame {
  std::optional<runs::PipelineInfo> pipeline;  // absent when missing or damaged
  std::string pipeline_problem;                // why it could not be read
  runs::RunDirContents metrics;                // the records of metrics.jsonl's tail
  int64_t total_steps = 0;
  bool metrics_file = false;
};

// The last records of metrics.jsonl without reading the whole file: its last 256 KiB. A line
// cut off by a kill, or damaged, is skipped and counted.
void ReadMetricsTail(const std::string& path, Frame& f) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  f.metrics_file = true;
  struct stat st;
  std::string tail;
  if (::fstat(fd, &st) == 0) {
    const off_t want = std::min<off_t>(st.st_size, 256 << 10);
    tail.resize(static_cast<size_t>(want));
    const ssize_t got = ::pread(fd, tail.data(), tail.size(), st.st_size - want);
    tail.resize(got > 0 ? static_cast<size_t>(got) : 0);
    if (want < st.st_size) {  // the first line is probably partial
      const size_t nl = tail.find('\n');
      tail.erase(0, nl == std::string::npos ? tail.size() : nl + 1);
    }
  }
  ::close(fd);
  runs::ParseMetrics(tail, f.metrics);
}

int64_t ConfiguredSteps(const std::string& dir) {
  const std::string path = io::JoinPath(dir, runs::kConfigFile);
  if (!io::Default().Exists(path)) return 0;
  try {
    return train::ConfigTotalSteps(io::ReadFile(io::Default(), path));
  } catch (const std::exception&) {  // damaged, or replaced while read: no total shown
    return 0;
  }
}

Frame ReadFrame(const std::string& dir) {
  Frame f;
  const std::string path = io::JoinPath(dir, kFiguresFile);
  if (io::Default().Exists(path)) {
    try {
      // The one reader of pipeline.json (runs/run_dir.h): wrong types are taken as absent.
      std::string why;
      f.pipeline = runs::ParsePipeline(io::ReadFile(io::Default(), path), &why);
      if (!f.pipeline) f.pipeline_problem = path + " is damaged (" + why + ")";
    } catch (const std::exception& e) {  // replaced between exists and read: next frame
      f.pipeline_problem = e.what();
    }
  }
  ReadMetricsTail(io::JoinPath(dir, runs::kMetricsFile), f);
  f.total_steps = ConfiguredSteps(dir);
  return f;
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

// A figure that does not apply, or is absent, is NaN.
std::string Pct(double v) {
  if (!std::isfinite(v)) return "    -";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%5.1f", v);
  return buf;
}

std::string Bar(double busy) {
  const int n = std::isfinite(busy) ? static_cast<int>(std::lround(std::clamp(busy, 0.0, 100.0) / 10)) : 0;
  return "[" + std::string(static_cast<size_t>(n), '#') + std::string(static_cast<size_t>(10 - n), ' ') + "]";
}

std::string Render(const std::string& dir, const Frame& f) {
  std::string s;
  char line[512];
  const double now = pipeline::UnixSeconds();
  s += "bitbyte top: " + dir + "\n";
  auto or_unknown = [](const std::string& v) { return v.empty() ? std::string("?") : v; };
  if (f.pipeline) {
    const runs::PipelineInfo& p = *f.pipeline;
    std::string state = or_unknown(p.state);
    const double age = now - p.updated_unix.value_or(now);
    const int64_t pid = p.pid.value_or(0);
    if (state == "running" && pid > 0 && pid <= INT32_MAX && p.host == pipeline::HostName() &&
        ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      state = "stopped without finishing (pid " + std::to_string(pid) + " is gone)";
    std::snprintf(line, sizeof line, "job %s  state %s  pid %lld  threads %lld  updated %.1f s ago\n",
                  or_unknown(p.job).c_str(), state.c_str(), static_cast<long long>(pid),
                  static_cast<long long>(p.threads.value_or(0)), age);
    s += line;
  } else {
    s += "no live figures: " +
         (f.pipeline_problem.empty() ? dir + "/" + kFiguresFile + " is missing" : f.pipeline_problem) + "\n";
  }
  if (const runs::StepRecord* m = f.metrics.LatestStep()) {
    std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f  lr %.2e  %s/s  data wait %.2f%%  elapsed %s",
                  static_cast<long long>(m->step), static_cast<long long>(f.total_steps), m->loss, m->lr,
                  pipeline::Progress::FormatBytes(m->bytes_per_s).c_str(), 100 * m->data_wait_frac,
                  pipeline::Progress::FormatDuration(m->elapsed_s).c_str());
    s += line;
    if (const runs::EvalRecord* e = f.metrics.LatestEval()) {
      std::snprintf(line, sizeof line, "  val bpb %.4f @ step %lld", e->val_bpb, static_cast<long long>(e->step));
      s += line;
    }
    if (const runs::TelemetryRecord* t = f.metrics.LatestTelemetry()) {
      std::snprintf(line, sizeof line, "  K %.3f C %.3f S %.3f @ step %lld", t->k, t->c, t->s,
                    static_cast<long long>(t->step));
      s += line;
    }
    s += "\n";
  } else if (f.metrics_file) {
    s += "no step recorded yet\n";
  }
  if (f.metrics.skipped_lines)
    s += "(" + std::to_string(f.metrics.skipped_lines) + " damaged or cut-off metrics lines skipped)\n";
  if (!f.pipeline) return s;
  for (const runs::PipelineGraph& g : f.pipeline->graphs) {
    const std::string gstate = or_unknown(g.state);
    const bool running = gstate == "running";
    std::snprintf(line, sizeof line, "\ngraph %s (%s, %.1f s)  figures over %s  bottleneck: %s\n",
                  or_unknown(g.name).c_str(), gstate.c_str(), std::isfinite(g.elapsed_s) ? g.elapsed_s : 0.0,
                  running ? ("the last " + Seconds(f.pipeline->interval_s.value_or(2.0))).c_str() : "the whole run",
                  g.bottleneck ? g.bottleneck->c_str() : "-");
    s += line;
    std::snprintf(line, sizeof line, "%-14s %-9s %4s %-12s %5s %5s %5s %9s %9s %5s %5s %10s %10s\n", "node", "kind",
                  "conc", "busy", "busy%", "idle%", "blkd%", "in", "out", "queue", "fly", "items/s", "bytes/s");
    s += line;
    for (const runs::PipelineNode& n : g.nodes) {
      constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
      const runs::NodeFigures sp =
          (running ? n.window : n.total).value_or(runs::NodeFigures{kNaN, kNaN, kNaN, kNaN, kNaN, kNaN});
      std::snprintf(line, sizeof line, "%-14s %-9s %4s %-12s %5s %5s %5s %9lld %9lld %5lld %5lld %10.1f %10s\n",
                    n.name.c_str(), or_unknown(n.kind).c_str(),
                    n.concurrency == 0 ? "inf" : std::to_string(n.concurrency).c_str(), Bar(sp.busy_pct).c_str(),
                    Pct(sp.busy_pct).c_str(), Pct(sp.idle_pct).c_str(), Pct(sp.blocked_pct).c_str(),
                    static_cast<long long>(n.in), static_cast<long long>(n.out), static_cast<long long>(n.queue),
                    static_cast<long long>(n.in_flight), std::isfinite(sp.items_per_s) ? sp.items_per_s : 0.0,
                    std::isfinite(sp.bytes_per_s) ? pipeline::Progress::FormatBytes(sp.bytes_per_s).c_str() : "-");
      s += line;
    }
  }
  return s;
}

volatile sig_atomic_t g_top_stop = 0;
extern "C" void OnTopSignal(int) { g_top_stop = 1; }

}  // namespace

void AddTopCommand(CLI::App& app) {
  struct Args {
    std::string dir;
    double interval = 1.0;
    bool once = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c =
      app.add_subcommand("top",
                         "A terminal view of a running (or finished) job: the latest training metrics and the live\n"
                         "per-node figures of its flow graph (busy/idle/blocked %, in/out, queue, throughput), read\n"
                         "from RUN_DIR/pipeline.json and metrics.jsonl and refreshed until the job ends or Ctrl-C.\n"
                         "Works on a dataset directory while 'bitbyte shard' writes it too.");
  c->add_option("RUN_DIR", a->dir, "Run directory (or a dataset directory being sharded)")->required();
  c->add_option("--interval", a->interval, "Seconds between refreshes")
      ->check(FiniteRange(pipeline::kMinFiguresInterval, pipeline::kMaxFiguresInterval))
      ->capture_default_str();
  c->add_flag("--once", a->once, "Print one frame and exit");
  c->callback([a] {
    struct stat st;
    if (::stat(a->dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw UsageError(a->dir + ": no such directory");
    const bool tty = ::isatty(1);
    struct sigaction sa = {}, old_int = {}, old_term = {};
    sa.sa_handler = OnTopSignal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int);
    ::sigaction(SIGTERM, &sa, &old_term);
    struct Restore {
      struct sigaction *i, *t;
      ~Restore() {
        ::sigaction(SIGINT, i, nullptr);
        ::sigaction(SIGTERM, t, nullptr);
      }
    } restore{&old_int, &old_term};
    bool waited = false;
    for (;;) {
      // A job holds the directory's lock from its start (before pipeline.json is written, or
      // while a resume still shows the last run's figures) to its end, and writes its last
      // figures before it lets go: asked before reading, a lock no longer held means the frame
      // read next is final. Where locks cannot be inspected, pipeline.json's state and pid tell.
      const std::optional<bool> held = runs::DirLockHeld(a->dir);
      const Frame f = ReadFrame(a->dir);
      if (!f.pipeline && f.pipeline_problem.empty() && !f.metrics_file) {
        if (a->once)
          throw UsageError(a->dir +
                           " has neither pipeline.json nor metrics.jsonl: not a run or dataset "
                           "directory, or its job has not started yet");
        if (!waited) std::fprintf(stderr, "waiting for %s/%s ...\n", a->dir.c_str(), kFiguresFile);
        waited = true;
      } else {
        std::string frame = Render(a->dir, f);
        const bool says_running = f.pipeline && f.pipeline->state == "running";
        const bool live = held ? *held : says_running && frame.find("stopped without finishing") == std::string::npos;
        if (live && !says_running)
          frame += "\na job holds " + a->dir + ": it is starting (the figures above are older)\n";
        if (!live && says_running && frame.find("stopped without finishing") == std::string::npos)
          frame +=
              "\nthe job stopped without finishing: pipeline.json says running, but no process holds " + a->dir + "\n";
        if (tty && !a->once) std::fputs("\x1b[H\x1b[2J", stdout);
        std::fputs(frame.c_str(), stdout);
        std::fflush(stdout);
        if (a->once || !live) return;
      }
      for (double slept = 0; slept < a->interval && !g_top_stop; slept += 0.05)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (g_top_stop) return;
    }
  });
}

}  // namespace bitbyte::cli
