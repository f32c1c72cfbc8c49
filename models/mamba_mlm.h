#pragma once
// MambaMLM: byte-level selective state-space model (Mamba, Gu & Dao 2023).
//   bytes -> emb(256, d)
//         -> n_layer x [ x += MambaBlock(RMSNorm(x)) ]
//         -> RMSNorm -> head(d, 256, no bias)
// MambaBlock, with E = expand * d inner channels, N = d_state, R = dt_rank:
//   [xi, z] = in_proj(x)                         (d -> 2E)
//   u       = SiLU(causal depthwise conv(xi))     (width d_conv, left-padded: position t sees t-d_conv+1..t)
//   [dt, B, C] = x_proj(u)                        (E -> R + 2N): the input-dependent step and projections
//   delta   = softplus(dt_proj(dt))               (R -> E, with bias)
//   y       = SelectiveScan(u, delta, A = -exp(A_log), B, C, D)   (models/selective_scan.h)
//   out     = out_proj(y * SiLU(z))               (E -> d)
// Initialisation: as the reference implementation for the SSM (A_log[e, n] = log(n + 1), S4D-real;
// D = 1; dt_proj's bias the inverse softplus of step sizes log-uniform in [dt_min, dt_max], its
// weight uniform in +-R^-0.5); GPT-2 style for the rest, as BitByteLM (embedding, in_proj, x_proj
// and the untied head ~ N(0, init_std); out_proj, which writes into the residual stream, ~
// N(0, init_std / sqrt(2 n_layer))); the convolution keeps LibTorch's default. A_log and D take
// no weight decay.
#include <torch/torch.h>

#include "models/model.h"
#include "models/model_config.pb.h"

namespace bitbyte::models {

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t d, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  double eps_;
  torch::Tensor weight_;
};
TORCH_MODULE(RMSNorm);

class MambaBlockImpl : public torch::nn::Module {
 public:
  explicit MambaBlockImpl(const pb::MambaMLMConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, d] -> [B, T, d] (the block's output, not x + it)
  // The same for one position: x [B, d]; conv_state [B, E, d_conv] holds the last d_conv inputs
  // of the convolution (oldest first), ssm_state [B, E, N] the scan's state; both updated.
  torch::Tensor Step(const torch::Tensor& x, torch::Tensor& conv_state, torch::Tensor& ssm_state);
  int64_t inner() const { return inner_; }
  int64_t state() const { return state_; }
  int64_t conv() const { return conv_; }

 private:
  int64_t inner_, state_, rank_, conv_;
  torch::nn::Linear in_proj_{nullptr}, x_proj_{nullptr}, dt_proj_{nullptr}, out_proj_{nullptr};
  torch::nn::Conv1d conv1d_{nullptr};
  torch::Tensor A_log_, D_;
};
TORCH_MODULE(MambaBlock);

class MambaMLM : public ByteModel {
 public:
  explicit MambaMLM(const pb::MambaMLMConfig& config);
  torch::Tensor forward(const torch::Tensor& bytes) override;
  int64_t context() const override { return config_.context(); }
  bool Decays(const std::string& name, const torch::Tensor& param) const override;
  std::string Describe() const override;
  std::vector<std::string> ResidualOutputs() const override { return {"out_proj."}; }
  // O(1) per byte: per layer the convolution's last d_conv inputs and the scan's state.
  std::unique_ptr<Stepper> MakeStepper(int64_t batch, int64_t window) override;

 private:
  class RecurrentStepper;
  pb::MambaMLMConfig config_;
  torch::nn::Embedding emb_{nullptr};
  torch::nn::ModuleList blocks_{nullptr}, norms_{nullptr};
  RMSNorm norm_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};

// dt_rank as configured, or ceil(d_model / 16) when 0.
int64_t MambaDtRank(const pb::MambaMLMConfig& c);

}  // namespace bitbyte::models
