#pragma once
// Quantization-aware training (model.qat, docs/quantization.md §6): the Linear layers of a model
// (every torch::nn::Linear but the output head) run their forward pass on quantized values, and
// their gradients pass the rounding straight through (the straight-through estimator: the
// backward pass of y = q(x) is that of y = x), so the optimizer keeps float32 latent weights.
//
// ternary (BitNet b1.58, Ma et al. 2024): weights w ~ gamma t, t in {-1, 0, +1}, gamma = mean |w|
// over the tensor (or per output channel), t = clamp(round(w / gamma), -1, 1), as part 1's ternary
// form rounds (quant::RoundTernary, so the export loses nothing); the input first normalised per row by its
// root mean square (no parameters: the norm BitLinear puts before its quantizer), then int8 per
// row, x ~ sx q, sx = max |x| / 127 (part 1's activations, models/quant.h).
// int4: weights exactly as part 1's int4 rounds to nearest (groups of `group` inputs, scale and
// zero point per group) and activations int8 per row as part 1's int4 runs them, so a model
// trained so exports to that format with nothing further lost.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bitbyte::models::qat {

enum class Scheme { kNone, kTernary, kInt4 };
const char* SchemeName(Scheme s);  // "none", "ternary", "int4"
// "none", "ternary" or "int4"; UsageError naming them otherwise.
Scheme ParseScheme(const std::string& name);

// The quantized values, float32 (any device), no gradient. Ternary(w) = gamma t (gamma per output
// channel with `per_channel`); Int4Weight(w) =
// part 1's round-to-nearest int4 weight, dequantized; Int8Rows(x) = sx q per row of the last
// dimension (a row of zeros stays zero); RmsRows(x) = x / sqrt(mean x^2 + 1e-6) per row.
torch::Tensor Ternary(const torch::Tensor& w, bool per_channel = false);
torch::Tensor Int4Weight(const torch::Tensor& w, int64_t group);
torch::Tensor Int8Rows(const torch::Tensor& x);
torch::Tensor RmsRows(const torch::Tensor& x);
// Int8Rows(RmsRows(x)) as the ternary export computes it (quant::TernaryRows, on the CPU; the same
// up to the last bit of the norm, which can move an input to the other int8 neighbour): what the
// ternary forward feeds its product, so that the exported kernel sees the same integers.
torch::Tensor TernaryInput(const torch::Tensor& x);

// x with forward value q and gradient 1 (straight through): x + (q - x).detach().
torch::Tensor StraightThrough(const torch::Tensor& x, const torch::Tensor& q);

// While it lives, models::Linear runs the covered Linear layers of `model` (all but the output
// head "head") quantization-aware when active() (from the start; the trainer switches it on at
// model.qat.start_step). The model must outlive it.
class QatModel {
 public:
  QatModel(torch::nn::Module& model, Scheme scheme, int64_t group, bool per_channel = false);
  ~QatModel();
  QatModel(const QatModel&) = delete;
  QatModel& operator=(const QatModel&) = delete;

  Scheme scheme() const { return scheme_; }
  int64_t group() const { return group_; }
  bool per_channel() const { return per_channel_; }
  bool active() const;
  void set_active(bool on);
  const std::vector<std::string>& layers() const { return layers_; }

  struct Shared;  // scheme, group and the switch, shared with the registry (qat.cc)

 private:
  Scheme scheme_;
  int64_t group_;
  bool per_channel_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::string> layers_;
  std::vector<const void*> keys_;
};

// The ternary quantization-aware Linear, y = Linear(TernaryInput(x), Ternary(w), b) with gradients
// straight through both quantizers to RmsRows(x) and w. On the CPU its forward runs on integers,
// as the exported model does (quant::TernaryRows, quant::TernaryGemm: the same floats), and its
// backward is the composition's, written out; elsewhere it is the composition of the tensor ops
// above (TernaryComposed).
torch::Tensor TernaryLinear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, bool per_channel);
torch::Tensor TernaryComposed(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, bool per_channel);

// y = Linear(x', w', b) with the quantized x', w' of the QatModel covering `w` (gradients straight
// through to x and w; ternary: TernaryLinear); an undefined tensor when none covers it or it is not
// active.
torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);

}  // namespace bitbyte::models::qat
