#include "models/qat.h"

#include <atomic>
#include <shared_mutex>
#include <unordered_map>

#include "base/error.h"
#include "models/linear.h"

namespace bitbyte::models::qat {

struct QatModel::Shared {
  Scheme scheme = Scheme::kNone;
  int64_t group = 64;
  std::atomic<bool> active{true};
};

namespace {

// The QatModels' layers by the TensorImpl of their weight (as quant.cc's registry); `count` lets
// a model without QAT skip the lock.
class Registry {
 public:
  void Add(const void* key, std::shared_ptr<QatModel::Shared> s, const std::string& layer) {
    std::unique_lock lock(mu_);
    if (!map_.emplace(key, std::move(s)).second)
      throw UsageError("Linear layer '" + layer + "' is already trained quantization-aware by another model");
    count_ += 1;
  }
  void Remove(const std::vector<const void*>& keys) {
    std::unique_lock lock(mu_);
    for (const void* key : keys) count_ -= static_cast<int64_t>(map_.erase(key));
  }
  std::shared_ptr<QatModel::Shared> Find(const void* key) const {
    if (count_.load(std::memory_order_acquire) == 0) return nullptr;
    std::shared_lock lock(mu_);
    const auto it = map_.find(key);
    return it == map_.end() ? nullptr : it->second;
  }

 private:
  mutable std::shared_mutex mu_;
  std::unordered_map<const void*, std::shared_ptr<QatModel::Shared>> map_;
  std::atomic<int64_t> count_{0};
};

Registry& Layers() {
  static Registry r;
  return r;
}

}  // namespace

const char* SchemeName(Scheme s) {
  switch (s) {
    case Scheme::kTernary: return "ternary";
    case Scheme::kInt4: return "int4";
    case Scheme::kNone: break;
  }
  return "none";
}

Scheme ParseScheme(const std::string& name) {
  if (name == "none") return Scheme::kNone;
  if (name == "ternary") return Scheme::kTernary;
  if (name == "int4") return Scheme::kInt4;
  throw UsageError("quantization-aware scheme '" + name + "': none, ternary or int4");
}

torch::Tensor Ternary(const torch::Tensor& w) {
  torch::NoGradGuard no_grad;
  const torch::Tensor f = w.detach().to(torch::kFloat);
  const torch::Tensor gamma = f.abs().mean().clamp_min(1e-8);
  return (f / gamma).round().clamp(-1, 1) * gamma;
}

torch::Tensor Int4Weight(const torch::Tensor& w, int64_t group) {
  torch::NoGradGuard no_grad;
  const torch::Tensor f = w.detach().to(torch::kFloat);
  const int64_t in = f.size(1);
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < in; start += group) {
    // Part 1's round to nearest (quant.cc, GroupParams and Round4): the group's range widened to
    // hold 0, in 15 steps; a group of zeros gets scale 1.
    const torch::Tensor g = f.narrow(1, start, std::min(group, in - start));
    const torch::Tensor lo = std::get<0>(g.min(1, true)).clamp_max(0), hi = std::get<0>(g.max(1, true)).clamp_min(0);
    torch::Tensor scale = (hi - lo) / 15;
    scale = torch::where(scale > 0, scale, torch::ones_like(scale));
    const torch::Tensor zero = torch::round(-lo / scale).clamp(0, 15);
    const torch::Tensor q = (torch::round(g / scale) + zero).clamp(0, 15);
    parts.push_back((q - zero) * scale);
  }
  return torch::cat(parts, 1);
}

torch::Tensor Int8Rows(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const torch::Tensor f = x.detach().to(torch::kFloat);
  const torch::Tensor m = f.abs().amax(-1, true);
  const torch::Tensor s = torch::where(m > 0, m / 127, torch::ones_like(m));
  return (f * (1 / s)).round().clamp(-127, 127) * s;
}

torch::Tensor RmsRows(const torch::Tensor& x) { return x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6); }

torch::Tensor StraightThrough(const torch::Tensor& x, const torch::Tensor& q) {
  return x + (q.to(x.scalar_type()) - x).detach();
}

QatModel::QatModel(torch::nn::Module& model, Scheme scheme, int64_t group)
    : scheme_(scheme), group_(group), shared_(std::make_shared<Shared>()) {
  if (scheme == Scheme::kInt4 && (group < 2 || group % 2 != 0))
    throw UsageError("quantization-aware int4: group size must be even and at least 2, got " + std::to_string(group));
  shared_->scheme = scheme;
  shared_->group = group;
  if (scheme == Scheme::kNone) return;
  try {
    for (const auto& item : model.named_modules("", /*include_self=*/false)) {
      auto* linear = dynamic_cast<torch::nn::LinearImpl*>(item.value().get());
      if (linear == nullptr || item.key() == "head") continue;
      const void* key = linear->weight.unsafeGetTensorImpl();
      Layers().Add(key, shared_, item.key());
      keys_.push_back(key);
      layers_.push_back(item.key());
    }
  } catch (...) {
    Layers().Remove(keys_);
    throw;
  }
}

QatModel::~QatModel() { Layers().Remove(keys_); }

bool QatModel::active() const { return shared_->active.load(std::memory_order_relaxed); }
void QatModel::set_active(bool on) { shared_->active.store(on, std::memory_order_relaxed); }

torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  const std::shared_ptr<QatModel::Shared> s = Layers().Find(w.unsafeGetTensorImpl());
  if (s == nullptr || !s->active.load(std::memory_order_relaxed)) return torch::Tensor();
  torch::Tensor xin = x, wq;
  if (s->scheme == Scheme::kTernary) {
    xin = RmsRows(x);
    wq = StraightThrough(w, Ternary(w));
  } else {
    wq = StraightThrough(w, Int4Weight(w, s->group));
  }
  const torch::Tensor xq = StraightThrough(xin, Int8Rows(xin));
  return Linear(xq, wq, b);  // xq and wq are new tensors: the plain path
}

}  // namespace bitbyte::models::qat
