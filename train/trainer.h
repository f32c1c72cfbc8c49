#pragma once
// The training state behind the serial train-step node: the model, AdamW with warmup and cosine
// decay, gradient accumulation and clipping; snapshots to and from checkpoints.
// Everything a step does is a function of (config, weights, optimizer state, batch), so a run
// restored from a snapshot continues bit-exactly on the same device and thread count.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/adamw.h"
#include "models/model.h"
#include "train/backend.h"
#include "train/batches.h"
#include "train/checkpoint.h"
#include "train/train_config.pb.h"

namespace bitbyte::train {

class Trainer {
 public:
  // Seeds Torch's CPU generator with config.seed, builds and initialises the model on the CPU,
  // then moves it to `device`. config.precision must be "fp32" or "bf16", and with QAT config.qat_precision
  // too (ResolvePhasePrecisions): the steps from model.qat.start_step on run in the latter.
  Trainer(const pb::TrainConfig& config, torch::Device device);

  // Takes optimizer step `batch.step`, which must equal steps_done().
  StepStats Step(const Batch& batch);

  int64_t steps_done() const { return steps_done_; }
  double LearningRate(int64_t step) const;
  models::ByteModel& model() { return *model_; }
  const pb::TrainConfig& config() const { return config_; }
  // The dataset being trained on (sharding dataset_id), recorded in every snapshot.
  void set_dataset_id(uint64_t id) { dataset_id_ = id; }

  // A CPU copy of the weights (and with_optimizer: optimizer state and RNG state), taken
  // synchronously: the caller may go on training as soon as this returns.
  std::shared_ptr<Snapshot> TakeSnapshot(bool with_optimizer) const;
  // Restores weights, optimizer state, RNG state and the step count. Throws DataError when a
  // tensor is missing or has another shape or type (a different architecture).
  void Restore(const Snapshot& snap);

 private:
  struct Param {
    std::string name;
    torch::Tensor p, exp_avg, exp_avg_sq;  // float32 moments (undefined with state8)
    bool decay;
    std::shared_ptr<models::Moments8> state8;  // optim.state_bits 8: the 8-bit moments
  };
  void AdamW(double lr);

  pb::TrainConfig config_;
  torch::Device device_;
  bool bf16_ = false;      // config.precision, which must be resolved ("fp32" or "bf16")
  bool qat_bf16_ = false;  // config.qat_precision, for the quantization-aware steps (resolved too)
  std::shared_ptr<models::ByteModel> model_;
  std::vector<Param> params_;
  int64_t steps_done_ = 0;
  uint64_t dataset_id_ = 0;
};

// The training loss of one micro-batch: the model's forward pass on x, bf16 matrix products when
// `bf16` (models/precision.h), and the mean cross-entropy against y in float32. The trainer and the
// precision probe (train/precision.h) both run this, so the probe times what a step does.
torch::Tensor ForwardLoss(models::ByteModel& model, const torch::Tensor& x, const torch::Tensor& y,
                          torch::Device device, bool bf16);

// A CPU copy of `t` as the checkpoint tensor `name`.
TensorBlob ToBlob(const std::string& name, const torch::Tensor& t);
// Appends a module's parameters and buffers to `snap` as "<prefix><name>" tensors (CPU copies).
void SaveModule(const torch::nn::Module& module, const std::string& prefix, Snapshot& snap);
// Copies "<prefix><name>" tensors of `snap` into the module. Throws DataError on a mismatch.
void LoadModule(torch::nn::Module& module, const std::string& prefix, const Snapshot& snap);

// Builds the model a checkpoint was trained with (`config`: from its config_text) and loads its
// weights, in eval mode (for eval, generate).
std::shared_ptr<models::ByteModel> ModelFromSnapshot(const Snapshot& snap, const models::pb::ModelConfig& config,
                                                     torch::Device device);

// Parses a --device value ("cpu", "cuda", "cuda:1"); an error when CUDA is asked for but absent.
torch::Device ParseDevice(const std::string& name);

// Runs fn; a LibTorch error (c10::Error, whose what() carries C++ stack frames) comes out as a
// bitbyte::Error (a run-time failure: exit 1) with its one-line message, prefixed by `what`
// ("generate: ...").
template <typename Fn>
auto WithoutTorchFrames(const std::string& what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    for (size_t nl; (nl = msg.find('\n')) != std::string::npos;) msg.replace(nl, 1, "; ");
    throw Error(what + ": " + msg);
  }
}

// Progressive depth (growth.depth): makes `model` run the blocks the schedule has at `step` (steps
// done; the weights of a snapshot taken then). Without a schedule: nothing.
void UseDepthAt(models::ByteModel& model, const pb::TrainConfig& config, int64_t step);

// Sets LibTorch's intra-op threads for the calling thread (OpenMP keeps the count per thread,
// and flow-graph nodes run on TBB worker threads).
void UseTorchThreads(int threads);

}  // namespace bitbyte::train
