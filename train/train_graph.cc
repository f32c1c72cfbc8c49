#include "train/train_graph.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "base/error.h"
#include "base/thread_cpu.h"
#include "pipeline/graph.h"
#include "pipeline/monitor.h"
#include "pipeline/progress.h"
#include "runs/metrics_log.h"
#include "runs/tensorboard.h"
#include "train/config.h"

namespace bitbyte::train {
namespace {

// The CPU time each thread spent since `before` (threads that started since count from 0),
// grouped by thread name, as a --stats section.
std::string ThreadCpuSection(const std::vector<ThreadCpu>& before, double wall_s) {
  std::vector<ThreadCpu> now = ThreadCpuTimes();
  if (now.empty()) return "";
  for (ThreadCpu& t : now)
    for (const ThreadCpu& b : before)
      if (b.tid == t.tid) t.cpu_s -= b.cpu_s;
  char head[160];
  std::snprintf(head, sizeof head,
                "CPU time by thread while the graph ran (%.1f s; main waits for the graph, train-step and eval "
                "run the model, omp-* are their OpenMP teams):\n",
                wall_s);
  return head + ThreadCpuTable(now, wall_s);
}

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string FormatLr(double lr) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", lr);
  return buf;
}

// `cause` with another message and the same kind (what decides the exit code), so whoever
// reports the cause rather than the NodeError says it all.
std::exception_ptr WithMessage(const std::exception_ptr& cause, const std::string& message) {
  return cause ? std::make_exception_ptr(Error(message, CodeOf(cause))) : cause;
}

const StepEvent& Step(const EventPtr& e) { return std::get<StepEvent>(*e); }

}  // namespace

TrainGraph::TrainGraph(const pb::TrainConfig& config, Params params, TrainBackend& backend, const BatchSampler& sampler,
                       Sinks sinks, const std::atomic<bool>& stop)
    : config_(config),
      params_(params),
      backend_(backend),
      sampler_(sampler),
      sinks_(std::move(sinks)),
      stop_(stop),
      total_(config.steps()),
      t_start_(Clock::now()),
      next_step_(params.start),
      prev_end_(Clock::now()) {}

void TrainGraph::Wire(pipeline::Graph& g, const pb::TrainConfig& config, int64_t start, TrainGraph* n) {
  auto& source = g.Source<int64_t>("batch_source", [n](int64_t& step) { return n->NextStep(step); });
  auto& prefetch = g.Limiter<int64_t>("prefetch", static_cast<size_t>(config.data().prefetch()));
  auto& prepare = g.Function<int64_t, BatchPtr>(
      "prepare", 0, [n](int64_t step) { return n->Prepare(step); }, [](const BatchPtr& x) { return x->bytes.size(); });
  auto& order = g.Add<tbb::flow::sequencer_node<BatchPtr>>(
      "order", "sequencer", 1, [start](const BatchPtr& x) { return static_cast<size_t>(x->step - start); });
  auto& train_step = g.Function<BatchPtr, EventPtr>(
      "train_step", 1, [n](const BatchPtr& batch) { return n->TrainStep(batch); },
      [](const EventPtr& e) { return Step(e).skipped ? 0 : Step(e).bytes; });
  // Serial outputs can overtake one another on their way out of a tbb::flow node: restore the
  // step order before metrics, so records are in order and every step before a checkpoint has
  // its record before the checkpoint is submitted.
  auto& metrics_order = g.Add<tbb::flow::sequencer_node<EventPtr>>("metrics_order", "sequencer", 1,
                                                                   [](const EventPtr& e) { return Step(e).seq; });
  auto& eval = g.Function<EventPtr, EventPtr>(
      "eval", 1, [n](const EventPtr& in) { return n->Eval(in); },
      [](const EventPtr& e) { return e ? std::get<EvalEvent>(*e).eval.bytes : 0; });
  auto& metrics = g.Function<EventPtr, EventPtr>(
      "metrics", 1, [n](const EventPtr& e) { return n->Metrics(e); }, [](const EventPtr&) { return 0; },
      tbb::flow::node_priority_t(1));
  // After metrics: a checkpoint is committed only once its step's figures are in metrics.jsonl,
  // so a resumed run never leaves a hole in the metrics.
  auto& checkpoint = g.Function<EventPtr, tbb::flow::continue_msg>(
      "checkpoint", 1,
      [n](const EventPtr& e) {
        n->Checkpoint(e);
        return tbb::flow::continue_msg();
      },
      [](const tbb::flow::continue_msg&) { return 0; }, tbb::flow::node_priority_t(1));
  g.Connect(source, prefetch, "step");
  g.Connect(prefetch, prepare, "step");
  g.Connect(prepare, order, "batch");
  g.Connect(order, train_step, "batch, in step order");
  g.ReturnTokens(train_step, prefetch);
  g.Connect(train_step, metrics_order, "step figures, snapshot");
  g.Connect(metrics_order, metrics, "in step order");
  g.Connect(train_step, eval, "weights snapshot");
  g.Connect(eval, metrics, "val bpb");
  if (config.quant_eval().every() > 0) {
    auto& calibrate = g.Function<EventPtr, QuantizedWeightsPtr>(
        "calibrate", 1, [n](const EventPtr& in) { return n->Calibrate(in); },
        [](const QuantizedWeightsPtr& q) { return q ? q->by_scheme.size() : 0; });
    auto& quant_eval = g.Function<QuantizedWeightsPtr, EventPtr>(
        "quant_eval", 1, [n](const QuantizedWeightsPtr& in) { return n->QuantEval(in); },
        [](const EventPtr& e) {
          uint64_t bytes = 0;
          if (e)
            for (const auto& [scheme, r] : std::get<QuantEvalEvent>(*e).by_scheme) bytes += r.bytes;
          return bytes;
        });
    g.Connect(train_step, calibrate, "weights snapshot");
    g.Connect(calibrate, quant_eval, "quantized weights");
    g.Connect(quant_eval, metrics, "val bpb quantized");
  }
  if (config.telemetry().every() > 0) {
    auto& telemetry = g.Function<EventPtr, EventPtr>(
        "telemetry", 1, [n](const EventPtr& in) { return n->TelemetryNode(in); },
        [](const EventPtr& e) { return e ? std::get<TelemetryEvent>(*e).telemetry.bits / 8 : 0; });
    g.Connect(train_step, telemetry, "weights snapshot");
    g.Connect(telemetry, metrics, "K, C, S");
  }
  g.Connect(metrics, checkpoint, "snapshot, val bpb");
}

bool TrainGraph::NextStep(int64_t& step) {
  if (next_step_ >= total_ || stop_.load() || failed_.load()) return false;
  step = next_step_++;
  return true;
}

BatchPtr TrainGraph::Prepare(int64_t step) const {
  auto b = std::make_shared<Batch>();
  sampler_.Fill(step, *b);
  return b;
}

EventPtr TrainGraph::TrainStep(const BatchPtr& batch) {
  const auto t_in = Clock::now();
  StepEvent ev;
  ev.seq = static_cast<size_t>(batch->step - params_.start);
  if (failed_.load()) halted_ = true;  // the telemetry gate stopped the run
  if (halted_) {                       // stopping: batches already prefetched are dropped
    ev.skipped = true;
    return std::make_shared<const Event>(std::move(ev));
  }
  ev.wait_s = steps_run_ == 0 ? 0.0 : std::chrono::duration<double>(t_in - prev_end_).count();
  if (batch->step + 1 == params_.nan_at) {
    train_thread_.Run([&] {
      backend_.PoisonWeights();
      return true;  // Run wants a value
    });
  }
  try {
    ev.stats = train_thread_.Run([&] { return backend_.Step(*batch); });
  } catch (const NonFiniteLoss&) {
    step_error_ = std::current_exception();
    failed_ = true;
    halted_ = true;
    ev.skipped = true;
    return std::make_shared<const Event>(std::move(ev));
  }
  ev.step = backend_.steps_done();
  ev.bytes = static_cast<uint64_t>(batch->rows) * static_cast<uint64_t>(batch->cols - 1);  // the curriculum's
  if (stop_.load()) halted_ = true;
  ev.want_checkpoint = halted_ || Due(ev.step, config_.checkpoint().every(), total_);
  ev.want_eval = !halted_ && Due(ev.step, config_.eval().every(), total_);
  if (ev.want_eval) latest_eval_ = ev.step;
  ev.want_quant_eval =
      !halted_ && config_.quant_eval().every() > 0 && Due(ev.step, config_.quant_eval().every(), total_);
  if (ev.want_quant_eval) latest_quant_eval_ = ev.step;
  ev.want_telemetry = !halted_ && config_.telemetry().every() > 0 && Due(ev.step, config_.telemetry().every(), total_);
  if (ev.want_telemetry) latest_telemetry_ = ev.step;
  if (ev.want_checkpoint || ev.want_eval || ev.want_quant_eval || ev.want_telemetry) {
    const auto t0 = Clock::now();
    const bool with_optimizer = ev.want_checkpoint;
    ev.snapshot = train_thread_.Run([&] { return backend_.TakeSnapshot(with_optimizer); });
    if (ev.want_checkpoint) last_ckpt_step_ = ev.step;
    ev.stall_s = Since(t0);
    if (ev.want_checkpoint) {
      stall_total_ += ev.stall_s;
      ++stall_count_;
    }
  }
  prev_end_ = Clock::now();
  wait_total_ += ev.wait_s;
  busy_total_ += std::chrono::duration<double>(prev_end_ - t_in).count();
  ++steps_run_;
  bytes_run_ += ev.bytes;
  return std::make_shared<const Event>(std::move(ev));
}

// An evaluation still queued when a newer one is due, or after a stop signal, is skipped: a slow
// evaluation never piles up snapshots, and a stop is not held up by old evaluations. A skip for a
// newer one is said on the log, so a missing record is never a silent one.
EventPtr TrainGraph::Eval(const EventPtr& in) {
  const StepEvent& s = Step(in);
  if (s.skipped || !s.want_eval || stop_.load() ||
      Overtaken("eval", s.step, latest_eval_, "a larger eval.every or a smaller eval.max_bytes"))
    return nullptr;
  EvalEvent ev;
  ev.step = s.step;
  ev.eval = eval_thread_.Run([&] { return backend_.Evaluate(*s.snapshot); });
  return std::make_shared<const Event>(std::move(ev));
}

// Whether the work of `what` for `step` is overtaken: a newer step's is due. Said on the log,
// with `remedy` (the settings under which it keeps up), so a missing record is never silent.
bool TrainGraph::Overtaken(const char* what, int64_t step, const std::atomic<int64_t>& latest, const char* remedy) {
  const int64_t newer = latest.load();
  if (step >= newer) return false;
  Log(std::string(what) + "  step " + std::to_string(step) + "  skipped: step " + std::to_string(newer) +
      " was due before it ended (" + remedy + " keeps up with every one)");
  return true;
}

// Quantized evaluation, like eval: work of a step older than the newest due, or after a stop,
// is skipped, also between its schemes (it then says so once: each caller returns at once).
bool TrainGraph::QuantStale(int64_t step) {
  return stop_.load() ||
         Overtaken("quant eval", step, latest_quant_eval_, "a larger quant_eval.every or fewer quant_eval.schemes");
}

QuantizedWeightsPtr TrainGraph::Calibrate(const EventPtr& in) {
  const StepEvent& s = Step(in);
  if (s.skipped || !s.want_quant_eval || QuantStale(s.step)) return nullptr;
  const auto t0 = Clock::now();
  auto out = std::make_shared<QuantizedWeights>();
  out->step = s.step;
  for (const std::string& scheme : QuantEvalSchemes(config_)) {
    if (QuantStale(s.step)) return nullptr;
    out->by_scheme.emplace_back(scheme, quant_thread_.Run([&] { return backend_.Quantize(*s.snapshot, scheme); }));
  }
  out->seconds = Since(t0);
  return out;
}

EventPtr TrainGraph::QuantEval(const QuantizedWeightsPtr& in) {
  if (!in || QuantStale(in->step)) return nullptr;
  const auto t0 = Clock::now();
  QuantEvalEvent ev;
  ev.step = in->step;
  for (const auto& [scheme, snap] : in->by_scheme) {
    if (QuantStale(in->step)) return nullptr;
    ev.by_scheme.emplace_back(scheme,
                              quant_thread_.Run([&, &snap = snap] { return backend_.EvaluateQuantized(*snap); }));
  }
  ev.seconds = in->seconds + Since(t0);
  return std::make_shared<const Event>(std::move(ev));
}

// Telemetry, like eval: a snapshot older than the newest due, or after a stop, is skipped. Values
// outside the configured bounds stop the run (the gate): the train step halts, and Run reports it;
// values inside vouch for the step, so the checkpoint sink may prune what came before it.
EventPtr TrainGraph::TelemetryNode(const EventPtr& in) {
  const StepEvent& s = Step(in);
  if (s.skipped || !s.want_telemetry || stop_.load() || failed_.load() ||
      Overtaken("telemetry", s.step, latest_telemetry_, "a larger telemetry.every"))
    return nullptr;
  TelemetryEvent ev;
  ev.step = s.step;
  ev.telemetry = telemetry_thread_.Run([&] { return backend_.MeasureTelemetry(*s.snapshot); });
  const std::string violation = GateViolation(config_.telemetry(), ev.telemetry);
  if (!violation.empty()) {
    gate_error_ = std::make_exception_ptr(
        TelemetryGateError("telemetry gate: " + violation + " at step " + std::to_string(s.step)));
    gate_step_ = s.step;
    failed_ = true;
  } else {
    sinks_.checkpoints.Vouch(s.step);
  }
  return std::make_shared<const Event>(std::move(ev));
}

void TrainGraph::RecordTelemetry(const TelemetryEvent& e) {
  const Telemetry& t = e.telemetry;
  sinks_.metrics.Write({{"step", e.step},
                        {"telemetry_k", t.k},
                        {"telemetry_c", t.c},
                        {"telemetry_s", t.s},
                        {"telemetry_bits", t.bits},
                        {"telemetry_time_s", t.seconds},
                        {"elapsed_s", Elapsed()}});
  sinks_.events.AddScalars(e.step, pipeline::UnixSeconds(),
                           {{"telemetry/K", t.k}, {"telemetry/C", t.c}, {"telemetry/S", t.s}});
  sinks_.events.Flush();
  char line[160];
  std::snprintf(line, sizeof line, "telemetry  step %lld  K %.4f  C %.4f  S %.4f  (%lld bits, %.1f s)",
                (long long)e.step, t.k, t.c, t.s, (long long)t.bits, t.seconds);
  Log(line);
}

// A growth stage (growth.depth, growth.seq_len) that starts at `step` (steps done before it):
// a record in metrics.jsonl, which the report marks, and a line.
void TrainGraph::RecordGrowth(int64_t step) {
  if (step == 0) return;  // the starting shape is no growth
  std::string what;
  for (const auto& [field, text, unit] : {std::tuple{"depth", config_.growth().depth(), " layers"},
                                          std::tuple{"seq_len", config_.growth().seq_len(), "-byte windows"}})
    for (const auto& [from, value] : ParseStages(text, std::string("growth.") + field, 0, INT64_MAX, false))
      if (from == step) what += (what.empty() ? "" : ", ") + std::to_string(value) + unit;
  if (what.empty()) return;
  sinks_.metrics.Write({{"step", step}, {"growth", what}, {"elapsed_s", Elapsed()}});
  Log("growth  step " + std::to_string(step) + "  " + what);
}

void TrainGraph::RecordQuantEval(const QuantEvalEvent& e) {
  json rec = {{"step", e.step}, {"quant_eval_s", e.seconds}, {"elapsed_s", Elapsed()}};
  std::vector<std::pair<std::string, double>> scalars;
  std::string line = "quant eval  step " + std::to_string(e.step);
  for (const auto& [scheme, r] : e.by_scheme) {
    rec["val_bpb_" + scheme] = r.bpb;
    scalars.emplace_back("val/bpb_" + scheme, r.bpb);
    char buf[64];
    std::snprintf(buf, sizeof buf, "  val_bpb_%s %.4f", scheme.c_str(), r.bpb);
    line += buf;
  }
  sinks_.metrics.Write(rec);
  sinks_.events.AddScalars(e.step, pipeline::UnixSeconds(), scalars);
  sinks_.events.Flush();
  char tail[48];
  std::snprintf(tail, sizeof tail, "  (%.1f s)", e.seconds);
  Log(line + tail);
}

EventPtr TrainGraph::Metrics(const EventPtr& e) {
  if (!e) return e;
  if (const auto* ev = std::get_if<EvalEvent>(e.get())) {
    RecordEval(ev->step, ev->eval);
    return e;
  }
  if (const auto* ev = std::get_if<QuantEvalEvent>(e.get())) {
    RecordQuantEval(*ev);
    return e;
  }
  if (const auto* ev = std::get_if<TelemetryEvent>(e.get())) {
    RecordTelemetry(*ev);
    return e;
  }
  const StepEvent& s = Step(e);
  if (s.skipped) return e;
  RecordGrowth(s.stats.step);
  const double elapsed = Elapsed();
  const double step_wall = s.stats.seconds + s.stall_s + s.wait_s;
  json rec = {{"step", s.step},
              {"loss", s.stats.loss},
              {"lr", s.stats.lr},
              {"grad_norm", s.stats.grad_norm},
              {"bytes_per_s", step_wall > 0 ? s.bytes / step_wall : 0.0},
              {"data_wait_frac", step_wall > 0 ? s.wait_s / step_wall : 0.0},
              {"step_s", s.stats.seconds},
              {"step_wall_s", step_wall},
              {"elapsed_s", elapsed}};
  if (s.want_checkpoint) rec["ckpt_stall_s"] = s.stall_s;
  sinks_.metrics.Write(rec);
  std::vector<std::pair<std::string, double>> scalars = {{"train/loss", s.stats.loss},
                                                         {"train/lr", s.stats.lr},
                                                         {"train/grad_norm", s.stats.grad_norm},
                                                         {"train/bytes_per_s", rec["bytes_per_s"].get<double>()},
                                                         {"train/data_wait_frac", rec["data_wait_frac"].get<double>()}};
  if (s.want_checkpoint) scalars.emplace_back("train/ckpt_stall_s", s.stall_s);
  sinks_.events.AddScalars(s.step, pipeline::UnixSeconds(), scalars);
  sinks_.events.Flush();
  if (config_.log_every() > 0 && (s.step % config_.log_every() == 0 || s.step == total_ || s.want_checkpoint)) {
    const double done = static_cast<double>(s.step - params_.start);
    const double eta = done > 0 ? elapsed / done * static_cast<double>(total_ - s.step) : 0;
    char line[200];
    std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f  lr %s  %s/s  wait %.1f%%  eta %s", (long long)s.step,
                  (long long)total_, s.stats.loss, FormatLr(s.stats.lr).c_str(),
                  pipeline::Progress::FormatBytes(step_wall > 0 ? s.bytes / step_wall : 0).c_str(),
                  step_wall > 0 ? 100.0 * s.wait_s / step_wall : 0.0, pipeline::Progress::FormatDuration(eta).c_str());
    Log(line);
  }
  return e;
}

void TrainGraph::Checkpoint(const EventPtr& e) {
  if (!e) return;
  if (const auto* ev = std::get_if<EvalEvent>(e.get())) {
    sinks_.checkpoints.RecordEval(ev->step, ev->eval.bpb);
    return;
  }
  // `best` goes by the float32 val bpb.
  if (std::holds_alternative<QuantEvalEvent>(*e) || std::holds_alternative<TelemetryEvent>(*e)) return;
  const StepEvent& s = Step(e);
  const int64_t gate = gate_step_.load();  // weights the gate failed are not checkpointed
  if (!s.skipped && s.want_checkpoint && (gate < 0 || s.step < gate)) sinks_.checkpoints.Submit(s.snapshot);
}

void TrainGraph::RecordEval(int64_t step, const EvalResult& r) {
  last_bpb_ = r.bpb;
  sinks_.events.AddScalars(step, pipeline::UnixSeconds(), {{"val/bpb", r.bpb}});
  sinks_.events.Flush();
  json rec = {
      {"step", step}, {"val_bpb", r.bpb}, {"val_bytes", r.bytes}, {"eval_s", r.seconds}, {"elapsed_s", Elapsed()}};
  if (r.bound) rec["val_bpb_is_bound"] = true;
  sinks_.metrics.Write(rec);
  char line[200];
  std::snprintf(line, sizeof line, "eval  step %lld  val_bpb %s%.4f  (%llu bytes, %.1f s%s)", (long long)step,
                r.bound ? "<= " : "", r.bpb, (unsigned long long)r.bytes, r.seconds,
                r.bound ? "; an upper bound: the diffusion ELBO" : "");
  Log(line);
}

double TrainGraph::Elapsed() const { return Since(t_start_); }

void TrainGraph::Log(const std::string& line) {
  if (!sinks_.log) return;
  std::lock_guard<std::mutex> lock(log_mu_);
  sinks_.log(line);
}

std::string TrainGraph::LastGood() const { return LastGood(-1); }

std::string TrainGraph::LastGood(int64_t before_step) const {
  std::vector<std::string> good = ListCheckpoints(sinks_.fs, sinks_.ckpt_dir);
  if (before_step >= 0) {  // names sort by step
    const std::string bound = CheckpointName(before_step);
    good.erase(std::lower_bound(good.begin(), good.end(), bound), good.end());
  }
  return "; last good checkpoint: " + (good.empty() ? std::string("none") : io::JoinPath(sinks_.ckpt_dir, good.back()));
}

int TrainGraph::WaitingNodes(const pb::TrainConfig& config) {
  return 2 + (config.quant_eval().every() > 0 ? 2 : 0) + (config.telemetry().every() > 0 ? 1 : 0);
}

TrainSummary TrainGraph::Run(const pipeline::MonitorOptions& figures) {
  const int64_t start = params_.start;
  CheckpointSink& sink = sinks_.checkpoints;
  for (const auto& [step, bpb] : sinks_.metrics.evals()) sink.RecordEval(step, bpb);  // `best` sees them all
  // Checkpoints written while the telemetry gate measures are kept until it passes them.
  if (config_.telemetry().every() > 0) sink.HoldUnvouched();
  // A kill between a checkpoint and its step's evaluation loses that evaluation: redo it.
  if (start > 0 && Due(start, config_.eval().every(), total_) && !sinks_.metrics.HasEval(start)) {
    const EvalResult r = backend_.Evaluate(*backend_.TakeSnapshot(false));
    RecordEval(start, r);
    sink.RecordEval(start, r.bpb);
  }

  pipeline::Monitor monitor(figures);
  pipeline::Graph g("train", params_.threads + WaitingNodes(config_));
  Wire(g, config_, start, this);
  // CPU time of every thread while the graph runs (--stats): what each node's thread, the OpenMP
  // teams, the TBB workers and the waiting main thread cost.
  const std::vector<ThreadCpu> cpu_before = ThreadCpuTimes();
  try {
    pipeline::Monitor::Watch watch(monitor, g);  // the graph's figures, while it runs
    g.Run();
  } catch (const pipeline::NodeError& e) {
    try {
      sink.Flush();
    } catch (...) {
    }
    const std::string what = e.what();
    const std::string message = what.substr(what.find(": ") + 2) + LastGood();
    throw pipeline::NodeError(e.node(), message, WithMessage(e.cause(), message));
  }
  if (gate_error_) {  // no checkpoint of the weights past the gate
    sink.Flush();
    try {
      std::rethrow_exception(gate_error_);
    } catch (const std::exception& e) {
      const std::string message =
          e.what() + LastGood(gate_step_.load()) + " (telemetry.* bounds may change on --resume)";
      throw pipeline::NodeError("telemetry", message, WithMessage(gate_error_, message));
    }
  }
  if (step_error_) {
    sink.Flush();
    try {
      std::rethrow_exception(step_error_);
    } catch (const std::exception& e) {
      const std::string message = e.what() + LastGood();
      throw pipeline::NodeError("train_step", message, WithMessage(step_error_, message));
    }
  }
  // Whatever the graph did not checkpoint (a stop seen only by the source) is saved now.
  if (backend_.steps_done() > start && last_ckpt_step_.load() != backend_.steps_done()) {
    const auto t0 = Clock::now();
    sink.Submit(backend_.TakeSnapshot(true));
    stall_total_ += Since(t0);
    ++stall_count_;
  }
  sink.Flush();

  TrainSummary summary;
  summary.start_step = start;
  summary.end_step = backend_.steps_done();
  summary.interrupted = stop_.load() && summary.end_step < total_;
  summary.seconds = Elapsed();
  const double loop_wall = wait_total_ + busy_total_;
  summary.bytes_per_s = loop_wall > 0 ? static_cast<double>(bytes_run_) / loop_wall : 0;
  summary.mean_step_s = steps_run_ > 0 ? busy_total_ / steps_run_ : 0;
  summary.data_wait_frac = loop_wall > 0 ? wait_total_ / loop_wall : 0;
  summary.ckpt_stall_s = stall_count_ > 0 ? stall_total_ / stall_count_ : 0;
  const CheckpointSink::Stats cs = sink.stats();
  summary.checkpoints_written = cs.written;
  summary.checkpoints_replaced = cs.replaced;
  summary.final_val_bpb = last_bpb_;
  summary.stats_table = g.StatsTable(summary.seconds, params_.threads) + ThreadCpuSection(cpu_before, summary.seconds);
  monitor.Finish(summary.interrupted ? "interrupted" : "finished");
  return summary;
}

}  // namespace bitbyte::train
