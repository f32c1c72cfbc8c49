#pragma once
// Post-training int8 quantization of Linear layers (docs/quantization.md).
//
// Weights: symmetric int8 per output channel, w[o, i] ~ scale[o] q[o, i], q in [-127, 127],
// scale[o] = max_i |w[o, i]| / 127. Activations: symmetric int8 per row (token), computed as each
// Linear runs (dynamic). The product runs on integers: oneDNN's int8 GEMM (its own JIT kernels:
// VNNI where the CPU has it) accumulates exactly in int32, then y = acc sx[m] scale[o] + bias.
//
// A model is quantized by a QuantizedModel over it: while it lives, every models::Linear call whose
// weight it quantized runs the int8 product instead (linear.h); the module itself is unchanged,
// so the same code path serves every track.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace bitbyte::models::quant {

// Symmetric int8 per row: scale[r] = max_c |x[r, c]| / 127 (1 for a row of zeros),
// q[r, c] = round(x[r, c] / scale[r]) in [-127, 127].
void QuantizeRows(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scale);

// c[m, n] = sum_k a[m, k] b[n, k] in int32 (exact while |sum| < 2^31: k < 133,000 at 127 x 127),
// on oneDNN's integer GEMM; c is overwritten.
void GemmInt8(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t k, int32_t* c);

struct Int8Linear {
  torch::Tensor q;      // [out, in] int8
  torch::Tensor scale;  // [out] float32
  torch::Tensor bias;   // [out] float32, or undefined
  float act_scale = 0;  // > 0: static activations, x ~ act_scale * int8 (clamped); 0: per row
};

// The int8 form of a float32 weight [out, in] (and its bias, kept in float32).
Int8Linear QuantizeLinear(const torch::Tensor& weight, const torch::Tensor& bias);
// scale[o] q[o, i] as float32 [out, in].
torch::Tensor Dequantize(const Int8Linear& l);
// y = x w^T + b with w in int8 and x quantized per row: x [..., in] float32 -> [..., out].
torch::Tensor Apply(const Int8Linear& l, const torch::Tensor& x);

class Calibrator;

// Which Linear layers a scheme quantizes (the output head is kept in float32 unless asked), and
// with a calibration, static activation scales: max |input| seen / 127 per layer.
struct QuantizeOptions {
  bool head = false;
  const Calibrator* calibration = nullptr;
};

// While it lives, records the largest |input| each Linear layer of `model` that `options` would
// quantize sees (models::Linear reports every call): run calibration batches through the model
// in float32, then quantize with it.
class Calibrator {
 public:
  Calibrator(torch::nn::Module& model, const QuantizeOptions& options);
  ~Calibrator();
  Calibrator(const Calibrator&) = delete;
  Calibrator& operator=(const Calibrator&) = delete;
  // max |x| over the inputs layer `name` has seen; 0 when it has seen none.
  float AbsMax(const std::string& name) const;

  struct Layer;  // one layer's record (quant.cc)

 private:
  std::vector<std::pair<std::string, std::shared_ptr<Layer>>> layers_;
  std::vector<const void*> keys_;
};

// Called by models::Linear with every input: a live Calibrator covering `weight` records it.
void Observe(const torch::Tensor& weight, const torch::Tensor& input);

// The int8 forms of a model's Linear layers (every torch::nn::Linear module, the head only with
// `head`), registered for models::Linear while this object lives. The model must outlive it and
// keep its weights (a quantized model is for inference: changing a weight does not change its
// int8 form).
class QuantizedModel {
 public:
  QuantizedModel(torch::nn::Module& model, const QuantizeOptions& options);
  // The int8 forms given, by module name (a quantized checkpoint's): each names a Linear module of
  // `model` whose weight has the form's shape; UsageError otherwise.
  QuantizedModel(torch::nn::Module& model, const std::vector<std::pair<std::string, Int8Linear>>& forms);
  ~QuantizedModel();
  QuantizedModel(const QuantizedModel&) = delete;
  QuantizedModel& operator=(const QuantizedModel&) = delete;

  // Names of the quantized Linear layers (module names), and bytes of their int8 weights and scales.
  const std::vector<std::string>& layers() const { return layers_; }
  int64_t bytes() const { return bytes_; }
  // The int8 form of layers()[i].
  const Int8Linear& form(size_t i) const { return *forms_[i]; }

 private:
  void Add(torch::nn::Module& model, const std::vector<std::pair<std::string, Int8Linear>>& forms);
  void Register(const std::string& name, torch::nn::LinearImpl& linear, std::shared_ptr<const Int8Linear> form);
  void Unregister();
  std::vector<std::string> layers_;
  std::vector<std::shared_ptr<const Int8Linear>> forms_;
  std::vector<const void*> keys_;
  int64_t bytes_ = 0;
};

// The int8 form registered for this weight, or null (no QuantizedModel covers it).
std::shared_ptr<const Int8Linear> Find(const torch::Tensor& weight);

}  // namespace bitbyte::models::quant
