#pragma once
// What the training graph needs from a model track, and nothing else: take a step, copy the
// weights out, evaluate a copy. The graph (train/train_graph.h) and its tests know no LibTorch;
// TorchBackend (train/train_job.cc) is the LibTorch implementation every track uses.
#include <cstdint>
#include <memory>
#include <string>

#include "base/error.h"
#include "train/batches.h"
#include "train/checkpoint.h"
#include "train/telemetry.h"

namespace bitbyte::train {

struct StepStats {
  int64_t step = 0;  // 0-based index of the step just taken
  double loss = 0;   // mean over the step's predicted bytes, nats
  double lr = 0;
  double grad_norm = 0;  // before clipping
  double seconds = 0;
};

// Thrown (by the train graph) when telemetry falls outside its configured bounds: exit 1.
class TelemetryGateError : public Error {
 public:
  using Error::Error;
};

// Thrown when the loss stops being finite; nothing of that step is applied. The message counts
// steps from 1, like metrics.jsonl and checkpoint names ("at step 25": the 25th step).
class NonFiniteLoss : public Error {  // exit 1, like any run that could not go on
 public:
  using Error::Error;
};

struct EvalResult {
  double bpb = 0;
  double nats = 0;     // total NLL
  uint64_t bytes = 0;  // predicted bytes
  double seconds = 0;
  bool bound = false;  // bpb is an upper bound (a diffusion model's ELBO), not the exact code length
};

// The train graph calls Step and TakeSnapshot from one thread (its train thread), Evaluate from
// another (its eval thread) while steps go on: Evaluate must touch only the snapshot it is given
// and state of its own.
class TrainBackend {
 public:
  virtual ~TrainBackend() = default;
  virtual int64_t steps_done() const = 0;
  // Takes optimizer step batch.step (== steps_done()); NonFiniteLoss leaves the state as it was.
  virtual StepStats Step(const Batch& batch) = 0;
  // A copy of the weights (with_optimizer: and all else a checkpoint needs); the caller may go on
  // stepping as soon as it returns.
  virtual std::shared_ptr<const Snapshot> TakeSnapshot(bool with_optimizer) = 0;
  // Validation bits per byte of the weights in `weights`.
  virtual EvalResult Evaluate(const Snapshot& weights) = 0;
  // Quantized evaluation (config quant_eval), from a third thread: the weights in `weights`
  // quantized by `scheme` ("int8", "int4": calibrated on the train split) as a quantized
  // checkpoint's snapshot, and the validation bits per byte of such a snapshot.
  virtual std::shared_ptr<const Snapshot> Quantize(const Snapshot& weights, const std::string& scheme) = 0;
  virtual EvalResult EvaluateQuantized(const Snapshot& quantized) = 0;
  // K, C and S (train/telemetry.h) of the weights in `weights` on the telemetry probe, from a
  // thread of its own (like Evaluate).
  virtual Telemetry MeasureTelemetry(const Snapshot& weights) = 0;
  // Test hook (BITBYTE_TEST_NAN_AT_STEP): makes the next step's loss non-finite.
  virtual void PoisonWeights() = 0;
};

}  // namespace bitbyte::train
