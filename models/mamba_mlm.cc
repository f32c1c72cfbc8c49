#include "models/mamba_mlm.h"

#include <cmath>
#include <sstream>

#include "models/linear.h"
#include "models/precision.h"
#include "models/selective_scan.h"

namespace bitbyte::models {
namespace nn = torch::nn;

namespace {

void Normal(const torch::Tensor& w, double std) {
  torch::NoGradGuard no_grad;
  w.normal_(0.0, std);
}

}  // namespace

int64_t MambaDtRank(const pb::MambaMLMConfig& c) { return c.dt_rank() > 0 ? c.dt_rank() : (c.d_model() + 15) / 16; }

RMSNormImpl::RMSNormImpl(int64_t d, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", torch::ones({d}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_) * weight_;
}

MambaBlockImpl::MambaBlockImpl(const pb::MambaMLMConfig& c)
    : inner_(int64_t{c.expand()} * c.d_model()), state_(c.d_state()), rank_(MambaDtRank(c)), conv_(c.d_conv()) {
  const int64_t d = c.d_model();
  in_proj_ = register_module("in_proj", nn::Linear(nn::LinearOptions(d, 2 * inner_).bias(false)));
  conv1d_ =
      register_module("conv1d", nn::Conv1d(nn::Conv1dOptions(inner_, inner_, conv_).groups(inner_).padding(conv_ - 1)));
  x_proj_ = register_module("x_proj", nn::Linear(nn::LinearOptions(inner_, rank_ + 2 * state_).bias(false)));
  dt_proj_ = register_module("dt_proj", nn::Linear(nn::LinearOptions(rank_, inner_).bias(true)));
  out_proj_ = register_module("out_proj", nn::Linear(nn::LinearOptions(inner_, d).bias(false)));
  A_log_ = register_parameter(
      "A_log", torch::log(torch::arange(1, state_ + 1, torch::kFloat)).unsqueeze(0).repeat({inner_, 1}).contiguous());
  D_ = register_parameter("D", torch::ones({inner_}));
  torch::NoGradGuard no_grad;
  Normal(in_proj_->weight, c.init_std());
  Normal(x_proj_->weight, c.init_std());
  Normal(out_proj_->weight, c.init_std() / std::sqrt(2.0 * c.n_layer()));
  const double bound = 1.0 / std::sqrt(static_cast<double>(rank_));
  dt_proj_->weight.uniform_(-bound, bound);
  // Step sizes log-uniform in [dt_min, dt_max]; the bias is their inverse softplus, so that
  // softplus(bias) is that step at initialisation.
  const torch::Tensor dt =
      torch::exp(torch::rand({inner_}) * (std::log(c.dt_max()) - std::log(c.dt_min())) + std::log(c.dt_min()))
          .clamp_min(1e-4);
  dt_proj_->bias.copy_(dt + torch::log(-torch::expm1(-dt)));
}

torch::Tensor MambaBlockImpl::forward(const torch::Tensor& x) {
  const int64_t t = x.size(1);
  const std::vector<torch::Tensor> xz = Linear(in_proj_, x).chunk(2, -1);  // [B, T, E] each
  // Causal depthwise convolution: padded on both sides by d_conv - 1, keep the first T outputs.
  const torch::Tensor u = torch::silu(conv1d_(xz[0].transpose(1, 2)).narrow(2, 0, t)).contiguous();  // [B, E, T]
  const torch::Tensor x_dbl = Linear(x_proj_, u.transpose(1, 2));                                    // [B, T, R + 2N]
  const std::vector<torch::Tensor> parts = x_dbl.split_with_sizes({rank_, state_, state_}, -1);
  // The scan and its step sizes run in float32 even when bf16 autocast ran the projections
  // (models/precision.h); FullPrecision is a no-op in float32 training.
  const torch::Tensor delta =
      torch::softplus(FullPrecision(Linear(dt_proj_, parts[0]))).transpose(1, 2).contiguous();  // [B, E, T]
  const torch::Tensor Bm = FullPrecision(parts[1]).transpose(1, 2).contiguous(),
                      C = FullPrecision(parts[2]).transpose(1, 2).contiguous();                    // [B, N, T]
  const torch::Tensor y = SelectiveScan(FullPrecision(u), delta, -torch::exp(A_log_), Bm, C, D_);  // [B, E, T]
  return Linear(out_proj_, y.transpose(1, 2) * torch::silu(xz[1]));
}

torch::Tensor MambaBlockImpl::Step(const torch::Tensor& x, torch::Tensor& conv_state, torch::Tensor& ssm_state) {
  const std::vector<torch::Tensor> xz = Linear(in_proj_, x).chunk(2, -1);  // [B, E] each
  // Shift the window left by one and append this input; the convolution's output at this
  // position is the window weighted by the kernel (oldest input against the first tap).
  conv_state.copy_(torch::cat({conv_state.narrow(2, 1, conv_ - 1), xz[0].unsqueeze(2)}, 2));
  torch::Tensor c = (conv_state * conv1d_->weight.squeeze(1)).sum(-1);
  if (conv1d_->bias.defined()) c = c + conv1d_->bias;
  const torch::Tensor u = torch::silu(c);  // [B, E]
  const std::vector<torch::Tensor> parts = Linear(x_proj_, u).split_with_sizes({rank_, state_, state_}, -1);
  const torch::Tensor delta = torch::softplus(Linear(dt_proj_, parts[0]));  // [B, E]
  const torch::Tensor y = SelectiveScanStep(ssm_state, u, delta, -torch::exp(A_log_), parts[1], parts[2], D_);
  return Linear(out_proj_, y * torch::silu(xz[1]));
}

class MambaMLM::RecurrentStepper : public ByteModel::Stepper {
 public:
  RecurrentStepper(MambaMLM& m, int64_t batch) : m_(m) {
    const torch::TensorOptions opt = m.head_->weight.options();
    for (const auto& b : *m.blocks_) {
      const auto& block = b->as<MambaBlock>();
      conv_.push_back(torch::zeros({batch, block->inner(), block->conv()}, opt));
      ssm_.push_back(torch::zeros({batch, block->inner(), block->state()}, opt));
    }
  }
  torch::Tensor Step(const torch::Tensor& bytes) override {
    torch::NoGradGuard no_grad;
    torch::Tensor x = m_.emb_(bytes);  // [B, d]
    for (int64_t i = 0; i < m_.ActiveBlocks(static_cast<int64_t>(m_.blocks_->size())); ++i)
      x = x + m_.blocks_[i]->as<MambaBlock>()->Step(m_.norms_[i]->as<RMSNorm>()->forward(x), conv_[i], ssm_[i]);
    return Linear(m_.head_, m_.norm_f_(x));
  }

 private:
  MambaMLM& m_;
  std::vector<torch::Tensor> conv_, ssm_;
};

std::unique_ptr<ByteModel::Stepper> MambaMLM::MakeStepper(int64_t batch, int64_t /*window: no positions, no limit*/) {
  return std::make_unique<RecurrentStepper>(*this, batch);
}

MambaMLM::MambaMLM(const pb::MambaMLMConfig& config) : config_(config) {
  const int64_t d = config.d_model();
  emb_ = register_module("emb", nn::Embedding(256, d));
  blocks_ = register_module("blocks", nn::ModuleList());
  norms_ = register_module("norms", nn::ModuleList());
  for (int i = 0; i < config.n_layer(); ++i) {
    norms_->push_back(RMSNorm(d));
    blocks_->push_back(MambaBlock(config));
  }
  norm_f_ = register_module("norm_f", RMSNorm(d));
  head_ = register_module("head", nn::Linear(nn::LinearOptions(d, 256).bias(false)));
  Normal(emb_->weight, config.init_std());
  Normal(head_->weight, config.init_std());
}

torch::Tensor MambaMLM::forward(const torch::Tensor& bytes) {
  TORCH_CHECK(bytes.dim() == 2, "MambaMLM expects [batch, time] bytes, got ", bytes.sizes());
  torch::Tensor x = emb_(bytes);
  for (int64_t i = 0; i < ActiveBlocks(static_cast<int64_t>(blocks_->size())); ++i)
    x = x + blocks_[i]->as<MambaBlock>()->forward(norms_[i]->as<RMSNorm>()->forward(x));
  return Linear(head_, norm_f_(x));
}

bool MambaMLM::Decays(const std::string& name, const torch::Tensor& param) const {
  const bool skip = name.size() >= 2 && name.compare(name.size() - 2, 2, ".D") == 0;
  if (name.find("A_log") != std::string::npos || skip) return false;
  return ByteModel::Decays(name, param);
}

std::string MambaMLM::Describe() const {
  std::ostringstream os;
  os << "mamba_mlm: d_model " << config_.d_model() << ", " << config_.n_layer() << " layers, d_state "
     << config_.d_state() << ", d_conv " << config_.d_conv() << ", expand " << config_.expand() << ", dt_rank "
     << MambaDtRank(config_) << "; " << ParameterCount() << " parameters";
  return os.str();
}

}  // namespace bitbyte::models
