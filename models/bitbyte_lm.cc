#include "models/bitbyte_lm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "models/attention.h"
#include "models/fused_attention.h"
#include "models/gelu.h"
#include "models/precision.h"

namespace bitbyte::models {
namespace nn = torch::nn;

namespace {

int64_t FeedForwardWidth(const pb::BitByteLMConfig& c) { return c.d_ff() > 0 ? c.d_ff() : 4 * int64_t{c.d_model()}; }

// at::linear fuses the bias into the matmul (addmm) for contiguous 3-D input; the C++
// frontend's nn::Linear::forward in LibTorch 1.13 does matmul, then a separate bias add.
torch::Tensor Apply(const nn::Linear& l, const torch::Tensor& x) { return torch::linear(x, l->weight, l->bias); }

void InitLinear(nn::Linear& l, double std) {
  torch::NoGradGuard no_grad;
  l->weight.normal_(0.0, std);
  if (l->bias.defined()) l->bias.zero_();
}

// Which attention a block runs: on the CPU the fused kernel, except for bf16 (autocast) windows of
// up to 256 bytes, where the composed ops' bf16 batched products (oneDNN) were measured faster
// (docs/benchmarks.md: 14.5 against 17.2 ms forward + backward at T 256; the fused kernel wins from
// T 512 on, 6.7x there). BITBYTE_ATTENTION=fused|composed forces one (to measure them end to end).
bool UseFusedAttention(const torch::Tensor& qkv) {
  static const std::string forced = [] {
    const char* v = std::getenv("BITBYTE_ATTENTION");
    return std::string(v != nullptr ? v : "");
  }();
  if (forced == "fused" || forced == "composed") return forced == "fused";
  return !(IsReduced(qkv) && qkv.size(1) <= 256);
}

}  // namespace

TransformerBlockImpl::TransformerBlockImpl(const pb::BitByteLMConfig& c) : n_head_(c.n_head()), dropout_(c.dropout()) {
  const int64_t d = c.d_model();
  ln1_ = register_module("ln1", nn::LayerNorm(nn::LayerNormOptions({d})));
  qkv_ = register_module("qkv", nn::Linear(d, 3 * d));
  proj_ = register_module("proj", nn::Linear(d, d));
  ln2_ = register_module("ln2", nn::LayerNorm(nn::LayerNormOptions({d})));
  fc1_ = register_module("fc1", nn::Linear(d, FeedForwardWidth(c)));
  fc2_ = register_module("fc2", nn::Linear(FeedForwardWidth(c), d));
  const double residual_std = c.init_std() / std::sqrt(2.0 * c.n_layer());
  InitLinear(qkv_, c.init_std());
  InitLinear(proj_, residual_std);
  InitLinear(fc1_, c.init_std());
  InitLinear(fc2_, residual_std);
}

torch::Tensor TransformerBlockImpl::Dropout(const torch::Tensor& x) {
  return dropout_ > 0 && is_training() ? torch::dropout(x, dropout_, true) : x;
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x) {
  const torch::Tensor qkv = Apply(qkv_, ln1_(x));  // [B, T, 3 d]
  const torch::Tensor y = x.device().is_cpu() && UseFusedAttention(qkv) ? FusedCausalAttention(qkv, n_head_)
                                                                        : ComposedAttention(qkv, n_head_);
  torch::Tensor out = x + Dropout(Apply(proj_, y));
  return out + Dropout(Apply(fc2_, Gelu(Apply(fc1_, ln2_(out)))));
}

torch::Tensor TransformerBlockImpl::Step(const torch::Tensor& x, torch::Tensor& k_cache, torch::Tensor& v_cache,
                                         int64_t pos) {
  const int64_t b = x.size(0), d = x.size(2), dh = d / n_head_;
  const std::vector<torch::Tensor> qkv = Apply(qkv_, ln1_(x)).view({b, 1, 3, n_head_, dh}).unbind(2);
  k_cache.narrow(2, pos, 1).copy_(qkv[1].transpose(1, 2));
  v_cache.narrow(2, pos, 1).copy_(qkv[2].transpose(1, 2));
  const torch::Tensor keys = k_cache.narrow(2, 0, pos + 1), values = v_cache.narrow(2, 0, pos + 1);
  // [B, H, 1, dh] x [B, H, dh, pos + 1]: the new position attends to every earlier one.
  const torch::Tensor scores = torch::matmul(qkv[0].transpose(1, 2), keys.transpose(2, 3)) / std::sqrt(double(dh));
  const torch::Tensor y = torch::matmul(torch::softmax(scores, -1), values).transpose(1, 2).reshape({b, 1, d});
  torch::Tensor out = x + Apply(proj_, y);
  return out + Apply(fc2_, Gelu(Apply(fc1_, ln2_(out))));
}

class BitByteLM::KvStepper : public ByteModel::Stepper {
 public:
  KvStepper(BitByteLM& model, int64_t batch, int64_t window)
      : model_(model), batch_(batch), window_(std::max<int64_t>(2, std::min<int64_t>(window, model.context()))) {}

  torch::Tensor Step(const torch::Tensor& bytes) override {
    torch::NoGradGuard no_grad;
    if (pos_ == window_) Restart();
    history_.push_back(bytes.reshape({batch_, 1}));
    return Advance(history_.back());
  }

 private:
  // Runs one byte through every block at position pos_, caching its keys and values.
  torch::Tensor Advance(const torch::Tensor& byte) {
    if (caches_.empty()) Allocate();
    const torch::Tensor pos = torch::full({1}, pos_, byte.options().dtype(torch::kLong));
    torch::Tensor x = model_.tok_emb_(byte) + model_.pos_emb_(pos);
    size_t i = 0;
    for (const auto& block : *model_.blocks_) {
      x = block->as<TransformerBlock>()->Step(x, caches_[i].first, caches_[i].second, pos_);
      ++i;
    }
    ++pos_;
    return Apply(model_.head_, model_.ln_f_(x)).squeeze(1);
  }
  void Allocate() {
    const auto& p = model_.tok_emb_->weight;
    const int64_t h = model_.config_.n_head(), dh = model_.config_.d_model() / h;
    for (int64_t i = 0; i < model_.config_.n_layer(); ++i)
      caches_.emplace_back(torch::empty({batch_, h, window_, dh}, p.options()),
                           torch::empty({batch_, h, window_, dh}, p.options()));
  }
  // The window is full: start again at position 0 from its last half (positions are absolute,
  // so the cache cannot slide).
  void Restart() {
    std::vector<torch::Tensor> keep(history_.end() - window_ / 2, history_.end());
    history_ = keep;
    pos_ = 0;
    for (const torch::Tensor& b : keep) Advance(b);
  }

  BitByteLM& model_;
  const int64_t batch_, window_;
  int64_t pos_ = 0;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> caches_;  // per block: keys, values
  std::vector<torch::Tensor> history_;                           // the bytes at positions 0..pos_-1
};

std::unique_ptr<ByteModel::Stepper> BitByteLM::MakeStepper(int64_t batch, int64_t window) {
  return std::make_unique<KvStepper>(*this, batch, window);
}

BitByteLM::BitByteLM(const pb::BitByteLMConfig& config) : config_(config) {
  const int64_t d = config.d_model();
  tok_emb_ = register_module("tok_emb", nn::Embedding(256, d));
  pos_emb_ = register_module("pos_emb", nn::Embedding(config.context(), d));
  blocks_ = register_module("blocks", nn::ModuleList());
  for (int i = 0; i < config.n_layer(); ++i) blocks_->push_back(TransformerBlock(config));
  ln_f_ = register_module("ln_f", nn::LayerNorm(nn::LayerNormOptions({d})));
  head_ = register_module("head", nn::Linear(nn::LinearOptions(d, 256).bias(false)));
  torch::NoGradGuard no_grad;
  tok_emb_->weight.normal_(0.0, config.init_std());
  pos_emb_->weight.normal_(0.0, config.init_std());
  head_->weight.normal_(0.0, config.init_std());
}

torch::Tensor BitByteLM::forward(const torch::Tensor& bytes) {
  TORCH_CHECK(bytes.dim() == 2, "BitByteLM expects [batch, time] bytes, got ", bytes.sizes());
  const int64_t t = bytes.size(1);
  TORCH_CHECK(t <= config_.context(), "window of ", t, " bytes exceeds the model context ", config_.context());
  const torch::Tensor pos = torch::arange(t, bytes.options().dtype(torch::kLong));
  torch::Tensor x = tok_emb_(bytes) + pos_emb_(pos);
  if (config_.dropout() > 0 && is_training()) x = torch::dropout(x, config_.dropout(), true);
  for (const auto& block : *blocks_) x = block->as<TransformerBlock>()->forward(x);
  return Apply(head_, ln_f_(x));
}

std::string BitByteLM::Describe() const {
  std::ostringstream os;
  os << "bitbyte_lm: d_model " << config_.d_model() << ", " << config_.n_layer() << " layers, " << config_.n_head()
     << " heads, d_ff " << FeedForwardWidth(config_) << ", context " << config_.context() << "; " << ParameterCount()
     << " parameters";
  return os.str();
}

}  // namespace bitbyte::models
