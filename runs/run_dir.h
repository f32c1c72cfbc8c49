#pragma once
// Reading a run directory for people and tools (`bitbyte report`, `bitbyte top`): whatever is
// there, however damaged. Torch-free and JSON-library-free. Nothing in a run directory's
// contents makes ReadRunDir fail: a missing file is listed in `missing`, a damaged one in
// `problems`, and a metrics line that is torn (a kill mid-append) or invalid is skipped and
// counted. Only a path that is not a run directory at all is an error.
//
// The files (docs/training.md, "Run directory"):
//   run.json        environment of the run (threads, device, libtorch, blas_core, data, ...)
//   config.txtpb    effective config (protobuf text)
//   metrics.jsonl   one JSON object per line: a step record ("loss"), an evaluation ("val_bpb")
//                   or a quantized evaluation ("val_bpb_int8", "val_bpb_int4")
//   pipeline.json   figures of the job's flow graph(s), rewritten every few seconds by the job
//   checkpoints/    step-NNNNNNNNN/{tensors.bin, meta.pb, COMMIT}, latest, best
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bitbyte::runs {

// One step record of metrics.jsonl. A field absent from the record (or not a finite number)
// is NaN; `loss` and `step` are always present in a kept record.
struct StepRecord {
  int64_t step = 0;
  double loss = 0, lr = 0, grad_norm = 0, bytes_per_s = 0, data_wait_frac = 0, step_s = 0, step_wall_s = 0,
         elapsed_s = 0;
  std::optional<double> ckpt_stall_s;  // only at steps that took a checkpoint snapshot
  // elapsed_s restarts at 0 on each `train --resume`; wall_s adds the elapsed time of the
  // earlier invocations, so it never goes back (NaN when elapsed_s is).
  double wall_s = 0;
  size_t line = 0;  // 1-based line of metrics.jsonl
};

// One evaluation record of metrics.jsonl (`val_bpb` always present in a kept record).
struct EvalRecord {
  int64_t step = 0;
  double val_bpb = 0, val_bytes = 0, eval_s = 0, elapsed_s = 0, wall_s = 0;
  size_t line = 0;
};

// One quantized-evaluation record of metrics.jsonl (train config quant_eval): val_bpb_<scheme>
// for each scheme it holds (at least one).
struct QuantEvalRecord {
  int64_t step = 0;
  std::vector<std::pair<std::string, double>> val_bpb;  // by scheme ("int8", "int4"), in file order
  double quant_eval_s = 0, elapsed_s = 0, wall_s = 0;
  size_t line = 0;
};

// A telemetry record of metrics.jsonl (train/telemetry.h: K, C, S of a snapshot on the probe).
struct TelemetryRecord {
  int64_t step = 0;
  double k = 0, c = 0, s = 0;
  double elapsed_s = 0, wall_s = 0;
  size_t line = 0;
};

// A growth stage that started (growth.depth, growth.seq_len): at `step` steps done, `what`.
struct GrowthRecord {
  int64_t step = 0;
  std::string what;  // "4 layers, 128-byte windows"
  size_t line = 0;
};

// Figures of one node over an interval (pipeline.json's "window" or "total"). A figure that
// does not apply (limiter, sequencer: they do no work) is NaN.
struct NodeFigures {
  double seconds = 0, busy_pct = 0, idle_pct = 0, blocked_pct = 0, items_per_s = 0, bytes_per_s = 0;
};

struct PipelineNode {
  std::string name, kind;              // kind: source, function, limiter, sequencer
  int64_t concurrency = 0;             // 0: unlimited
  std::optional<int64_t> queue_bound;  // absent: unbounded
  bool has_counts = false;             // false when the graph was described but not run
  int64_t in = 0, out = 0, queue = 0, in_flight = 0, bytes = 0;
  double busy_s = 0, blocked_s = 0;  // NaN when not applicable
  std::optional<NodeFigures> window, total;
};

struct PipelineEdge {
  std::string from, to, label, kind;  // kind: "data" or "token" (a token returned: a back edge)
};

struct PipelineGraph {
  std::string name, state;
  double elapsed_s = 0;
  std::optional<std::string> bottleneck;
  std::vector<PipelineNode> nodes;
  std::vector<PipelineEdge> edges;
};

// pipeline.json, when it is present and a JSON object.
struct PipelineInfo {
  std::string format, job, state;  // state: running | finished | interrupted | failed ("" if absent)
  std::optional<int64_t> pid;
  std::string host;
  std::optional<double> started_unix, updated_unix, interval_s;
  std::optional<int64_t> threads;
  std::vector<PipelineGraph> graphs;
  std::string json;  // the whole document, re-serialised (valid JSON; embedded by the report)
};

struct CheckpointEntry {
  std::string name;        // directory name under checkpoints/, e.g. "step-000000020"
  int64_t step = -1;       // from the name; -1 when it does not parse
  bool committed = false;  // has a COMMIT file (an uncommitted one is never loaded)
};

struct RunDirContents {
  std::string dir;
  double read_unix = 0;  // when it was read (wall clock, seconds since the epoch)
  // Newest modification time of the files above (0 when none): how fresh the figures are.
  double last_modified_unix = 0;

  bool has_run_json = false, has_config = false, has_metrics = false, has_pipeline = false, has_checkpoints = false;

  // run.json, in file order: each value as text (strings as they are, anything else as JSON).
  std::vector<std::pair<std::string, std::string>> run_info;

  std::string config_text;             // config.txtpb as read (may be damaged)
  std::optional<int64_t> steps_total;  // `steps` of the config, defaults filled in, when it parses

  std::vector<StepRecord> steps;             // in file order
  std::vector<EvalRecord> evals;             // in file order
  std::vector<QuantEvalRecord> quant_evals;  // in file order
  std::vector<TelemetryRecord> telemetry;    // in file order
  std::vector<GrowthRecord> growth;          // in file order
  size_t metrics_lines = 0;                  // lines in metrics.jsonl, kept or not
  size_t skipped_lines = 0;                  // torn or invalid lines, skipped
  std::vector<size_t> skipped_line_numbers;  // the first few (1-based)
  bool torn_last_line = false;               // the last line has no newline and did not parse

  std::optional<PipelineInfo> pipeline;  // absent when missing or damaged

  std::vector<CheckpointEntry> checkpoints;  // step-* and damaged-step-* directories, sorted by name
  std::string latest, best;                  // the pointer files' contents, trimmed ("" if absent)

  // Human-readable, one finding per string: files missing ("run.json is missing: ..."), and
  // everything damaged or odd (skipped lines, unparsable files, leftovers).
  std::vector<std::string> missing, problems;

  // Whether a job is still writing the directory: its io::DirLock is held (or, where locks
  // cannot be inspected, pipeline.json says "running" with a live pid on this host).
  bool writing = false;
  std::string writing_detail;  // how it was told, e.g. "pid 123 holds the run directory's lock"

  // running | finished | interrupted | failed | unknown
  std::string state = "unknown";

  // The largest step in the step records (0 when none).
  int64_t LastStep() const;
  const StepRecord* LatestStep() const;            // newest step record by step, or nullptr
  const EvalRecord* LatestEval() const;            // newest evaluation by step, or nullptr
  const TelemetryRecord* LatestTelemetry() const;  // newest telemetry by step, or nullptr
  const EvalRecord* BestEval() const;              // lowest val_bpb, or nullptr
  // The training time of all invocations: the largest wall_s of the step and evaluation records
  // (0 when none). An invocation counts to its last record, so work redone after a resume is
  // counted once.
  double WallSeconds() const;
};

// What ReadRunDir needs from the job that wrote the directory (runs/ knows no job): the total
// step count a config.txtpb asks for, defaults filled in (throws std::exception when the text
// does not parse). Without it steps_total stays empty. train::ConfigTotalSteps is the train job's.
struct RunDirOptions {
  std::function<int64_t(const std::string& config_text)> total_steps;
};

// Reads RUN_DIR. Throws UsageError when `dir` does not exist, is not a directory,
// or holds none of run.json, config.txtpb, metrics.jsonl and pipeline.json. Never throws
// because of what the files contain.
RunDirContents ReadRunDir(const std::string& dir, const RunDirOptions& options = {});

// Parses metrics.jsonl text into `c` (steps, evals, metrics_lines, skipped_*), as ReadRunDir
// does. Exposed for tests and for readers that follow a growing file.
void ParseMetrics(const std::string& text, RunDirContents& c);

// Parses pipeline.json text; std::nullopt with `error` set when it is not a usable document.
std::optional<PipelineInfo> ParsePipeline(const std::string& text, std::string* error);

// Whether some process holds an flock on directory `dir` (as io::DirLock does). Looks in
// /proc/locks, which changes nothing and names the holder (*holder_pid); when it is not found
// there, tries a shared non-blocking flock and releases it at once. std::nullopt when it cannot
// tell (the directory cannot be opened).
std::optional<bool> DirLockHeld(const std::string& dir, int64_t* holder_pid = nullptr);

}  // namespace bitbyte::runs
