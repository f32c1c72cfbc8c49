#include "models/qat.h"

#include <atomic>
#include <vector>

#include "base/error.h"
#include "models/by_weight.h"
#include "models/linear.h"
#include "models/precision.h"
#include "models/quant.h"

namespace bitbyte::models::qat {

struct QatModel::Shared {
  Scheme scheme = Scheme::kNone;
  int64_t group = 64;
  bool per_channel = false;
  std::atomic<bool> active{true};
};

namespace {

// The QatModels' layers, by weight.
ByWeight<QatModel::Shared>& Layers() {
  static ByWeight<QatModel::Shared> r;
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

torch::Tensor Ternary(const torch::Tensor& w, bool per_channel) {
  torch::NoGradGuard no_grad;
  const auto [t, gamma] = quant::RoundTernary(w.detach().to(torch::kFloat), per_channel);
  return t * gamma;
}

torch::Tensor Int4Weight(const torch::Tensor& w, int64_t group) {
  torch::NoGradGuard no_grad;
  const torch::Tensor f = w.detach().to(torch::kFloat);
  const auto [q, scale, zero] = quant::RoundInt4(f, group);  // part 1's round to nearest
  const auto per_input = [&](const torch::Tensor& t) { return t.repeat_interleave(group, 1).narrow(1, 0, f.size(1)); };
  return (q - per_input(zero)) * per_input(scale);
}

torch::Tensor Int8Rows(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const torch::Tensor f = x.detach().to(torch::kFloat);
  const torch::Tensor m = f.abs().amax(-1, true);
  const torch::Tensor s = torch::where(m > 0, m / 127, torch::ones_like(m));
  return (f * (1 / s)).round().clamp(-127, 127) * s;
}

torch::Tensor RmsRows(const torch::Tensor& x) { return x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6); }

torch::Tensor TernaryInput(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  if (!x.device().is_cpu()) return Int8Rows(RmsRows(x.detach().to(torch::kFloat)));
  const torch::Tensor f = x.detach().to(torch::kFloat).contiguous();
  const int64_t cols = f.size(-1), rows = cols > 0 ? f.numel() / cols : 0;
  if (rows == 0) return f.clone();
  std::vector<int64_t> shape = f.sizes().vec();
  shape.back() = 1;
  torch::Tensor q = torch::empty(f.sizes(), torch::kChar), scale = torch::empty(shape);
  quant::TernaryRows(f.data_ptr<float>(), rows, cols, q.data_ptr<int8_t>(), scale.data_ptr<float>());
  return q.to(torch::kFloat) * scale;
}

torch::Tensor StraightThrough(const torch::Tensor& x, const torch::Tensor& q) {
  return x + (q.to(x.scalar_type()) - x).detach();
}

QatModel::QatModel(torch::nn::Module& model, Scheme scheme, int64_t group, bool per_channel)
    : scheme_(scheme), group_(group), per_channel_(per_channel), shared_(std::make_shared<Shared>()) {
  if (scheme == Scheme::kInt4 && (group < 2 || group % 2 != 0))
    throw UsageError("quantization-aware int4: group size must be even and at least 2, got " + std::to_string(group));
  shared_->scheme = scheme;
  shared_->group = group;
  shared_->per_channel = per_channel;
  if (scheme == Scheme::kNone) return;
  try {
    for (const auto& item : model.named_modules("", /*include_self=*/false)) {
      auto* linear = dynamic_cast<torch::nn::LinearImpl*>(item.value().get());
      if (linear == nullptr || item.key() == "head") continue;
      Layers().Add(linear->weight, shared_, item.key(), "trained quantization-aware by another model");
      keys_.push_back(ByWeight<Shared>::Key(linear->weight));
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

torch::Tensor TernaryComposed(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                              bool per_channel) {
  const torch::Tensor xq = StraightThrough(RmsRows(x), TernaryInput(x));
  return Linear(xq, StraightThrough(w, Ternary(w, per_channel)), b);  // new tensors: the plain path
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// TernaryLinear's function: the forward on integers, the backward as TernaryComposed's (straight
// through both quantizers, through the norm), its two products in bf16 where the forward ran under
// bf16 autocast (as autocast would have run the composition's), else in float32.
class TernaryLinearFn : public torch::autograd::Function<TernaryLinearFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor& b, bool per_channel) {
    const int64_t out = w.size(0), in = w.size(1);
    const torch::Tensor x2 = x.detach().to(torch::kFloat).reshape({-1, in}).contiguous();
    const int64_t rows = x2.size(0);
    torch::Tensor q = torch::empty({rows, in}, torch::kChar), sx = torch::empty({rows}), norm = torch::empty({rows});
    quant::TernaryRows(x2.data_ptr<float>(), rows, in, q.data_ptr<int8_t>(), sx.data_ptr<float>(),
                       norm.data_ptr<float>());
    const auto [t, gamma] = quant::RoundTernary(w.detach().to(torch::kFloat), per_channel);
    const torch::Tensor t8 = t.to(torch::kChar).contiguous(), g = gamma.reshape({-1}).expand({out}).contiguous();
    const bool has_bias = b.numel() > 0;  // no bias: an empty tensor (apply takes no undefined one)
    const torch::Tensor bias = has_bias ? b.detach().to(torch::kFloat).contiguous() : torch::Tensor();
    torch::Tensor y = torch::empty({rows, out});
    if (rows > 0)
      quant::TernaryGemm(q.data_ptr<int8_t>(), sx.data_ptr<float>(), rows, t8.data_ptr<int8_t>(), g.data_ptr<float>(),
                         bias.defined() ? bias.data_ptr<float>() : nullptr, in, out, y.data_ptr<float>(), false);
    ctx->save_for_backward({x2, q, sx, t8, g, norm});
    ctx->saved_data["bias"] = has_bias;
    ctx->saved_data["bf16"] = CpuAutocastEnabled();
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = out;
    return y.view(shape);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor &x2 = saved[0], &q = saved[1], &sx = saved[2], &t8 = saved[3], &g = saved[4], &norm = saved[5];
    const int64_t out = t8.size(0), in = t8.size(1);
    const torch::Tensor gy = grads[0].reshape({-1, out}).to(torch::kFloat).contiguous();
    const torch::Tensor xq = q.to(torch::kFloat) * sx.unsqueeze(1), wq = t8.to(torch::kFloat) * g.unsqueeze(1);
    torch::Tensor gw, gin;
    if (ctx->saved_data["bf16"].toBool()) {
      gw = gy.t().to(torch::kBFloat16).mm(xq.to(torch::kBFloat16)).to(torch::kFloat);
      gin = gy.to(torch::kBFloat16).mm(wq.to(torch::kBFloat16)).to(torch::kFloat);
    } else if (LinearPath().path == MatmulPath::kOneDnn) {  // the float32 Linear's own path (linear.h)
      const int64_t m = gy.size(0);
      gw = torch::empty({out, in});
      gin = torch::empty({m, in});
      OneDnnGemm(true, false, out, in, m, 1.0f, gy.data_ptr<float>(), out, xq.data_ptr<float>(), in, 0.0f,
                 gw.data_ptr<float>(), in);
      OneDnnGemm(false, false, m, in, out, 1.0f, gy.data_ptr<float>(), out, wq.data_ptr<float>(), in, 0.0f,
                 gin.data_ptr<float>(), in);
    } else {
      gw = gy.t().mm(xq);
      gin = gy.mm(wq);
    }
    // Through xin = x s, s = (mean x^2 + 1e-6)^(-1/2): dL/dx = s g - x s^3 mean(g x).
    torch::Tensor gx = torch::empty_like(x2);
    const torch::Tensor gc = gin.contiguous();
    quant::RmsGrad(x2.data_ptr<float>(), gc.data_ptr<float>(), norm.data_ptr<float>(), x2.size(0), in,
                   gx.data_ptr<float>());
    std::vector<int64_t> shape = grads[0].sizes().vec();
    shape.back() = in;
    return {gx.view(shape), gw, ctx->saved_data["bias"].toBool() ? gy.sum(0) : torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor TernaryLinear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, bool per_channel) {
  if (!x.device().is_cpu() || !w.device().is_cpu()) return TernaryComposed(x, w, b, per_channel);
  return TernaryLinearFn::apply(x, w, b.defined() ? b : torch::empty({0}), per_channel);
}

torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  const std::shared_ptr<QatModel::Shared> s = Layers().Find(w);
  if (s == nullptr || !s->active.load(std::memory_order_relaxed)) return torch::Tensor();
  if (s->scheme == Scheme::kTernary) return TernaryLinear(x, w, b, s->per_channel);
  const torch::Tensor wq = StraightThrough(w, Int4Weight(w, s->group));
  const torch::Tensor xq = StraightThrough(x, Int8Rows(x));
  return Linear(xq, wq, b);  // xq and wq are new tensors: the plain path
}

}  // namespace bitbyte::models::qat
