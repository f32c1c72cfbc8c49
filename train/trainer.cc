#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "models/adamw.h"
#include "models/precision.h"
#include "models/qat.h"
#include "models/registry.h"
#include "train/config.h"
#include "train/quantized_checkpoint.h"

namespace bitbyte::train {
namespace {

constexpr char kModelPrefix[] = "model/";
constexpr char kExpAvgPrefix[] = "optim/exp_avg/";
constexpr char kExpAvgSqPrefix[] = "optim/exp_avg_sq/";
// optim.state_bits 8: each moment as codes (uint8 [numel]) and block maxima (float32 [blocks]).
constexpr char kExpAvg8Prefix[] = "optim/exp_avg8/";
constexpr char kExpAvg8MaxPrefix[] = "optim/exp_avg8_max/";
constexpr char kExpAvgSq8Prefix[] = "optim/exp_avg_sq8/";
constexpr char kExpAvgSq8MaxPrefix[] = "optim/exp_avg_sq8_max/";
// Tensors smaller than this keep float32 moments under state_bits 8 (their states cost little).
constexpr int64_t kMinState8Elements = 4096;
constexpr char kRngBlob[] = "rng/cpu";

void FromBlob(const TensorBlob* b, const std::string& name, torch::Tensor& dst) {
  if (b == nullptr) throw DataError("checkpoint has no tensor '" + name + "' (another architecture?)");
  if (b->dtype != c10::toString(dst.scalar_type()) || b->shape != dst.sizes().vec())
    throw DataError("checkpoint tensor '" + name + "' is " + b->dtype + " " + c10::str(c10::IntArrayRef(b->shape)) +
                    ", the model has " + c10::toString(dst.scalar_type()) + " " + c10::str(dst.sizes()));
  torch::Tensor src = torch::empty(dst.sizes(), dst.options().device(torch::kCPU));
  if (static_cast<size_t>(src.nbytes()) != b->data.size())
    throw DataError("checkpoint tensor '" + name + "' has the wrong size");
  std::memcpy(src.data_ptr(), b->data.data(), b->data.size());
  torch::NoGradGuard no_grad;
  dst.copy_(src);
}

}  // namespace

TensorBlob ToBlob(const std::string& name, const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
  TensorBlob b;
  b.name = name;
  b.dtype = c10::toString(c.scalar_type());
  b.shape = c.sizes().vec();
  b.data.assign(static_cast<const char*>(c.data_ptr()), c.nbytes());
  return b;
}

torch::Tensor ForwardLoss(models::ByteModel& model, const torch::Tensor& x, const torch::Tensor& y,
                          torch::Device device, bool bf16) {
  models::Bf16Scope scope(device, bf16);
  return model.Loss(x, y);  // float32, nats per byte (models/model.h)
}

void UseDepthAt(models::ByteModel& model, const pb::TrainConfig& config, int64_t step) {
  if (!config.growth().depth().empty()) model.SetActiveDepth(DepthAt(config, step));
}

void UseTorchThreads(int threads) {
  if (threads > 0 && at::get_num_threads() != threads) at::set_num_threads(threads);
}

torch::Device ParseDevice(const std::string& name) {
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(name);
  } catch (const c10::Error&) {
    throw UsageError("--device: '" + name + "' is not a device (cpu, cuda, cuda:N)");
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    throw UsageError("--device " + name + ": this LibTorch build or machine has no CUDA device");
  return device;
}

void SaveModule(const torch::nn::Module& module, const std::string& prefix, Snapshot& snap) {
  for (const auto& p : module.named_parameters()) snap.tensors.push_back(ToBlob(prefix + p.key(), p.value()));
  for (const auto& b : module.named_buffers()) snap.tensors.push_back(ToBlob(prefix + b.key(), b.value()));
}

void LoadModule(torch::nn::Module& module, const std::string& prefix, const Snapshot& snap) {
  for (auto& p : module.named_parameters()) FromBlob(snap.Find(prefix + p.key()), prefix + p.key(), p.value());
  for (auto& b : module.named_buffers()) FromBlob(snap.Find(prefix + b.key()), prefix + b.key(), b.value());
}

std::shared_ptr<models::ByteModel> ModelFromSnapshot(const Snapshot& snap, const models::pb::ModelConfig& config,
                                                     torch::Device device) {
  std::shared_ptr<models::ByteModel> model = models::CreateModel(config);
  LoadModule(*model, kModelPrefix, snap);
  model->to(device);
  model->eval();
  return model;
}

Trainer::Trainer(const pb::TrainConfig& config, torch::Device device) : config_(config), device_(device) {
  FillDefaults(config_);
  if (config_.precision() != "fp32" && config_.precision() != "bf16")
    throw InternalError("Trainer: precision '" + config_.precision() + "' is not resolved (train/precision.h)");
  bf16_ = config_.precision() == "bf16";
  // The quantization-aware steps' own precision (train/precision.h); without QAT it is unused.
  if (config_.model().qat().scheme() != "none" && config_.qat_precision() != "fp32" &&
      config_.qat_precision() != "bf16")
    throw InternalError("Trainer: qat_precision '" + config_.qat_precision() + "' is not resolved (train/precision.h)");
  qat_bf16_ = config_.qat_precision() == "bf16";
  torch::manual_seed(config_.seed());
  model_ = models::CreateModel(config_.model());
  // Progressive depth: the blocks above the starting depth begin as the identity.
  if (!config_.growth().depth().empty()) model_->IdentityBlocksFrom(DepthAt(config_, 0));
  model_->to(device_);
  model_->train();
  const bool state8 = config_.optim().state_bits() == 8;
  if (state8 && !device_.is_cpu())
    throw UsageError("optim.state_bits 8 runs on the CPU only; use 32 on " + device_.str());
  for (const auto& p : model_->named_parameters()) {
    Param q{p.key(), p.value(), torch::Tensor(), torch::Tensor(), model_->Decays(p.key(), p.value()), nullptr};
    if (state8 && q.decay && p.value().numel() >= kMinState8Elements) {
      q.state8 = std::make_shared<models::Moments8>(models::ZeroMoments8(p.value().numel()));
    } else {
      q.exp_avg = torch::zeros_like(p.value());
      q.exp_avg_sq = torch::zeros_like(p.value());
    }
    params_.push_back(std::move(q));
  }
}

double Trainer::LearningRate(int64_t step) const {
  const auto& o = config_.optim();
  const int64_t warmup = o.warmup_steps();
  if (step < warmup) return o.lr() * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int64_t decay_steps = std::max<int64_t>(1, config_.steps() - warmup - 1);
  const double r = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(decay_steps));
  return o.min_lr() + 0.5 * (1.0 + std::cos(M_PI * r)) * (o.lr() - o.min_lr());
}

StepStats Trainer::Step(const Batch& batch) {
  TORCH_CHECK(batch.step == steps_done_, "batch for step ", batch.step, " given at step ", steps_done_);
  const auto t0 = std::chrono::steady_clock::now();
  const int accum = config_.data().grad_accum();
  const int micro_rows = batch.rows / accum;
  // One uint8 -> int64 conversion for the whole step; pinned + non-blocking when on CUDA.
  torch::Tensor all =
      torch::from_blob(const_cast<uint8_t*>(batch.bytes.data()), {batch.rows, batch.cols}, torch::kUInt8);
  if (device_.is_cuda()) all = all.pin_memory().to(device_, /*non_blocking=*/true);
  all = all.to(torch::kLong);

  bool bf16 = bf16_;
  if (models::qat::QatModel* qat = model_->qat()) {
    qat->set_active(batch.step >= config_.model().qat().start_step());
    if (qat->active()) bf16 = qat_bf16_;
  }
  UseDepthAt(*model_, config_, batch.step);
  for (Param& q : params_) q.p.mutable_grad() = torch::Tensor();
  double loss_sum = 0;
  for (int m = 0; m < accum; ++m) {
    const torch::Tensor rows = all.narrow(0, int64_t{m} * micro_rows, micro_rows);
    const torch::Tensor x = rows.narrow(1, 0, batch.cols - 1);
    const torch::Tensor y = rows.narrow(1, 1, batch.cols - 1);
    torch::Tensor loss = ForwardLoss(*model_, x, y, device_, bf16);
    const double value = loss.item<double>();
    if (!std::isfinite(value))
      throw NonFiniteLoss("loss is " + std::string(std::isnan(value) ? "nan" : "inf") + " at step " +
                          std::to_string(batch.step + 1) + "; the step was not applied");
    loss_sum += value;
    if (accum > 1) loss = loss / accum;
    loss.backward();
  }
  std::vector<torch::Tensor> grads_of;
  grads_of.reserve(params_.size());
  for (const Param& q : params_) grads_of.push_back(q.p);
  const double clip = config_.optim().grad_clip();
  const double norm = torch::nn::utils::clip_grad_norm_(grads_of, clip > 0 ? clip : INFINITY);
  if (!std::isfinite(norm))
    throw NonFiniteLoss("gradient norm is not finite at step " + std::to_string(batch.step + 1) +
                        "; the step was not applied");
  const double lr = LearningRate(batch.step);
  AdamW(lr);
  ++steps_done_;
  StepStats s;
  s.step = batch.step;
  s.loss = loss_sum / accum;
  s.lr = lr;
  s.grad_norm = norm;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

// Decoupled weight decay Adam (Loshchilov & Hutter), the same arithmetic as torch.optim.AdamW.
void Trainer::AdamW(double lr) {
  torch::NoGradGuard no_grad;
  const auto& o = config_.optim();
  const double t = static_cast<double>(steps_done_ + 1);
  const double bc1 = 1.0 - std::pow(o.beta1(), t);
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(o.beta2(), t));
  for (Param& q : params_) {
    const torch::Tensor& g = q.p.grad();
    if (!g.defined()) continue;
    const models::AdamWHyper h{lr, o.beta1(), o.beta2(), o.eps(), q.decay ? o.weight_decay() : 0.0, bc1, bc2_sqrt};
    if (q.state8 != nullptr) {
      models::AdamW8Update(q.p, g, *q.state8, h);
    } else {
      models::AdamWUpdate(q.p, g, q.exp_avg, q.exp_avg_sq, h);  // one pass per parameter (models/adamw.h)
    }
  }
}

std::shared_ptr<Snapshot> Trainer::TakeSnapshot(bool with_optimizer) const {
  auto snap = std::make_shared<Snapshot>();
  snap->step = steps_done_;
  snap->config_text = ConfigToText(config_);
  snap->dataset_id = dataset_id_;
  SaveModule(*model_, kModelPrefix, *snap);
  if (with_optimizer) {
    for (const Param& q : params_) {
      if (q.state8 != nullptr) {
        snap->tensors.push_back(ToBlob(kExpAvg8Prefix + q.name, q.state8->m));
        snap->tensors.push_back(ToBlob(kExpAvg8MaxPrefix + q.name, q.state8->m_max));
        snap->tensors.push_back(ToBlob(kExpAvgSq8Prefix + q.name, q.state8->v));
        snap->tensors.push_back(ToBlob(kExpAvgSq8MaxPrefix + q.name, q.state8->v_max));
        continue;
      }
      snap->tensors.push_back(ToBlob(kExpAvgPrefix + q.name, q.exp_avg));
      snap->tensors.push_back(ToBlob(kExpAvgSqPrefix + q.name, q.exp_avg_sq));
    }
    const torch::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
    snap->blobs.emplace_back(kRngBlob, std::string(static_cast<const char*>(rng.data_ptr()), rng.nbytes()));
  }
  return snap;
}

void Trainer::Restore(const Snapshot& snap) {
  if (const std::string* scheme = snap.FindBlob(kQuantSchemeBlob))
    throw UsageError("the checkpoint is quantized (" + *scheme +
                     "): it can be evaluated and generated from, not trained; resume from the run's own checkpoints");
  LoadModule(*model_, kModelPrefix, snap);
  for (Param& q : params_) {
    if (q.state8 != nullptr) {
      FromBlob(snap.Find(kExpAvg8Prefix + q.name), kExpAvg8Prefix + q.name, q.state8->m);
      FromBlob(snap.Find(kExpAvg8MaxPrefix + q.name), kExpAvg8MaxPrefix + q.name, q.state8->m_max);
      FromBlob(snap.Find(kExpAvgSq8Prefix + q.name), kExpAvgSq8Prefix + q.name, q.state8->v);
      FromBlob(snap.Find(kExpAvgSq8MaxPrefix + q.name), kExpAvgSq8MaxPrefix + q.name, q.state8->v_max);
      continue;
    }
    FromBlob(snap.Find(kExpAvgPrefix + q.name), kExpAvgPrefix + q.name, q.exp_avg);
    FromBlob(snap.Find(kExpAvgSqPrefix + q.name), kExpAvgSqPrefix + q.name, q.exp_avg_sq);
  }
  if (const std::string* rng = snap.FindBlob(kRngBlob)) {
    torch::Tensor state = torch::empty({static_cast<int64_t>(rng->size())}, torch::kUInt8);
    std::memcpy(state.data_ptr(), rng->data(), rng->size());
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(state);
  } else {
    throw DataError("checkpoint has no RNG state; it cannot be resumed (weights only?)");
  }
  steps_done_ = snap.step;
}

}  // namespace bitbyte::train
