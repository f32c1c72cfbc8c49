#include "models/bit_transformer_lm.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <utility>

#include "base/error.h"
#include "models/fused_attention.h"
#include "models/gelu.h"
#include "models/linear.h"
#include "models/precision.h"

namespace bitbyte::models {
namespace nn = torch::nn;

namespace {

int64_t FeedForwardWidth(const pb::BitTransformerLMConfig& c) {
  return c.d_ff() > 0 ? c.d_ff() : 4 * int64_t{c.d_model()};
}

void InitLinear(nn::Linear& l, double std) {
  torch::NoGradGuard no_grad;
  l->weight.normal_(0.0, std);
  if (l->bias.defined()) l->bias.zero_();
}

// -log p of each bit, for logits z of the bit being 1 and the bits s (in z's type):
// softplus(z) - s z, computed as max(z, 0) - s z + log1p(exp(-|z|)) so it holds for large |z|.
torch::Tensor BitNats(const torch::Tensor& z, const torch::Tensor& s) {
  return torch::clamp_min(z, 0) - s * z + torch::log1p(torch::exp(-z.abs()));
}

// Uniform draws on the CPU (from `gen`, or the global generator), moved to `like`'s device.
torch::Tensor Uniform(at::IntArrayRef shape, at::Generator* gen, const torch::Tensor& like) {
  const torch::Tensor u = gen != nullptr ? torch::rand(shape, *gen, torch::dtype(torch::kDouble))
                                         : torch::rand(shape, torch::dtype(torch::kDouble));
  return u.to(like.device());
}

}  // namespace

BitBlockImpl::BitBlockImpl(const pb::BitTransformerLMConfig& c)
    : n_head_(c.n_head()), causal_(c.mode() != "diffusion"), window_(c.attention_window()) {
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

torch::Tensor BitBlockImpl::F(const torch::Tensor& x2) {
  const torch::Tensor qkv = Linear(qkv_, ln1_(x2));
  return Linear(proj_, SelfAttention(qkv, n_head_, causal_, window_));
}

torch::Tensor BitBlockImpl::Mlp(const torch::Tensor& x) { return Linear(fc2_, Gelu(Linear(fc1_, ln2_(x)))); }

torch::Tensor BitBlockImpl::FCached(const torch::Tensor& x, torch::Tensor& k_cache, torch::Tensor& v_cache, int64_t n,
                                    bool commit) {
  const int64_t rows = x.size(0), m = x.size(1), d = x.size(2), h = n_head_, dh = d / h;
  const int64_t b = k_cache.size(0), g = rows / b;
  const torch::Tensor qkv = Linear(qkv_, ln1_(x));  // [rows, m, 3 d]
  // [rows, m, d] -> [rows, H, m, dh]
  const auto heads = [&](int64_t part) { return qkv.narrow(2, part * d, d).reshape({rows, m, h, dh}).transpose(1, 2); };
  const torch::Tensor q = heads(0), k = heads(1), v = heads(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  // Scores against the row's own new positions, causal: [rows, H, m, m].
  torch::Tensor scores = torch::matmul(q, k.transpose(2, 3)) * scale;
  const double inf = std::numeric_limits<double>::infinity();
  // Position n + i sees n + j for j <= i, and (local attention) only from n + i - window + 1 on.
  const torch::Tensor own_i = torch::arange(m, x.options().dtype(torch::kLong)).unsqueeze(1);
  const torch::Tensor own_j = torch::arange(m, x.options().dtype(torch::kLong)).unsqueeze(0);
  torch::Tensor hidden = own_j > own_i;
  if (window_ > 0) hidden = hidden | (own_j <= own_i - window_);
  scores = scores.masked_fill(hidden, -inf);
  // [rows, H, m, e] <-> [B, H, g m, e]: the g rows of a cache row share its keys.
  const auto grouped = [&](const torch::Tensor& t) {
    const int64_t e = t.size(3);
    return t.reshape({b, g, h, m, e}).permute({0, 2, 1, 3, 4}).reshape({b, h, g * m, e});
  };
  const auto ungrouped = [&](const torch::Tensor& t) {
    const int64_t e = t.size(3);
    return t.reshape({b, h, g, m, e}).permute({0, 2, 1, 3, 4}).reshape({rows, h, m, e});
  };
  torch::Tensor out;
  if (n > 0) {
    const torch::Tensor keys = k_cache.narrow(2, 0, n), values = v_cache.narrow(2, 0, n);
    torch::Tensor cached = ungrouped(torch::matmul(grouped(q), keys.transpose(2, 3)) * scale);
    if (window_ > 0) {  // cached position j is out of reach of n + i when j <= n + i - window
      const torch::Tensor j = torch::arange(n, x.options().dtype(torch::kLong)).unsqueeze(0);
      cached = cached.masked_fill(j <= own_i + n - window_, -inf);
    }
    const torch::Tensor p = torch::softmax(torch::cat({cached, scores}, -1), -1);
    out =
        ungrouped(torch::matmul(grouped(p.narrow(3, 0, n).contiguous()), values)) + torch::matmul(p.narrow(3, n, m), v);
  } else {
    out = torch::matmul(torch::softmax(scores, -1), v);
  }
  if (commit) {
    k_cache.narrow(2, n, m).copy_(k);
    v_cache.narrow(2, n, m).copy_(v);
  }
  return Linear(proj_, out.transpose(1, 2).reshape({rows, m, d}));
}

// Generation on a key/value cache of the known positions (per block: [B, H, capacity, dh]). The
// known tokens are the start symbol and the bits of the bytes so far; the next byte's distribution
// needs bit 0's logit (the last known position) and, for bits 1..7, the 128 continuations by the
// first 7 bits of the even bytes, run as new positions on top of the cache without committing them.
class BitTransformerLM::CachedStepper : public ByteModel::Stepper {
 public:
  CachedStepper(BitTransformerLM& model, int64_t batch, int64_t window)
      : model_(model),
        batch_(batch),
        window_(std::max<int64_t>(1, std::min<int64_t>(window, model.context()))),
        capacity_(8 * window_ + 8) {}

  torch::Tensor Step(const torch::Tensor& bytes) override {
    torch::NoGradGuard no_grad;
    const torch::Tensor b = bytes.reshape({batch_, 1}).to(torch::kLong);
    Start();
    if (n_ + 8 + 7 > capacity_) Restart();
    history_.push_back(b);
    Commit(Bits(b));
    return Next();
  }

  torch::Tensor Feed(const torch::Tensor& bytes) override {
    torch::NoGradGuard no_grad;
    Start();
    if (n_ + 8 * bytes.size(1) + 7 > capacity_) return Stepper::Feed(bytes);
    const torch::Tensor b = bytes.to(torch::kLong);
    for (int64_t t = 0; t < b.size(1); ++t) history_.push_back(b.narrow(1, t, 1));
    Commit(Bits(b));
    return Next();
  }

 private:
  void Start() {
    if (started_) return;
    started_ = true;
    const torch::Tensor& w = model_.tok_emb_->weight;
    const int64_t d = w.size(1);
    caches_.clear();
    for (const auto& block : *model_.blocks_) {
      const int64_t h = block->as<BitBlock>()->n_head();
      caches_.emplace_back(torch::empty({batch_, h, capacity_, d / h}, w.options()),
                           torch::empty({batch_, h, capacity_, d / h}, w.options()));
    }
    n_ = 0;
    Commit(torch::full({batch_, 1}, kStart, w.options().dtype(torch::kLong)));
  }

  // The window is full: start again from the start symbol and the last half of the bytes.
  void Restart() {
    history_.erase(history_.begin(), history_.end() - window_ / 2);
    started_ = false;
    Start();
    if (!history_.empty()) Commit(Bits(torch::cat(history_, 1)));
  }

  // Runs tokens [rows, m] at positions n_.. through the blocks on top of the cache; returns the
  // final stream [rows, m, d]. commit: rows == batch_, the cache keeps them and n_ advances.
  torch::Tensor Run(const torch::Tensor& tokens, bool commit) {
    torch::Tensor x1 = model_.Embed(tokens, n_), x2 = x1;
    for (size_t i = 0; i < model_.active_blocks_.size(); ++i) {
      BitBlockImpl& blk = *model_.blocks_[i]->as<BitBlock>();
      x1 = x1 + blk.FCached(x2, caches_[i].first, caches_[i].second, n_, commit);
      x2 = x2 + blk.Mlp(x1);
    }
    if (commit) n_ += tokens.size(1);
    return x1 + x2;
  }

  void Commit(const torch::Tensor& tokens) { last_ = model_.Head(Run(tokens, true)).select(1, -1); }

  // The next byte's log-probabilities [B, 256].
  torch::Tensor Next() {
    const auto opts = last_.options();
    const torch::Tensor all = torch::arange(256, opts.dtype(torch::kLong));
    const torch::Tensor bits = Bits(all.view({256, 1}));  // [256, 8]
    const torch::Tensor prefixes = bits.index({torch::indexing::Slice(0, 256, 2), torch::indexing::Slice(0, 7)});
    const torch::Tensor z = model_.Head(Run(prefixes.repeat({batch_, 1}), false)).view({batch_, 128, 7});
    // Bit k of byte c is predicted by row c / 2 at its position k - 1 (k >= 1), bit 0 by the last
    // known position.
    const torch::Tensor zc = z.index_select(1, torch::div(all, 2, "floor"));  // [B, 256, 7]
    const torch::Tensor zall = torch::cat({last_.view({batch_, 1, 1}).expand({batch_, 256, 1}), zc}, 2);
    return -BitNats(zall, bits.to(zall.scalar_type()).unsqueeze(0)).sum(2);
  }

  BitTransformerLM& model_;
  const int64_t batch_, window_, capacity_;
  bool started_ = false;
  int64_t n_ = 0;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> caches_;
  std::vector<torch::Tensor> history_;  // the bytes committed since the start symbol, [B, 1] each
  torch::Tensor last_;                  // the last known position's bit logit [B]
};

BitTransformerLM::BitTransformerLM(const pb::BitTransformerLMConfig& config)
    : config_(config), diffusion_(config.mode() == "diffusion") {
  const int64_t d = config.d_model();
  tok_emb_ = register_module("tok_emb", nn::Embedding(3, d));
  pos_emb_ = register_module("pos_emb", nn::Embedding(config.context() + 8, d));
  bit_emb_ = register_module("bit_emb", nn::Embedding(8, d));
  blocks_ = register_module("blocks", nn::ModuleList());
  for (int i = 0; i < config.n_layer(); ++i) {
    BitBlock block(config);
    blocks_->push_back(block);
    rev_blocks_.push_back(block.get());
  }
  active_blocks_ = rev_blocks_;
  ln_f_ = register_module("ln_f", nn::LayerNorm(nn::LayerNormOptions({d})));
  head_ = register_module("head", nn::Linear(d, 1));
  torch::NoGradGuard no_grad;
  tok_emb_->weight.normal_(0.0, config.init_std());
  pos_emb_->weight.normal_(0.0, config.init_std());
  bit_emb_->weight.normal_(0.0, config.init_std());
  InitLinear(head_, config.init_std());
}

torch::Tensor BitTransformerLM::Bits(const torch::Tensor& bytes) {
  const torch::Tensor weights = torch::tensor({128, 64, 32, 16, 8, 4, 2, 1}, bytes.options().dtype(torch::kLong));
  const torch::Tensor b = torch::div(bytes.to(torch::kLong).unsqueeze(-1), weights, "floor").remainder(2);
  return b.reshape({bytes.size(0), -1});
}

torch::Tensor BitTransformerLM::Tokens(const torch::Tensor& bytes) {
  const torch::Tensor bits = Bits(bytes);
  return torch::cat({torch::full({bits.size(0), 1}, kStart, bits.options()), bits.narrow(1, 0, bits.size(1) - 1)}, 1);
}

torch::Tensor BitTransformerLM::Embed(const torch::Tensor& tokens, int64_t pos0) {
  const int64_t n = tokens.size(1);
  TORCH_CHECK(pos0 + n <= config_.context() + 8, "bit positions up to ", pos0 + n, " exceed the model's ",
              config_.context() + 8);
  const torch::Tensor pos = torch::arange(pos0, pos0 + n, tokens.options().dtype(torch::kLong));
  return tok_emb_(tokens) + pos_emb_(pos) + bit_emb_(pos.remainder(8));
}

torch::Tensor BitTransformerLM::Head(const torch::Tensor& h) {
  return FullPrecision(Linear(head_, ln_f_(h))).squeeze(-1);
}

torch::Tensor BitTransformerLM::BitLogits(const torch::Tensor& tokens) {
  TORCH_CHECK(tokens.dim() == 2, "BitTransformerLM expects [batch, bits] tokens, got ", tokens.sizes());
  const torch::Tensor x = Embed(tokens, 0);
  const std::vector<torch::Tensor> y = RunRevStack(active_blocks_, x, x, config_.reversible());
  return Head(y[0] + y[1]);
}

torch::Tensor BitTransformerLM::ByteNats(const torch::Tensor& x, const torch::Tensor& y) {
  return ByteNats(x, y, false);
}

torch::Tensor BitTransformerLM::Window(const torch::Tensor& x, const torch::Tensor& y) const {
  TORCH_CHECK(x.dim() == 2 && x.sizes() == y.sizes(), "BitTransformerLM expects [batch, time] inputs and targets");
  const int64_t t = x.size(1);
  TORCH_CHECK(t <= context(), "window of ", t, " bytes exceeds the model context ", context());
  TORCH_CHECK(t < 2 || x.narrow(1, 1, t - 1).equal(y.narrow(1, 0, t - 1)),
              "BitTransformerLM: targets must be the inputs shifted by one byte");
  return torch::cat({x, y.narrow(1, t - 1, 1)}, 1);
}

torch::Tensor BitTransformerLM::ByteNats(const torch::Tensor& x, const torch::Tensor& y, bool wide) {
  const int64_t b = x.size(0), t = x.size(1);
  const torch::Tensor full = Window(x, y);  // x_0 .. x_T
  const torch::Tensor z = wide ? BitLogits(Tokens(full)).to(torch::kDouble) : BitLogits(Tokens(full));
  const torch::Tensor nats = BitNats(z, Bits(full).to(z.scalar_type()));
  return nats.narrow(1, 8, 8 * t).reshape({b, t, 8}).sum(2);
}

torch::Tensor BitTransformerLM::BitProbabilities(const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t b = x.size(0), t = x.size(1);
  const torch::Tensor full = Window(x, y);
  if (diffusion_) {  // the first denoising step's predictions: every bit of y masked
    torch::Tensor tokens = Bits(full);
    tokens.narrow(1, 8, 8 * t).fill_(kMask);
    return torch::sigmoid(BitLogits(tokens).to(torch::kDouble)).narrow(1, 8, 8 * t).reshape({b, t, 8});
  }
  return torch::sigmoid(BitLogits(Tokens(full)).to(torch::kDouble)).narrow(1, 8, 8 * t).reshape({b, t, 8});
}

torch::Tensor BitTransformerLM::DiffusionNats(const torch::Tensor& x, const torch::Tensor& y, int64_t samples,
                                              at::Generator* gen, bool wide) {
  const int64_t b = x.size(0), t = x.size(1), n = 8 * t;
  const torch::Tensor bits = Bits(Window(x, y));
  // Masking levels: the samples x b draws stratified over [0, 1) by one uniform offset each, so
  // every window sees levels spread over the range; then kept in [kMinT, 1].
  const torch::Tensor offsets = Uniform({samples, b}, gen, bits);
  torch::Tensor total;
  for (int64_t k = 0; k < samples; ++k) {
    const torch::Tensor level =
        ((torch::arange(b, offsets.options()) + k * b + offsets[k]) / static_cast<double>(samples * b))
            .clamp(kMinT, 1.0);
    const torch::Tensor masked = Uniform({b, n}, gen, bits) < level.unsqueeze(1);
    torch::Tensor tokens = bits.clone();
    tokens.narrow(1, 8, n).masked_fill_(masked, kMask);
    torch::Tensor z = BitLogits(tokens).narrow(1, 8, n);
    if (wide) z = z.to(torch::kDouble);
    const torch::Tensor nats = BitNats(z, bits.narrow(1, 8, n).to(z.scalar_type()));
    const torch::Tensor window = (nats * masked.to(z.scalar_type())).sum(1) / level.to(z.scalar_type());
    total = total.defined() ? total + window : window;
  }
  return total / static_cast<double>(samples);
}

torch::Tensor BitTransformerLM::Loss(const torch::Tensor& x, const torch::Tensor& y) {
  if (diffusion_) return DiffusionNats(x, y, 1, nullptr, false).sum() / static_cast<double>(x.numel());
  return ByteNats(x, y).mean();
}

double BitTransformerLM::Nats(const torch::Tensor& x, const torch::Tensor& y) {
  if (diffusion_) {
    // Each window's masks come from a generator seeded by its bytes: its estimate is the same
    // whatever the batching or the order of evaluation, and the training's random stream is not
    // touched (evaluation runs on another thread). Its masking levels are the K copies' strata.
    const int64_t k = config_.diffusion_eval_samples(), t = x.size(1);
    const torch::Tensor full = Window(x, y).to(torch::kCPU, torch::kLong).contiguous();  // x_0 .. x_T
    double total = 0;
    for (int64_t r = 0; r < x.size(0); ++r) {
      uint64_t h = 1469598103934665603ull;  // FNV-1a over the window's bytes
      const int64_t* row = full[r].data_ptr<int64_t>();
      for (int64_t i = 0; i <= t; ++i) h = (h ^ static_cast<uint64_t>(row[i])) * 1099511628211ull;
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(h);
      total += DiffusionNats(x[r].expand({k, t}), y[r].expand({k, t}), 1, &gen, true).mean().item<double>();
    }
    return total;
  }
  return ByteNats(x, y, true).sum().item<double>();
}

namespace {

[[noreturn]] void NoByteDistribution() {
  throw UsageError(
      "a diffusion-mode bit_transformer_lm has no next-byte distribution: it generates by denoising (bitbyte "
      "generate does) and is evaluated by its ELBO");
}

}  // namespace

torch::Tensor BitTransformerLM::NextLogits(const torch::Tensor& bytes) {
  if (diffusion_) NoByteDistribution();
  TORCH_CHECK(bytes.dim() == 2 && bytes.size(1) >= 1, "NextLogits expects [batch, time >= 1] bytes");
  CachedStepper stepper(*this, bytes.size(0), bytes.size(1));
  return stepper.Feed(bytes);
}

torch::Tensor BitTransformerLM::forward(const torch::Tensor& bytes) {
  if (diffusion_) NoByteDistribution();
  TORCH_CHECK(bytes.dim() == 2, "BitTransformerLM expects [batch, time] bytes, got ", bytes.sizes());
  TORCH_CHECK(bytes.size(1) <= context(), "window of ", bytes.size(1), " bytes exceeds the model context ", context());
  CachedStepper stepper(*this, bytes.size(0), bytes.size(1));
  std::vector<torch::Tensor> logits;
  for (int64_t t = 0; t < bytes.size(1); ++t) logits.push_back(stepper.Step(bytes.select(1, t)));
  return torch::stack(logits, 1);
}

void BitTransformerLM::SetActiveDepth(int64_t depth) {
  ByteModel::SetActiveDepth(depth);
  active_blocks_.assign(rev_blocks_.begin(),
                        rev_blocks_.begin() + ActiveBlocks(static_cast<int64_t>(rev_blocks_.size())));
}

std::unique_ptr<ByteModel::Stepper> BitTransformerLM::MakeStepper(int64_t batch, int64_t window) {
  if (diffusion_) return nullptr;
  return std::make_unique<CachedStepper>(*this, batch, window);
}

ByteModel::Denoised BitTransformerLM::Denoise(const torch::Tensor& context, int64_t n, int64_t steps,
                                              double temperature, at::Generator& gen) {
  if (!diffusion_) throw InternalError("Denoise: this bit_transformer_lm is causal: it generates bit after bit");
  TORCH_CHECK(context.dim() == 2 && context.size(0) == 1 && n >= 1 && steps >= 1, "Denoise: bad arguments");
  torch::NoGradGuard no_grad;
  const int64_t c = 8 * context.size(1), m = 8 * n;
  torch::Tensor tokens =
      torch::cat({Bits(context), torch::full({1, m}, kMask, context.options().dtype(torch::kLong))}, 1);
  torch::Tensor target = tokens.narrow(1, c, m).view(-1);
  const auto cpu = torch::dtype(torch::kDouble);
  torch::Tensor masked = torch::ones({m}, torch::kBool), q = torch::zeros({m}, cpu),
                drawn = torch::zeros({m}, torch::kLong);
  for (int64_t j = 0; j < steps; ++j) {
    const double t = 1.0 - static_cast<double>(j) / steps, s = 1.0 - static_cast<double>(j + 1) / steps;
    const torch::Tensor z = BitLogits(tokens).narrow(1, c, m).view(-1).to(torch::kCPU, torch::kDouble);
    const torch::Tensor unmask = masked & (torch::rand({m}, gen, cpu) < (t - s) / t);
    const torch::Tensor bit = temperature == 0 ? (z > 0) : torch::rand({m}, gen, cpu) < torch::sigmoid(z / temperature);
    drawn = torch::where(unmask, bit.to(torch::kLong), drawn);
    q = torch::where(unmask, torch::sigmoid(z), q);
    masked = masked & ~unmask;
    target.copy_(torch::where(masked, torch::full({m}, kMask, torch::kLong), drawn).to(target.device()));
  }
  const torch::Tensor weights = torch::tensor({128, 64, 32, 16, 8, 4, 2, 1}, torch::kLong);
  return {(drawn.view({n, 8}) * weights).sum(1), q.view({n, 8})};
}

std::string BitTransformerLM::Describe() const {
  std::ostringstream os;
  os << "bit_transformer_lm: d_model " << config_.d_model() << ", " << config_.n_layer()
     << (config_.reversible() ? " reversible" : "") << " layers, " << (diffusion_ ? "diffusion (bidirectional), " : "")
     << config_.n_head() << " heads, d_ff " << FeedForwardWidth(config_) << ", context " << config_.context()
     << " bits (" << context() << " bytes); " << ParameterCount() << " parameters";
  return os.str();
}

}  // namespace bitbyte::models
