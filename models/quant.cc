#include "models/quant.h"

#include <ATen/Parallel.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "base/error.h"
#include "models/cpu_kernels.h"

namespace bitbyte::models::quant {
namespace {

// Values by the TensorImpl of a Linear layer's float32 weight, for models::Linear to look up on
// every call: `count` lets the calls of a model nothing covers skip the lock.
template <typename V>
class ByWeight {
 public:
  // Adds `value` for `weight`; UsageError naming `layer` when another one covers it already.
  void Add(const torch::Tensor& weight, std::shared_ptr<V> value, const std::string& layer, const char* what) {
    std::unique_lock lock(mu_);
    if (!map_.emplace(Key(weight), std::move(value)).second)
      throw UsageError("Linear layer '" + layer + "' is already " + what);
    count_ += 1;
  }
  void Remove(const std::vector<const void*>& keys) {
    std::unique_lock lock(mu_);
    for (const void* key : keys) count_ -= static_cast<int64_t>(map_.erase(key));
  }
  std::shared_ptr<V> Find(const torch::Tensor& weight) const {
    if (count_.load(std::memory_order_acquire) == 0) return nullptr;
    std::shared_lock lock(mu_);
    const auto it = map_.find(Key(weight));
    return it == map_.end() ? nullptr : it->second;
  }
  static const void* Key(const torch::Tensor& weight) { return weight.unsafeGetTensorImpl(); }

 private:
  mutable std::shared_mutex mu_;
  std::unordered_map<const void*, std::shared_ptr<V>> map_;
  std::atomic<int64_t> count_{0};
};

ByWeight<const Int8Linear>& Quantized() {
  static ByWeight<const Int8Linear> r;
  return r;
}

}  // namespace

struct Calibrator::Layer {
  std::mutex mu;
  float abs_max = 0;
};

namespace {

ByWeight<Calibrator::Layer>& Observed() {
  static ByWeight<Calibrator::Layer> r;
  return r;
}

// The Linear layers `options` quantizes, by module name.
std::vector<std::pair<std::string, torch::nn::LinearImpl*>> Covered(torch::nn::Module& model,
                                                                    const QuantizeOptions& options) {
  std::vector<std::pair<std::string, torch::nn::LinearImpl*>> out;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    auto* linear = dynamic_cast<torch::nn::LinearImpl*>(item.value().get());
    if (linear != nullptr && (options.head || item.key() != "head")) out.emplace_back(item.key(), linear);
  }
  return out;
}

constexpr int kLanes = 16;

// max |x[i]| over n floats. On the bits: with the sign cleared, the order of IEEE floats is that
// of their bit patterns as unsigned integers, and integer maxima vectorise (float ones do not
// without -ffast-math). A NaN comes out as a NaN.
using AliasedBits = uint32_t __attribute__((may_alias));
BITBYTE_KERNEL_INLINE float AbsMax(const float* x, int64_t n) {
  const auto* bits = reinterpret_cast<const AliasedBits*>(x);
  uint32_t lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = std::max(lane[j], bits[i + j] & 0x7fffffffu);
  uint32_t m = 0;
  for (int j = 0; j < kLanes; ++j) m = std::max(m, lane[j]);
  for (; i < n; ++i) m = std::max(m, bits[i] & 0x7fffffffu);
  float f;
  std::memcpy(&f, &m, sizeof f);
  return f;
}

// Rows of x to int8 (QuantizeRows). Written to vectorise: the maximum over lanes, rounding to
// nearest (ties to even) by adding and subtracting 1.5 * 2^23 (exact for |v| <= 127.5).
// `fixed` > 0: that scale for every row (static activations; values beyond it clamp).
template <typename T>
BITBYTE_KERNEL_INLINE void QuantizeRowsImpl(const T* x, int64_t rows, int64_t cols, int8_t* q, T* scale, T fixed) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict xr = x + r * cols;
    int8_t* __restrict qr = q + r * cols;
    const T m = fixed > 0 ? T{0} : AbsMax(xr, cols);
    const T s = fixed > 0 ? fixed : m > 0 ? m / T{127} : T{1};
    const T inv = T{1} / s;
    for (int64_t c = 0; c < cols; ++c) {
      T v = xr[c] * inv;
      v = std::min(T{127}, std::max(T{-127}, v));
      v = (v + T{12582912}) - T{12582912};
      qr[c] = static_cast<int8_t>(static_cast<int32_t>(v));
    }
    scale[r] = s;
  }
}

// y[r, o] = acc[r, o] sx[r] sw[o] + bias[o] for rows [begin, end).
template <typename T>
BITBYTE_KERNEL_INLINE void DequantizeRowsImpl(const int32_t* acc, const T* sx, const T* sw, const T* bias, int64_t out,
                                              T* y, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const int32_t* __restrict a = acc + r * out;
    T* __restrict yr = y + r * out;
    const T s = sx[r];
    if (bias != nullptr) {
      for (int64_t o = 0; o < out; ++o) yr[o] = static_cast<T>(a[o]) * s * sw[o] + bias[o];
    } else {
      for (int64_t o = 0; o < out; ++o) yr[o] = static_cast<T>(a[o]) * s * sw[o];
    }
  }
}

BITBYTE_KERNEL_DISPATCH(QuantizeKernel, QuantizeRowsImpl)
BITBYTE_KERNEL_DISPATCH(DequantizeKernel, DequantizeRowsImpl)

}  // namespace

void QuantizeRows(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scale) {
  QuantizeKernel<float>(x, rows, cols, q, scale, 0.0f);
}

void GemmInt8(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t k, int32_t* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::fill(c, c + m * n, 0);
    return;
  }
  const int32_t offset = 0;
  const dnnl_status_t st = dnnl_gemm_s8s8s32('N', 'T', 'F', m, n, k, 1.0f, a, k, 0, b, k, 0, 0.0f, c, n, &offset);
  if (st != dnnl_success) throw InternalError("dnnl_gemm_s8s8s32 failed with status " + std::to_string(st));
}

Int8Linear QuantizeLinear(const torch::Tensor& weight, const torch::Tensor& bias) {
  TORCH_CHECK(weight.dim() == 2, "QuantizeLinear: weight must be [out, in], got ", weight.sizes());
  const torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat).contiguous();
  Int8Linear l;
  l.q = torch::empty(w.sizes(), torch::kInt8);
  l.scale = torch::empty({w.size(0)}, torch::kFloat);
  QuantizeRows(w.data_ptr<float>(), w.size(0), w.size(1), l.q.data_ptr<int8_t>(), l.scale.data_ptr<float>());
  if (bias.defined()) l.bias = bias.detach().to(torch::kCPU, torch::kFloat).contiguous();
  return l;
}

torch::Tensor Dequantize(const Int8Linear& l) { return l.q.to(torch::kFloat) * l.scale.unsqueeze(1); }

torch::Tensor Apply(const Int8Linear& l, const torch::Tensor& input) {
  const int64_t in = l.q.size(1), out = l.q.size(0);
  TORCH_CHECK(input.size(-1) == in, "int8 Linear: input has ", input.size(-1), " features, the layer ", in);
  const torch::Tensor x = input.detach().to(torch::kCPU, torch::kFloat).reshape({-1, in}).contiguous();
  const int64_t m = x.size(0);
  torch::Tensor y = torch::empty({m, out}, torch::kFloat);
  const float* px = x.data_ptr<float>();
  float* py = y.data_ptr<float>();
  const int8_t* wq = l.q.data_ptr<int8_t>();
  const float* sw = l.scale.data_ptr<float>();
  const float* bias = l.bias.defined() ? l.bias.data_ptr<float>() : nullptr;
  // Blocks of rows, each quantized, multiplied and scaled back by one thread while its rows are
  // in cache (oneDNN's GEMM runs on the calling thread inside the team). Scratch without
  // initialisation: every element is written before it is read.
  constexpr int64_t kRows = 128;
  at::parallel_for(0, (m + kRows - 1) / kRows, 1, [&](int64_t b, int64_t e) {
    const std::unique_ptr<int8_t[]> xq(new int8_t[static_cast<size_t>(kRows * in)]);
    const std::unique_ptr<int32_t[]> acc(new int32_t[static_cast<size_t>(kRows * out)]);
    float sx[kRows];
    for (int64_t block = b; block < e; ++block) {
      const int64_t r0 = block * kRows, rows = std::min(kRows, m - r0);
      QuantizeKernel<float>(px + r0 * in, rows, in, xq.get(), sx, l.act_scale);
      GemmInt8(xq.get(), wq, rows, out, in, acc.get());
      DequantizeKernel<float>(acc.get(), sx, sw, bias, out, py + r0 * out, int64_t{0}, rows);
    }
  });
  std::vector<int64_t> shape = input.sizes().vec();
  shape.back() = out;
  return y.view(shape).to(input.device());
}

Calibrator::Calibrator(torch::nn::Module& model, const QuantizeOptions& options) {
  try {
    for (const auto& [name, linear] : Covered(model, options)) {
      auto layer = std::make_shared<Layer>();
      Observed().Add(linear->weight, layer, name, "being calibrated");
      keys_.push_back(ByWeight<Layer>::Key(linear->weight));
      layers_.emplace_back(name, std::move(layer));
    }
  } catch (...) {
    Observed().Remove(keys_);  // no destructor runs for a constructor that throws
    throw;
  }
}

Calibrator::~Calibrator() { Observed().Remove(keys_); }

float Calibrator::AbsMax(const std::string& name) const {
  for (const auto& [n, layer] : layers_)
    if (n == name) {
      std::lock_guard lock(layer->mu);
      return layer->abs_max;
    }
  return 0;
}

void Observe(const torch::Tensor& weight, const torch::Tensor& input) {
  const std::shared_ptr<Calibrator::Layer> layer = Observed().Find(weight);
  if (layer == nullptr) return;
  const float m = input.detach().abs().max().to(torch::kCPU, torch::kFloat).item<float>();
  std::lock_guard lock(layer->mu);
  layer->abs_max = std::max(layer->abs_max, m);
}

QuantizedModel::QuantizedModel(torch::nn::Module& model, const QuantizeOptions& options) {
  try {
    for (const auto& [name, linear] : Covered(model, options)) {
      Int8Linear form = QuantizeLinear(linear->weight, linear->bias);
      if (options.calibration != nullptr) {
        const float m = options.calibration->AbsMax(name);
        if (!(m > 0) || !std::isfinite(m))
          throw UsageError("calibration saw no usable input for Linear layer '" + name + "' (max |x| " +
                           std::to_string(m) + ")");
        form.act_scale = m / 127.0f;
      }
      Register(name, *linear, std::make_shared<const Int8Linear>(std::move(form)));
    }
  } catch (...) {
    Unregister();  // no destructor runs for a constructor that throws
    throw;
  }
}

QuantizedModel::QuantizedModel(torch::nn::Module& model, const std::vector<std::pair<std::string, Int8Linear>>& forms) {
  try {
    Add(model, forms);
  } catch (...) {
    Unregister();
    throw;
  }
}

void QuantizedModel::Add(torch::nn::Module& model, const std::vector<std::pair<std::string, Int8Linear>>& forms) {
  const auto modules = model.named_modules("", /*include_self=*/false);
  for (const auto& [name, form] : forms) {
    const auto* found = modules.find(name);
    auto* linear = found != nullptr ? dynamic_cast<torch::nn::LinearImpl*>(found->get()) : nullptr;
    if (linear == nullptr) throw UsageError("int8 form of '" + name + "': the model has no Linear layer of that name");
    if (form.q.scalar_type() != torch::kInt8 || form.q.sizes() != linear->weight.sizes() ||
        form.scale.scalar_type() != torch::kFloat || form.scale.dim() != 1 || form.scale.size(0) != form.q.size(0))
      throw UsageError("int8 form of '" + name + "': int8 weight " + c10::str(form.q.sizes()) + " and scale " +
                       c10::str(form.scale.sizes()) + " do not fit the layer's weight " +
                       c10::str(linear->weight.sizes()));
    Register(name, *linear, std::make_shared<const Int8Linear>(form));
  }
}

void QuantizedModel::Register(const std::string& name, torch::nn::LinearImpl& linear,
                              std::shared_ptr<const Int8Linear> form) {
  Quantized().Add(linear.weight, form, name, "quantized by another QuantizedModel");
  bytes_ += form->q.numel() + 4 * form->scale.numel();
  keys_.push_back(ByWeight<const Int8Linear>::Key(linear.weight));
  layers_.push_back(name);
  forms_.push_back(std::move(form));
}

QuantizedModel::~QuantizedModel() { Unregister(); }

void QuantizedModel::Unregister() {
  Quantized().Remove(keys_);
  keys_.clear();
}

std::shared_ptr<const Int8Linear> Find(const torch::Tensor& weight) { return Quantized().Find(weight); }

}  // namespace bitbyte::models::quant
