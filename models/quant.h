#pragma once
// Post-training quantization of Linear layers (docs/quantization.md), three schemes:
//
// int8: weights symmetric int8 per output channel, w[o, i] ~ scale[o] q[o, i], q in [-127, 127],
// scale[o] = max_i |w[o, i]| / 127. Activations symmetric int8 per row (token), computed as each
// Linear runs (dynamic), or one scale per layer from a calibration (static). The product runs on
// integers: oneDNN's int8 GEMM (its own JIT kernels: VNNI where the CPU has it) accumulates
// exactly in int32, then y = acc sx[m] scale[o] + bias.
//
// int4: weights asymmetric per group of `group` consecutive inputs of an output channel:
// w[o, i] ~ scale[o, g] (q[o, i] - zero[o, g]), q and zero in [0, 15], two weights a byte. The
// rounding is to nearest, or GPTQ's (error feedback through the inverse Hessian of the layer's
// calibration inputs). Activations int8 per row as int8's dynamic ones (x ~ sx[r] xq[r, i]), so
// the product runs on integers: per group the dot product of the unsigned nibbles with xq is exact
// in int32 (VNNI's vpdpbusd where the CPU has it), then
// y[r, o] = sx[r] sum_g scale[o, g] (dot[r, o, g] - zero[o, g] sum_{i in g} xq[r, i]) + bias[o].
//
// ternary (BitNet b1.58's BitLinear, the export of ternary quantization-aware training, qat.h):
// weights w[o, i] ~ gamma[o] t[o, i], t in {-1, 0, +1}, gamma = mean |w| over the tensor (or the
// output channel), two bits a weight (ternary.h). Each input row is first divided by its root mean
// square (the parameter-free norm BitLinear puts before its quantizer), then to int8 per row as
// above; the product runs on integers, without a multiplication for a few rows (ternary.h's lookup
// kernel), on the int8 GEMM from 16 rows on (the same sums), then y = sx[r] gamma[o] dot[r, o] +
// bias[o].
//
// A model is quantized by a QuantizedModel over it: while it lives, every models::Linear call whose
// weight it quantized runs the quantized product instead (linear.h); the module itself is
// unchanged, so the same code path serves every track.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace bitbyte::models::quant {

// Symmetric int8 per row: scale[r] = max_c |x[r, c]| / 127 (1 for a row of zeros),
// q[r, c] = round(x[r, c] / scale[r]) in [-127, 127].
void QuantizeRows(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scale);

// c[m, n] = sum_k a[m, k] b[n, k] in int32 (exact while |sum| < 2^31: k < 133,000 at 127 x 127),
// on oneDNN's integer GEMM; c is overwritten.
void GemmInt8(const int8_t* a, const int8_t* b, int64_t m, int64_t n, int64_t k, int32_t* c);

enum class Scheme { kInt8, kInt4, kTernary };
const char* SchemeName(Scheme s);  // "int8", "int4", "ternary"
// "int8", "int4" or "ternary"; UsageError naming the schemes otherwise.
Scheme ParseScheme(const std::string& name);

struct Int4Tiles;  // int4 weights laid out for the integer kernel (quant.cc)
}  // namespace bitbyte::models::quant
namespace bitbyte::models::ternary {
struct Tiles;  // ternary weights laid out for the lookup kernel (ternary.h)
}  // namespace bitbyte::models::ternary
namespace bitbyte::models::quant {

struct QuantLinear {
  Scheme scheme = Scheme::kInt8;
  int64_t in = 0;                          // input features
  torch::Tensor q;                         // int8: [out, in] int8; int4: [out, PackedBytes(in, group)] uint8;
                                           // ternary: [out, ternary::Bytes(in)] uint8, 2-bit codes (ternary.h)
  torch::Tensor scale;                     // int8: [out] float32; int4: [out, Groups(in, group)] float32;
                                           // ternary: [out], or [1] for one gamma per tensor
  torch::Tensor zero;                      // int4: [out, Groups(in, group)] uint8 in [0, 15]
  torch::Tensor bias;                      // [out] float32, or undefined
  int64_t group = 0;                       // int4: inputs per group (even)
  float act_scale = 0;                     // int8: > 0: static activations, x ~ act_scale * int8 (clamped); 0: per row
  std::shared_ptr<const Int4Tiles> tiles;  // int4: the kernel's layout of q (Prepare); built per call if null
  std::shared_ptr<const ternary::Tiles> ternary;  // ternary: the same (Prepare)
  int64_t out() const { return q.size(0); }
};

// int4 layout: group k covers inputs [k group, min(in, (k + 1) group)); its L inputs take
// (L + 1) / 2 bytes from byte k group / 2 of the row on: byte j holds input j in its low nibble and
// input j + (L + 1) / 2 in its high one (0 past the group's end), so a kernel reads both halves of
// the input contiguously.
int64_t Groups(int64_t in, int64_t group);
int64_t PackedBytes(int64_t in, int64_t group);

// The int8 form of a float32 weight [out, in] (and its bias, kept in float32).
QuantLinear QuantizeLinear(const torch::Tensor& weight, const torch::Tensor& bias);
// The int4 form with groups of `group` inputs (even, >= 2): rounded to nearest when `hessian` is
// undefined, else by GPTQ with that Hessian (sum of x^T x over calibration inputs, [in, in]).
QuantLinear QuantizeLinearInt4(const torch::Tensor& weight, const torch::Tensor& bias, int64_t group,
                               const torch::Tensor& hessian);
// The ternary form: t = clamp(round(w / gamma), -1, 1), gamma = mean |w| over the tensor, or over each
// output channel with `per_channel` (the bias kept in float32).
QuantLinear QuantizeLinearTernary(const torch::Tensor& weight, const torch::Tensor& bias, bool per_channel);
// That rounding on w [out, in] float32 (any device): t [out, in] (-1, 0, +1 as floats) and gamma,
// [out, 1] with `per_channel`, else a scalar; quantization-aware training (qat.h) trains with it.
std::pair<torch::Tensor, torch::Tensor> RoundTernary(const torch::Tensor& w, bool per_channel);
// The activations of the ternary product: each row of x [rows, cols] divided by its root mean square
// sqrt(mean x^2 + 1e-6), then to int8 per row as QuantizeRows; with `norm`, the rows' 1 / rms too.
void TernaryRows(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scale, float* norm = nullptr);
// The gradient through that norm, xin = x s (s = norm[r], from TernaryRows), given g = dL/dxin:
// dx = s g - x s^3 mean(g x), rows of x, g and dx [rows, cols].
void RmsGrad(const float* x, const float* g, const float* norm, int64_t rows, int64_t cols, float* dx);
// The ternary product of such rows xq [rows, in] (scales sx) with ternary weights t [out, in] (-1,
// 0, +1 as int8) and gamma [out], on oneDNN's integer GEMM: y = fma(dot, sx[r] gamma[o], bias[o])
// (+ y with `accumulate`), the same floats as the lookup kernel (ternary.h) gives. bias may be null.
void TernaryGemm(const int8_t* xq, const float* sx, int64_t rows, const int8_t* t, const float* gamma,
                 const float* bias, int64_t in, int64_t out, float* y, bool accumulate);
// Builds what the kernels need beyond the stored tensors (int4, ternary: the tile layout of q, about
// its size again); the forms QuantizeLinearInt4, QuantizeLinearTernary and QuantizedModel make are
// prepared.
void Prepare(QuantLinear& l);
// Round to nearest in int4, groups of `group` inputs, on w [out, in] float32 (any device):
// q [out, in] (0..15 as floats), scale and zero [out, groups] (floats), as QuantizeLinearInt4 packs
// them without a Hessian (and quantization-aware training, qat.h, trains with them).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> RoundInt4(const torch::Tensor& w, int64_t group);
// The weight a form stands for, float32 [out, in].
torch::Tensor Dequantize(const QuantLinear& l);
// y = x w^T + b with the quantized w: x [..., in] float32 -> [..., out].
torch::Tensor Apply(const QuantLinear& l, const torch::Tensor& x);
// The same on raw float32 rows x [rows, in] -> y [rows, out]; with `accumulate` added to y (the
// generation step's kernels, decode.h).
void ApplyRows(const QuantLinear& l, const float* x, int64_t rows, float* y, bool accumulate);

class Calibrator;

// Which Linear layers are quantized and how: the output head is kept in float32 unless asked.
// With a calibration: int8 gets static activation scales (max |input| seen / 127 per layer), int4
// GPTQ rounding (else int4 rounds to nearest).
struct QuantizeOptions {
  bool head = false;
  const Calibrator* calibration = nullptr;
  Scheme scheme = Scheme::kInt8;
  int64_t group = 64;        // int4
  bool per_channel = false;  // ternary: one gamma per output channel (else per tensor)
};

// The Hessian takes every kHessianStride-th input row of each call (each row costs in^2 multiply-
// adds, more than the layer's own product for the MLP's second layer; a quarter of 1 MiB of text
// is still 256K rows, as many as GPTQ's paper used).
inline constexpr int64_t kHessianStride = 4;

// While it lives, records what `options`' scheme needs of the inputs each Linear layer of `model`
// that it would quantize sees (models::Linear reports every call): int8 the largest |input|, int4
// the sum of x^T x over input rows (GPTQ's Hessian, up to a factor; every kHessianStride-th row). Run calibration
// batches through the model in float32, then quantize with it.
class Calibrator {
 public:
  Calibrator(torch::nn::Module& model, const QuantizeOptions& options);
  ~Calibrator();
  Calibrator(const Calibrator&) = delete;
  Calibrator& operator=(const Calibrator&) = delete;
  // max |x| over the inputs layer `name` has seen; 0 when it has seen none.
  float AbsMax(const std::string& name) const;
  // Sum of x^T x over the input rows layer `name` has seen [in, in] float32 (int4), and the rows;
  // undefined / 0 when it has seen none.
  torch::Tensor Hessian(const std::string& name) const;
  int64_t Rows(const std::string& name) const;

  struct Layer;  // one layer's record (quant.cc)

 private:
  std::shared_ptr<Layer> Find(const std::string& name) const;
  std::vector<std::pair<std::string, std::shared_ptr<Layer>>> layers_;
  std::vector<const void*> keys_;
};

// Called by models::Linear with every input: a live Calibrator covering `weight` records it.
void Observe(const torch::Tensor& weight, const torch::Tensor& input);

// The quantized forms of a model's Linear layers (every torch::nn::Linear module, the head only
// with `head`), registered for models::Linear while this object lives. The model must outlive it and
// keep its weights (a quantized model is for inference: changing a weight does not change its
// int8 form).
class QuantizedModel {
 public:
  QuantizedModel(torch::nn::Module& model, const QuantizeOptions& options);
  // The forms given, by module name (a quantized checkpoint's): each names a Linear module of
  // `model` whose weight has the form's shape; UsageError otherwise.
  QuantizedModel(torch::nn::Module& model, const std::vector<std::pair<std::string, QuantLinear>>& forms);
  ~QuantizedModel();
  QuantizedModel(const QuantizedModel&) = delete;
  QuantizedModel& operator=(const QuantizedModel&) = delete;

  // Names of the quantized Linear layers (module names), and bytes of their quantized weights,
  // scales and zero points.
  const std::vector<std::string>& layers() const { return layers_; }
  int64_t bytes() const { return bytes_; }
  // The quantized form of layers()[i].
  const QuantLinear& form(size_t i) const { return *forms_[i]; }

 private:
  void Add(torch::nn::Module& model, const std::vector<std::pair<std::string, QuantLinear>>& forms);
  void Register(const std::string& name, torch::nn::LinearImpl& linear, std::shared_ptr<const QuantLinear> form);
  void Unregister();
  std::vector<std::string> layers_;
  std::vector<std::shared_ptr<const QuantLinear>> forms_;
  std::vector<const void*> keys_;
  int64_t bytes_ = 0;
};

// The quantized form registered for this weight, or null (no QuantizedModel covers it).
std::shared_ptr<const QuantLinear> Find(const torch::Tensor& weight);

}  // namespace bitbyte::models::quant
