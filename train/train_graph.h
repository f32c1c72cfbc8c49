#pragma once
// The training job's flow graph (docs/training.md), its node bodies and their state. Torch-free:
// the model side is a TrainBackend (train/backend.h), so tests drive the real graph with a fake
// one, also under ThreadSanitizer.
//
//   batch_source -> prefetch (limiter, data.prefetch tokens) -> prepare (parallel) -> order
//     -> train_step (serial; returns the token) -> metrics_order -> metrics (serial: metrics.jsonl,
//        TensorBoard, console) -> checkpoint (hands snapshots to the CheckpointSink)
//                                               -> eval (serial, val bpb of a snapshot) -> metrics
//                                               -> calibrate -> quant_eval (serial, with quant_eval.every:
//                                                  val bpb of the snapshot quantized) -> metrics
//                                               -> telemetry (serial, with telemetry.every: K, C, S of the
//                                                  snapshot on the probe; its gate) -> metrics
//
// Adding a node: its body as a member function of TrainGraph, one line in Wire().
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "base/file_io.h"
#include "train/backend.h"
#include "train/batches.h"
#include "train/checkpoint.h"
#include "train/pinned_thread.h"
#include "train/telemetry.h"
#include "train/train_config.pb.h"
#include "train/train_job.h"

namespace bitbyte::pipeline {
class Graph;
struct MonitorOptions;
}  // namespace bitbyte::pipeline
namespace bitbyte::runs {
class MetricsLog;
}
namespace bitbyte::tb {
class EventWriter;
}

namespace bitbyte::train {

// ---- messages between the nodes ----
// What train_step reports of one step (or of a prefetched batch it dropped: skipped).
struct StepEvent {
  size_t seq = 0;        // position in this run's batches (orders the metrics)
  bool skipped = false;  // a prefetched batch dropped after a stop (signal or non-finite loss)
  int64_t step = 0;      // steps done
  StepStats stats;
  double wait_s = 0, stall_s = 0;
  uint64_t bytes = 0;
  bool want_eval = false, want_checkpoint = false, want_quant_eval = false, want_telemetry = false;
  std::shared_ptr<const Snapshot> snapshot;  // when an evaluation or a checkpoint wants one
};
// An evaluation's result.
struct EvalEvent {
  int64_t step = 0;
  EvalResult eval;
};
// The snapshot of a step, quantized by each scheme of quant_eval (calibrate -> quant_eval).
struct QuantizedWeights {
  int64_t step = 0;
  std::vector<std::pair<std::string, std::shared_ptr<const Snapshot>>> by_scheme;
  double seconds = 0;  // calibrating and quantizing
};
// A quantized evaluation's results, by scheme.
struct QuantEvalEvent {
  int64_t step = 0;
  std::vector<std::pair<std::string, EvalResult>> by_scheme;
  double seconds = 0;  // calibrate and evaluate together
};
// K, C and S of a step's snapshot (train/telemetry.h).
struct TelemetryEvent {
  int64_t step = 0;
  Telemetry telemetry;
};
using Event = std::variant<StepEvent, EvalEvent, QuantEvalEvent, TelemetryEvent>;
using QuantizedWeightsPtr = std::shared_ptr<const QuantizedWeights>;  // null: skipped
using EventPtr = std::shared_ptr<const Event>;                        // null: an evaluation that was skipped
using BatchPtr = std::shared_ptr<const Batch>;

// Whether `step` is due for something done `every` steps (and always at the last step).
inline bool Due(int64_t step, int64_t every, int64_t last) { return step == last || (every > 0 && step % every == 0); }

class TrainGraph {
 public:
  struct Sinks {
    runs::MetricsLog& metrics;
    tb::EventWriter& events;
    CheckpointSink& checkpoints;
    io::FileSystem& fs;  // where checkpoints are listed for error messages
    std::string ckpt_dir;
    std::function<void(const std::string&)> log;  // progress lines
  };
  struct Params {
    int64_t start = 0;    // steps done before this run (backend.steps_done())
    int threads = 1;      // for the figures' table
    int64_t nan_at = -1;  // test hook: poison the weights before step nan_at (1-based)
  };
  // `stop`: set (by a signal handler) to end the run after the current step, with a checkpoint.
  TrainGraph(const pb::TrainConfig& config, Params params, TrainBackend& backend, const BatchSampler& sampler,
             Sinks sinks, const std::atomic<bool>& stop);

  // The graph's nodes and edges; `nodes` null: the same graph with bodies never called (for
  // `bitbyte graph train`, which does not run it).
  static void Wire(pipeline::Graph& g, const pb::TrainConfig& config, int64_t start, TrainGraph* nodes);

  // Runs the graph until config.steps steps are done, a stop, or an error (rethrown as a
  // pipeline::NodeError naming the node and the last good checkpoint); everything trained is
  // checkpointed before it returns or throws a non-finite loss. The graph's live figures go where
  // `figures` says (pipeline.json; an empty path: nowhere).
  TrainSummary Run(const pipeline::MonitorOptions& figures);
  // The nodes of a train graph on `config` that only wait on a thread of their own (train_step,
  // eval, calibrate and quant_eval, telemetry): the TBB slots the graph needs beyond its compute
  // threads, so that those waits never leave the other nodes (prefetch, metrics, checkpoint)
  // without a thread.
  static int WaitingNodes(const pb::TrainConfig& config);

  // ---- the node bodies (public for tests) ----
  bool NextStep(int64_t& step);                       // batch_source
  BatchPtr Prepare(int64_t step) const;               // prepare
  EventPtr TrainStep(const BatchPtr& batch);          // train_step (serial)
  EventPtr Eval(const EventPtr& in);                  // eval (serial)
  QuantizedWeightsPtr Calibrate(const EventPtr& in);  // calibrate (serial)
  EventPtr QuantEval(const QuantizedWeightsPtr& in);  // quant_eval (serial)
  EventPtr TelemetryNode(const EventPtr& in);         // telemetry (serial)
  EventPtr Metrics(const EventPtr& e);                // metrics (serial)
  void Checkpoint(const EventPtr& e);                 // checkpoint (serial)

 private:
  void RecordEval(int64_t step, const EvalResult& r);
  void RecordQuantEval(const QuantEvalEvent& e);
  void RecordTelemetry(const TelemetryEvent& e);
  void RecordGrowth(int64_t step);
  // The newest checkpoint before `step` (all of them: step -1), for error messages.
  std::string LastGood(int64_t before_step) const;
  // Whether quantized work of `step` is stale: a newer one is due (said on the log), or a stop came.
  bool QuantStale(int64_t step);
  // Whether `what`'s work of `step` is overtaken by a newer due step (`latest`); says so on the log.
  bool Overtaken(const char* what, int64_t step, const std::atomic<int64_t>& latest, const char* remedy);
  double Elapsed() const;
  std::string LastGood() const;
  // One progress line to sinks_.log, one caller at a time (metrics, and the eval, quant eval and telemetry skips).
  void Log(const std::string& line);

  using Clock = std::chrono::steady_clock;
  const pb::TrainConfig& config_;
  const Params params_;
  TrainBackend& backend_;
  const BatchSampler& sampler_;
  Sinks sinks_;
  const std::atomic<bool>& stop_;
  const int64_t total_;
  const Clock::time_point t_start_;

  std::mutex log_mu_;
  // Set by the train step, read by the source and eval nodes (other threads).
  std::atomic<int64_t> last_ckpt_step_{-1}, latest_eval_{-1}, latest_quant_eval_{-1}, latest_telemetry_{-1};
  // A non-finite loss stops the run like a signal does (the steps before it reach metrics and
  // the checkpoint sink), then Run reports it as an error.
  std::atomic<bool> failed_{false};
  // The source's (serial).
  int64_t next_step_;
  // The train step's (serial).
  std::exception_ptr step_error_;
  // The telemetry node's: the gate's verdict (a TelemetryGateError), read by Run after the graph.
  std::exception_ptr gate_error_;
  std::atomic<int64_t> gate_step_{-1};  // the step it failed, read by the checkpoint node and Run
  bool halted_ = false;
  Clock::time_point prev_end_;
  double wait_total_ = 0, busy_total_ = 0, stall_total_ = 0;
  int64_t stall_count_ = 0, steps_run_ = 0;
  uint64_t bytes_run_ = 0;
  // The metrics node's (serial), and Run's before and after the graph.
  std::optional<double> last_bpb_;
  // The train step's and the eval node's backend calls each run on one thread of their own.
  PinnedThread train_thread_{"train-step"}, eval_thread_{"eval"}, quant_thread_{"quant-eval"},
      telemetry_thread_{"telemetry"};
};

}  // namespace bitbyte::train
