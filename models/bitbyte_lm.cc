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
#include "models/decode.h"
#include "models/fused_attention.h"
#include "models/gelu.h"
#include "models/linear.h"
#include "models/precision.h"
#include "models/quant.h"

namespace bitbyte::models {
namespace nn = torch::nn;

namespace {

int64_t FeedForwardWidth(const pb::BitByteLMConfig& c) { return c.d_ff() > 0 ? c.d_ff() : 4 * int64_t{c.d_model()}; }

void InitLinear(nn::Linear& l, double std) {
  torch::NoGradGuard no_grad;
  l->weight.normal_(0.0, std);
  if (l->bias.defined()) l->bias.zero_();
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

torch::Tensor TransformerBlockImpl::Forward(const torch::Tensor& x, torch::Tensor* qkv_out) {
  const torch::Tensor qkv = Linear(qkv_, ln1_(x));  // [B, T, 3 d]
  if (qkv_out != nullptr) *qkv_out = qkv;
  const torch::Tensor y = SelfAttention(qkv, n_head_);
  torch::Tensor out = x + Dropout(Linear(proj_, y));
  return out + Dropout(Linear(fc2_, Gelu(Linear(fc1_, ln2_(out)))));
}

torch::Tensor TransformerBlockImpl::Step(const torch::Tensor& x, torch::Tensor& k_cache, torch::Tensor& v_cache,
                                         int64_t pos) {
  const int64_t b = x.size(0), d = x.size(2), dh = d / n_head_;
  const torch::Tensor qkv = Linear(qkv_, ln1_(x));  // [B, 1, 3 d]
  k_cache.narrow(1, pos, 1).copy_(qkv.narrow(2, d, d));
  v_cache.narrow(1, pos, 1).copy_(qkv.narrow(2, 2 * d, d));
  // [B, n, d] -> [B, H, n, dh]
  const auto heads = [&](const torch::Tensor& t) { return t.view({b, t.size(1), n_head_, dh}).transpose(1, 2); };
  const torch::Tensor keys = heads(k_cache.narrow(1, 0, pos + 1)), values = heads(v_cache.narrow(1, 0, pos + 1));
  // [B, H, 1, dh] x [B, H, dh, pos + 1]: the new position attends to every earlier one.
  const torch::Tensor scores = torch::matmul(heads(qkv.narrow(2, 0, d)), keys.transpose(2, 3)) / std::sqrt(double(dh));
  const torch::Tensor y = torch::matmul(torch::softmax(scores, -1), values).transpose(1, 2).reshape({b, 1, d});
  torch::Tensor out = x + Linear(proj_, y);
  return out + Linear(fc2_, Gelu(Linear(fc1_, ln2_(out))));
}

struct DecodeBuffers {
  std::vector<float> h, qkv, y, ff, scores;
};

namespace {

const float* Data(const torch::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

void Norm(const nn::LayerNorm& ln, const float* x, int64_t rows, int64_t d, float* y) {
  decode::LayerNorm(x, Data(ln->weight), Data(ln->bias), ln->options.eps(), rows, d, y);
}

void Project(const nn::Linear& l, const float* x, int64_t rows, float* y, bool accumulate) {
  if (const auto q = quant::Find(l->weight)) return quant::ApplyRows(*q, x, rows, y, accumulate);  // quant.h
  decode::Linear(Data(l->weight), Data(l->bias), l->weight.size(1), l->weight.size(0), x, rows, y, accumulate);
}

}  // namespace

void TransformerBlockImpl::StepCpu(float* x, int64_t b, float* k_cache, float* v_cache, int64_t window, int64_t pos,
                                   DecodeBuffers& s) {
  const int64_t d = qkv_->weight.size(1), dff = fc1_->weight.size(0), dh = d / n_head_;
  s.h.resize(b * d);
  s.qkv.resize(b * 3 * d);
  s.y.resize(b * d);
  s.ff.resize(b * dff);
  s.scores.resize(n_head_ * (pos + 1));
  Norm(ln1_, x, b, d, s.h.data());
  Project(qkv_, s.h.data(), b, s.qkv.data(), false);
  for (int64_t r = 0; r < b; ++r) {
    const float* qkv = s.qkv.data() + r * 3 * d;
    float* keys = k_cache + r * window * d;
    float* values = v_cache + r * window * d;
    std::copy(qkv + d, qkv + 2 * d, keys + pos * d);
    std::copy(qkv + 2 * d, qkv + 3 * d, values + pos * d);
    decode::AttendOne(qkv, keys, values, pos + 1, n_head_, dh, s.y.data() + r * d, s.scores.data());
  }
  Project(proj_, s.y.data(), b, x, true);
  Norm(ln2_, x, b, d, s.h.data());
  Project(fc1_, s.h.data(), b, s.ff.data(), false);
  decode::GeluInPlace(s.ff.data(), b * dff);
  Project(fc2_, s.ff.data(), b, x, true);
}

class BitByteLM::KvStepper : public ByteModel::Stepper {
 public:
  KvStepper(BitByteLM& model, int64_t batch, int64_t window)
      : model_(model),
        batch_(batch),
        window_(std::max<int64_t>(2, std::min<int64_t>(window, model.context()))),
        d_(model.config_.d_model()),
        on_cpu_(OnCpuInFloat(model)) {}

  torch::Tensor Step(const torch::Tensor& bytes) override {
    torch::NoGradGuard no_grad;
    if (pos_ == window_) Restart();
    history_.push_back(bytes.reshape({batch_, 1}));
    return Advance(history_.back());
  }

  // A prompt from position 0 fills the cache in one forward pass over it.
  torch::Tensor Feed(const torch::Tensor& bytes) override {
    if (pos_ != 0 || bytes.size(1) > window_) return Stepper::Feed(bytes);
    torch::NoGradGuard no_grad;
    for (int64_t t = 0; t < bytes.size(1); ++t) history_.push_back(bytes.narrow(1, t, 1).reshape({batch_, 1}));
    return Prefill();
  }

 private:
  // Whether every parameter is a float32 CPU tensor: the step then runs in the decode kernels
  // (a quantized Linear layer in its quantized kernel).
  static bool OnCpuInFloat(const BitByteLM& model) {
    for (const torch::Tensor& p : model.parameters())
      if (!p.device().is_cpu() || p.scalar_type() != torch::kFloat || !p.is_contiguous()) return false;
    return true;
  }

  int64_t Blocks() const { return model_.ActiveBlocks(static_cast<int64_t>(model_.blocks_->size())); }

  void Allocate() {
    const auto& p = model_.tok_emb_->weight;
    for (int64_t i = 0; i < Blocks(); ++i)
      caches_.emplace_back(torch::empty({batch_, window_, d_}, p.options()),
                           torch::empty({batch_, window_, d_}, p.options()));
  }

  // Runs one byte through every block at position pos_, caching its keys and values.
  torch::Tensor Advance(const torch::Tensor& byte) {
    if (caches_.empty()) Allocate();
    if (on_cpu_) return AdvanceOnCpu(byte);
    const torch::Tensor pos = torch::full({1}, pos_, byte.options().dtype(torch::kLong));
    torch::Tensor x = model_.tok_emb_(byte) + model_.pos_emb_(pos);
    for (int64_t i = 0; i < Blocks(); ++i)
      x = model_.blocks_[i]->as<TransformerBlock>()->Step(x, caches_[i].first, caches_[i].second, pos_);
    ++pos_;
    return Linear(model_.head_, model_.ln_f_(x)).squeeze(1);
  }

  torch::Tensor AdvanceOnCpu(const torch::Tensor& byte) {
    const torch::Tensor ids = byte.to(torch::kLong).contiguous();
    const int64_t* id = ids.data_ptr<int64_t>();
    const float* tok = Data(model_.tok_emb_->weight);
    const float* pos = Data(model_.pos_emb_->weight) + pos_ * d_;
    x_.resize(batch_ * d_);
    for (int64_t r = 0; r < batch_; ++r)
      for (int64_t i = 0; i < d_; ++i) x_[r * d_ + i] = tok[id[r] * d_ + i] + pos[i];
    for (int64_t i = 0; i < Blocks(); ++i)
      model_.blocks_[i]->as<TransformerBlock>()->StepCpu(x_.data(), batch_, caches_[i].first.data_ptr<float>(),
                                                         caches_[i].second.data_ptr<float>(), window_, pos_, buffers_);
    ++pos_;
    buffers_.h.resize(batch_ * d_);
    Norm(model_.ln_f_, x_.data(), batch_, d_, buffers_.h.data());
    torch::Tensor logits = torch::empty({batch_, 256}, torch::kFloat);
    Project(model_.head_, buffers_.h.data(), batch_, logits.data_ptr<float>(), false);
    return logits;
  }

  // Runs the bytes of history_ (positions 0..n-1) through the model in one forward pass and fills
  // the caches from it; returns the logits after the last.
  torch::Tensor Prefill() {
    if (caches_.empty()) Allocate();
    const int64_t n = static_cast<int64_t>(history_.size());
    std::vector<torch::Tensor> qkv;
    const torch::Tensor logits = model_.Forward(torch::cat(history_, 1), &qkv);
    for (size_t i = 0; i < qkv.size(); ++i) {
      caches_[i].first.narrow(1, 0, n).copy_(qkv[i].narrow(2, d_, d_));
      caches_[i].second.narrow(1, 0, n).copy_(qkv[i].narrow(2, 2 * d_, d_));
    }
    pos_ = n;
    return logits.select(1, n - 1);
  }

  // The window is full: start again at position 0 from its last half (positions are absolute,
  // so the cache cannot slide).
  void Restart() {
    history_.erase(history_.begin(), history_.end() - window_ / 2);
    Prefill();
  }

  BitByteLM& model_;
  const int64_t batch_, window_, d_;
  const bool on_cpu_;
  int64_t pos_ = 0;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> caches_;  // per block: keys, values [B, window, d]
  std::vector<torch::Tensor> history_;                           // the bytes at positions 0..pos_-1
  std::vector<float> x_;                                         // the residual stream [B, d] (on_cpu_)
  DecodeBuffers buffers_;
};

std::unique_ptr<ByteModel::Stepper> BitByteLM::MakeStepper(int64_t batch, int64_t window) {
  // The cache's raw-array kernels know nothing of quantization-aware layers: such a model
  // generates by its forward pass over the window.
  if (qat() != nullptr) return nullptr;
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

torch::Tensor BitByteLM::forward(const torch::Tensor& bytes) { return Forward(bytes, nullptr); }

torch::Tensor BitByteLM::Forward(const torch::Tensor& bytes, std::vector<torch::Tensor>* qkv) {
  TORCH_CHECK(bytes.dim() == 2, "BitByteLM expects [batch, time] bytes, got ", bytes.sizes());
  const int64_t t = bytes.size(1);
  TORCH_CHECK(t <= config_.context(), "window of ", t, " bytes exceeds the model context ", config_.context());
  const torch::Tensor pos = torch::arange(t, bytes.options().dtype(torch::kLong));
  torch::Tensor x = tok_emb_(bytes) + pos_emb_(pos);
  if (config_.dropout() > 0 && is_training()) x = torch::dropout(x, config_.dropout(), true);
  for (int64_t i = 0; i < ActiveBlocks(static_cast<int64_t>(blocks_->size())); ++i) {
    torch::Tensor* out = nullptr;
    if (qkv != nullptr) out = &qkv->emplace_back();
    x = blocks_[i]->as<TransformerBlock>()->Forward(x, out);
  }
  return Linear(head_, ln_f_(x));
}

std::string BitByteLM::Describe() const {
  std::ostringstream os;
  os << "bitbyte_lm: d_model " << config_.d_model() << ", " << config_.n_layer() << " layers, " << config_.n_head()
     << " heads, d_ff " << FeedForwardWidth(config_) << ", context " << config_.context() << "; " << ParameterCount()
     << " parameters";
  return os.str();
}

}  // namespace bitbyte::models
