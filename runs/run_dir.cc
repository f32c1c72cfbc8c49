#include "runs/run_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "base/error.h"
#include "base/file_io.h"
#include "pipeline/monitor.h"
#include "runs/layout.h"
#include "runs/run_json.h"

namespace bitbyte::runs {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kSkippedLinesKept = 10;
using pipeline::kFiguresFile;

enum class Kind { kNone, kFile, kDir, kOther };

Kind PathKind(const std::string& path, double* mtime = nullptr) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Kind::kNone;
  if (mtime) *mtime = static_cast<double>(st.st_mtim.tv_sec) + 1e-9 * static_cast<double>(st.st_mtim.tv_nsec);
  if (S_ISREG(st.st_mode)) return Kind::kFile;
  if (S_ISDIR(st.st_mode)) return Kind::kDir;
  return Kind::kOther;
}

// A finite number, or NaN (absent, null, a string, ...).
double Num(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return kNaN;
  const double v = it->get<double>();
  return std::isfinite(v) ? v : kNaN;
}

std::optional<double> OptNum(const json& j, const char* key) {
  const double v = Num(j, key);
  return std::isnan(v) ? std::nullopt : std::optional<double>(v);
}

std::optional<int64_t> OptInt(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {  // 3.0 written by another tool
    const double d = it->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws) == std::string::npos ? s.size() : s.find_first_not_of(ws));
  const size_t end = s.find_last_not_of(ws);
  s.erase(end == std::string::npos ? 0 : end + 1);
  return s;
}

// Reads a whole file; on failure notes a problem and returns std::nullopt.
std::optional<std::string> ReadOrNote(const std::string& path, const std::string& name, RunDirContents& c) {
  try {
    return io::ReadFile(io::Posix(), path);
  } catch (const std::exception& e) {
    c.problems.push_back(name + " cannot be read: " + e.what());
    return std::nullopt;
  }
}

std::string LineList(const std::vector<size_t>& lines, size_t total) {
  std::string s;
  for (size_t i = 0; i < lines.size(); ++i) s += (i ? ", " : "") + std::to_string(lines[i]);
  if (total > lines.size()) s += ", ...";
  return s;
}

std::optional<NodeFigures> ParseFigures(const json& node, const char* key) {
  auto it = node.find(key);
  if (it == node.end() || !it->is_object()) return std::nullopt;
  const json& f = *it;
  NodeFigures r;
  r.seconds = Num(f, "seconds");
  r.busy_pct = Num(f, "busy_pct");
  r.idle_pct = Num(f, "idle_pct");
  r.blocked_pct = Num(f, "blocked_pct");
  r.items_per_s = Num(f, "items_per_s");
  r.bytes_per_s = Num(f, "bytes_per_s");
  return r;
}

bool PidAlive(int64_t pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string Ago(double seconds) {
  char buf[64];
  if (seconds < 0) seconds = 0;
  if (seconds < 120)
    std::snprintf(buf, sizeof buf, "%.0f s ago", seconds);
  else if (seconds < 7200)
    std::snprintf(buf, sizeof buf, "%.0f min ago", seconds / 60);
  else
    std::snprintf(buf, sizeof buf, "%.1f h ago", seconds / 3600);
  return buf;
}

void ReadCheckpoints(const std::string& dir, RunDirContents& c) {
  std::vector<std::string> names;  // sorted, without . and ..
  try {
    names = io::Posix().ListDir(dir);
  } catch (const std::exception& e) {
    c.problems.push_back(std::string(kCheckpointDir) + "/ cannot be listed: " + e.what());
    return;
  }
  for (const std::string& name : names) {
    const std::string path = io::JoinPath(dir, name);
    const Kind kind = PathKind(path);
    if (name.rfind("step-", 0) == 0 || name.rfind("damaged-step-", 0) == 0) {
      if (kind != Kind::kDir) continue;
      CheckpointEntry e;
      e.name = name;
      const std::string digits = name.substr(name.find("step-") + 5, 9);
      if (digits.size() == 9 &&
          std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        e.step = std::stoll(digits);
      e.committed = PathKind(io::JoinPath(path, "COMMIT")) == Kind::kFile;
      if (name.rfind("damaged-", 0) == 0)
        c.problems.push_back("checkpoints/" + name + " failed verification and was set aside by a resume");
      else if (!e.committed)
        c.problems.push_back("checkpoints/" + name + " has no COMMIT file: it is incomplete and is never loaded");
      c.checkpoints.push_back(e);
    } else if (name == "latest" || name == "best") {
      if (kind != Kind::kFile) continue;
      std::string text;
      try {
        text = Trim(io::ReadFile(io::Posix(), path));
      } catch (const std::exception& ex) {
        c.problems.push_back("checkpoints/" + name + " cannot be read: " + ex.what());
        continue;
      }
      (name == "latest" ? c.latest : c.best) = text;
    } else if (name.rfind(".tmp-", 0) == 0 || name.rfind(".old-", 0) == 0) {
      c.problems.push_back("checkpoints/" + name + " is left over from an interrupted checkpoint write");
    }
  }
  // The pointers name checkpoints that should be there.
  for (const auto* ptr : {&c.latest, &c.best}) {
    if (ptr->empty()) continue;
    const std::string target = ptr->substr(0, ptr->find_first_of(" \t"));
    const bool found = std::any_of(c.checkpoints.begin(), c.checkpoints.end(),
                                   [&](const CheckpointEntry& e) { return e.name == target && e.committed; });
    if (!found)
      c.problems.push_back(std::string("checkpoints/") + (ptr == &c.latest ? "latest" : "best") + " names " + target +
                           ", which is not a committed checkpoint");
  }
}

}  // namespace

int64_t RunDirContents::LastStep() const {
  int64_t s = 0;
  for (const StepRecord& r : steps) s = std::max(s, r.step);
  return s;
}

const StepRecord* RunDirContents::LatestStep() const {
  const StepRecord* best_r = nullptr;
  for (const StepRecord& r : steps)
    if (!best_r || r.step >= best_r->step) best_r = &r;
  return best_r;
}

const TelemetryRecord* RunDirContents::LatestTelemetry() const {
  const TelemetryRecord* best = nullptr;
  for (const TelemetryRecord& r : telemetry)
    if (best == nullptr || r.step >= best->step) best = &r;
  return best;
}

const EvalRecord* RunDirContents::LatestEval() const {
  const EvalRecord* best_r = nullptr;
  for (const EvalRecord& r : evals)
    if (!best_r || r.step >= best_r->step) best_r = &r;
  return best_r;
}

const EvalRecord* RunDirContents::BestEval() const {
  const EvalRecord* best_r = nullptr;
  for (const EvalRecord& r : evals)
    if (!best_r || r.val_bpb < best_r->val_bpb) best_r = &r;
  return best_r;
}

double RunDirContents::WallSeconds() const {
  double w = 0;
  for (const StepRecord& r : steps)
    if (std::isfinite(r.wall_s)) w = std::max(w, r.wall_s);
  for (const EvalRecord& r : evals)
    if (std::isfinite(r.wall_s)) w = std::max(w, r.wall_s);
  return w;
}

void ParseMetrics(const std::string& text, RunDirContents& c) {
  // elapsed_s restarts on each resume: wall_s carries the earlier invocations' time. Records
  // come from more than one thread (steps, evaluations), each stamped just before it is written,
  // so one may be a moment older than the record before it: only a drop of more than
  // kRestartDrop seconds is a new invocation (one killed within its first second is missed, a
  // second lost from the sum).
  constexpr double kRestartDrop = 0.5;
  double offset = 0, prev = kNaN;
  auto wall = [&](double elapsed) {
    if (std::isnan(elapsed)) return kNaN;
    if (!std::isnan(prev) && elapsed + kRestartDrop < prev) offset += prev;
    prev = elapsed;
    return elapsed + offset;
  };
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const bool terminated = nl != std::string::npos;
    if (!terminated) nl = text.size();
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    ++c.metrics_lines;
    bool kept = false;
    const json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) {
      const std::optional<int64_t> step = OptInt(j, "step");
      if (step && *step >= 0) {
        if (j.contains("val_bpb")) {
          EvalRecord r;
          r.step = *step;
          r.val_bpb = Num(j, "val_bpb");
          r.val_bytes = Num(j, "val_bytes");
          r.eval_s = Num(j, "eval_s");
          r.elapsed_s = Num(j, "elapsed_s");
          r.line = line_no;
          if (!std::isnan(r.val_bpb)) {
            r.wall_s = wall(r.elapsed_s);
            c.evals.push_back(r);
            kept = true;
          }
        } else if (j.contains("growth") && j["growth"].is_string()) {
          c.growth.push_back({*step, j["growth"].get<std::string>(), line_no});
          kept = true;
        } else if (j.contains("telemetry_k")) {
          TelemetryRecord r;
          r.step = *step;
          r.k = Num(j, "telemetry_k");
          r.c = Num(j, "telemetry_c");
          r.s = Num(j, "telemetry_s");
          r.elapsed_s = Num(j, "elapsed_s");
          r.line = line_no;
          if (!std::isnan(r.k) && !std::isnan(r.c) && !std::isnan(r.s)) {
            r.wall_s = wall(r.elapsed_s);
            c.telemetry.push_back(r);
            kept = true;
          }
        } else if (j.contains("val_bpb_int8") || j.contains("val_bpb_int4")) {
          QuantEvalRecord r;
          r.step = *step;
          for (const char* scheme : {"int8", "int4"}) {
            const double v = Num(j, (std::string("val_bpb_") + scheme).c_str());
            if (!std::isnan(v)) r.val_bpb.emplace_back(scheme, v);
          }
          r.quant_eval_s = Num(j, "quant_eval_s");
          r.elapsed_s = Num(j, "elapsed_s");
          r.line = line_no;
          if (!r.val_bpb.empty()) {
            r.wall_s = wall(r.elapsed_s);
            c.quant_evals.push_back(r);
            kept = true;
          }
        } else if (j.contains("loss")) {
          StepRecord r;
          r.step = *step;
          r.loss = Num(j, "loss");
          r.lr = Num(j, "lr");
          r.grad_norm = Num(j, "grad_norm");
          r.bytes_per_s = Num(j, "bytes_per_s");
          r.data_wait_frac = Num(j, "data_wait_frac");
          r.step_s = Num(j, "step_s");
          r.step_wall_s = Num(j, "step_wall_s");
          r.elapsed_s = Num(j, "elapsed_s");
          r.ckpt_stall_s = OptNum(j, "ckpt_stall_s");
          r.line = line_no;
          if (!std::isnan(r.loss)) {
            r.wall_s = wall(r.elapsed_s);
            c.steps.push_back(r);
            kept = true;
          }
        }
      }
    }
    if (!kept) {
      ++c.skipped_lines;
      if (c.skipped_line_numbers.size() < kSkippedLinesKept) c.skipped_line_numbers.push_back(line_no);
      if (!terminated) c.torn_last_line = true;
    }
  }
}

std::optional<PipelineInfo> ParsePipeline(const std::string& text, std::string* error) {
  auto fail = [&](const std::string& why) {
    if (error) *error = why;
    return std::optional<PipelineInfo>();
  };
  if (JsonNestingDepth(text) > kMaxJsonDepth) return fail("it is nested too deeply to be a pipeline.json");
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail(text.empty() ? "the file is empty" : "it is not valid JSON (torn or damaged)");
  if (!j.is_object()) return fail("it is not a JSON object");
  PipelineInfo p;
  p.format = Str(j, "format");
  if (p.format.rfind("bitbyte.pipeline/", 0) != 0)
    return fail("its \"format\" is " + (p.format.empty() ? std::string("missing") : "'" + p.format + "'") +
                ", not bitbyte.pipeline/N");
  p.job = Str(j, "job");
  p.state = Str(j, "state");
  p.pid = OptInt(j, "pid");
  p.host = Str(j, "host");
  p.started_unix = OptNum(j, "started_unix");
  p.updated_unix = OptNum(j, "updated_unix");
  p.interval_s = OptNum(j, "interval_s");
  p.threads = OptInt(j, "threads");
  auto graphs = j.find("graphs");
  if (graphs != j.end() && graphs->is_array()) {
    for (const json& g : *graphs) {
      if (!g.is_object()) continue;
      PipelineGraph pg;
      pg.name = Str(g, "name");
      pg.state = Str(g, "state");
      pg.elapsed_s = Num(g, "elapsed_s");
      if (g.contains("bottleneck") && g["bottleneck"].is_string()) pg.bottleneck = g["bottleneck"].get<std::string>();
      if (g.contains("nodes") && g["nodes"].is_array()) {
        for (const json& n : g["nodes"]) {
          if (!n.is_object() || Str(n, "name").empty()) continue;
          PipelineNode pn;
          pn.name = Str(n, "name");
          pn.kind = Str(n, "kind");
          pn.concurrency = OptInt(n, "concurrency").value_or(0);
          pn.queue_bound = OptInt(n, "queue_bound");
          pn.has_counts = n.contains("in") && n["in"].is_number();
          pn.in = OptInt(n, "in").value_or(0);
          pn.out = OptInt(n, "out").value_or(0);
          pn.queue = OptInt(n, "queue").value_or(0);
          pn.in_flight = OptInt(n, "in_flight").value_or(0);
          pn.bytes = OptInt(n, "bytes").value_or(0);
          pn.busy_s = Num(n, "busy_s");
          pn.blocked_s = Num(n, "blocked_s");
          pn.window = ParseFigures(n, "window");
          pn.total = ParseFigures(n, "total");
          pg.nodes.push_back(std::move(pn));
        }
      }
      if (g.contains("edges") && g["edges"].is_array()) {
        for (const json& e : g["edges"]) {
          if (!e.is_object()) continue;
          PipelineEdge pe{Str(e, "from"), Str(e, "to"), Str(e, "label"), Str(e, "kind")};
          if (pe.from.empty() || pe.to.empty()) continue;
          if (pe.kind.empty()) pe.kind = "data";
          pg.edges.push_back(std::move(pe));
        }
      }
      p.graphs.push_back(std::move(pg));
    }
  }
  // Invalid UTF-8 in strings would make dump() throw: replace it.
  p.json = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return p;
}

std::optional<bool> DirLockHeld(const std::string& dir, int64_t* holder_pid) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  // /proc/locks names the holder: "1: FLOCK  ADVISORY  WRITE 12345 fe:00:10961865 0 EOF"
  // (device in hex). Reading it changes nothing.
  std::ifstream locks("/proc/locks");
  if (locks) {
    std::string line;
    while (std::getline(locks, line)) {
      if (line.find("->") != std::string::npos) continue;  // a waiter, not a holder
      std::istringstream in(line);
      std::string id, type, mode, access, pid, where;
      if (!(in >> id >> type >> mode >> access >> pid >> where) || type != "FLOCK") continue;
      unsigned maj = 0, min = 0;
      unsigned long long ino = 0;
      if (std::sscanf(where.c_str(), "%x:%x:%llu", &maj, &min, &ino) != 3) continue;
      if (maj == major(st.st_dev) && min == minor(st.st_dev) && ino == static_cast<unsigned long long>(st.st_ino)) {
        if (holder_pid) *holder_pid = std::atoll(pid.c_str());
        return true;
      }
    }
  }
  // Not found there (no /proc/locks, or a file system whose inode numbers it shows otherwise):
  // a shared non-blocking flock fails exactly when another process holds DirLock's exclusive
  // one. It is released at once; only a job starting in that very microsecond would be refused.
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  bool held = false;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) held = errno == EWOULDBLOCK;
  ::close(fd);  // releases the probe's lock
  return held;
}

RunDirContents ReadRunDir(const std::string& dir, const RunDirOptions& options) {
  const Kind dir_kind = PathKind(dir);
  if (dir_kind == Kind::kNone) throw UsageError("run directory '" + dir + "' does not exist");
  if (dir_kind != Kind::kDir) throw UsageError("'" + dir + "' is not a directory (give a run directory)");

  RunDirContents c;
  c.dir = dir;
  c.read_unix = pipeline::UnixSeconds();
  const auto path = [&](const char* name) { return io::JoinPath(dir, name); };
  double mtime = 0;
  std::vector<std::string> odd;
  auto present = [&](const char* name) {
    double m = 0;
    const Kind k = PathKind(path(name), &m);
    if (k == Kind::kFile) {
      mtime = std::max(mtime, m);
      return true;
    }
    if (k != Kind::kNone) {
      c.problems.push_back(std::string(name) + " is not a regular file");
      odd.emplace_back(name);
    }
    return false;
  };
  // Missing, as opposed to there but not a file (already a problem).
  auto missing = [&](const char* name) { return std::find(odd.begin(), odd.end(), name) == odd.end(); };
  c.has_run_json = present(kRunFile);
  c.has_config = present(kConfigFile);
  c.has_metrics = present(kMetricsFile);
  c.has_pipeline = present(kFiguresFile);
  c.has_checkpoints = PathKind(path(kCheckpointDir)) == Kind::kDir;
  if (!c.has_run_json && !c.has_config && !c.has_metrics && !c.has_pipeline)
    throw UsageError("'" + dir + "' is not a run directory: it holds none of run.json, config.txtpb, " +
                     "metrics.jsonl and pipeline.json");
  c.last_modified_unix = mtime;

  // ---- pipeline.json first: it says which job wrote the directory ----
  if (c.has_pipeline) {
    if (auto text = ReadOrNote(path(kFiguresFile), kFiguresFile, c)) {
      std::string why;
      c.pipeline = ParsePipeline(*text, &why);
      if (!c.pipeline) c.problems.push_back(std::string(kFiguresFile) + " is damaged: " + why + "; no graph is shown");
    }
  }
  const bool shard_job = c.pipeline && c.pipeline->job.rfind("shard", 0) == 0;

  // ---- run.json ----
  if (c.has_run_json) {
    if (auto text = ReadOrNote(path(kRunFile), kRunFile, c)) {
      std::string why;
      if (std::optional<RunJson> r = ParseRunJson(*text, &why))
        c.run_info = std::move(r->values);
      else
        c.problems.push_back(std::string(kRunFile) + " is damaged: " + why);
    }
  } else if (!shard_job && missing(kRunFile)) {
    c.missing.push_back(std::string(kRunFile) + " is missing: no environment (threads, device, LibTorch, data)");
  }

  // ---- config.txtpb ----
  if (c.has_config) {
    if (auto text = ReadOrNote(path(kConfigFile), kConfigFile, c)) {
      c.config_text = *text;
      if (options.total_steps) {
        try {
          c.steps_total = options.total_steps(c.config_text);
        } catch (const std::exception& e) {
          c.problems.push_back(std::string(kConfigFile) + " does not parse: " + e.what());
        }
      }
      if (text->empty()) c.problems.push_back(std::string(kConfigFile) + " is empty");
    }
  } else if (!shard_job && missing(kConfigFile)) {
    c.missing.push_back(std::string(kConfigFile) + " is missing: no config, and no total step count");
  }

  // ---- metrics.jsonl ----
  if (c.has_metrics) {
    if (auto text = ReadOrNote(path(kMetricsFile), kMetricsFile, c)) {
      ParseMetrics(*text, c);
      if (c.skipped_lines > 0) {
        std::string p = std::string(kMetricsFile) + ": " + std::to_string(c.skipped_lines) +
                        (c.skipped_lines == 1 ? " line" : " lines") + " skipped as torn or invalid (line" +
                        (c.skipped_lines == 1 ? " " : "s ") + LineList(c.skipped_line_numbers, c.skipped_lines) + ")";
        if (c.torn_last_line) p += "; the last line is torn (no newline)";
        c.problems.push_back(p);
      }
    }
  } else if (!shard_job && missing(kMetricsFile)) {
    c.missing.push_back(std::string(kMetricsFile) + " is missing: no step or evaluation records");
  }

  // ---- is a job still writing it? ----
  int64_t holder = 0;
  const std::optional<bool> locked = DirLockHeld(dir, &holder);
  const std::string this_host = pipeline::HostName();
  const PipelineInfo* p = c.pipeline ? &*c.pipeline : nullptr;
  const bool says_running = p && p->state == "running";
  if (locked.value_or(false)) {
    c.writing = true;
    c.writing_detail = holder > 0 ? "process " + std::to_string(holder) + " holds the run directory's lock"
                                  : "a process holds the run directory's lock";
  } else if (says_running && p->pid && (p->host.empty() || p->host == this_host)) {
    if (!locked.has_value() && PidAlive(*p->pid)) {  // locks cannot be inspected: trust the pid
      c.writing = true;
      c.writing_detail = "pipeline.json says running and process " + std::to_string(*p->pid) + " is alive";
    }
  } else if (says_running && !p->host.empty() && p->host != this_host) {
    // Another machine's job (a shared file system): judge by how fresh pipeline.json is.
    const double interval = p->interval_s.value_or(2.0);
    if (p->updated_unix && c.read_unix - *p->updated_unix < std::max(10.0, 5 * interval)) {
      c.writing = true;
      c.writing_detail = "pipeline.json was updated " + Ago(c.read_unix - *p->updated_unix) + " by host " + p->host;
    }
  }

  // ---- state ----
  if (c.writing) {
    c.state = "running";
    c.problems.push_back("the run is still being written (" + c.writing_detail + "): figures are as of " +
                         "this report, and the last metrics line may be incomplete");
  } else if (p && (p->state == "finished" || p->state == "interrupted" || p->state == "failed")) {
    c.state = p->state;
    if (p->state == "failed") c.problems.push_back("the job failed (pipeline.json state \"failed\"); see its stderr");
  } else if (says_running) {
    if (!p->host.empty() && p->host != this_host) {
      c.state = "unknown";
      c.problems.push_back("pipeline.json says running on host " + p->host + ", but it was last updated " +
                           (p->updated_unix ? Ago(c.read_unix - *p->updated_unix) : std::string("at an unknown time")) +
                           ": the job is probably dead");
    } else {
      c.state = "interrupted";
      c.problems.push_back(
          "pipeline.json says running, but no process holds the run directory: the job was killed "
          "or crashed (" +
          (p->job == "train" ? "continue it with bitbyte train --resume " + dir
                             : std::string("run the same command again to resume it")) +
          ")");
    }
  } else if (c.steps_total && !c.steps.empty() && c.LastStep() >= *c.steps_total) {
    c.state = "finished";
  } else if (!c.steps.empty()) {
    c.state = "interrupted";
  }

  // ---- checkpoints ----
  if (c.has_checkpoints) {
    ReadCheckpoints(path(kCheckpointDir), c);
  } else if (!shard_job && !c.writing && !c.steps.empty()) {
    c.missing.push_back(std::string(kCheckpointDir) + "/ is missing: the run has no checkpoint to resume from");
  }
  if (!c.has_pipeline && !shard_job && missing(kFiguresFile))
    c.missing.push_back(std::string(kFiguresFile) +
                        " is missing: no graph figures (runs before pipeline.json, or "
                        "killed before its first write)");
  return c;
}

}  // namespace bitbyte::runs
