#include "train/quantized_checkpoint.h"

#include <cmath>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "base/error.h"
#include "models/registry.h"
#include "models/ternary.h"
#include "train/trainer.h"

namespace bitbyte::train {
namespace {

constexpr char kModelPrefix[] = "model/";
constexpr char kQuantPrefix[] = "quant/";

// The stored tensor `name` as a new CPU tensor of `dtype`; DataError when absent or malformed.
torch::Tensor Read(const Snapshot& snap, const std::string& name, torch::ScalarType dtype) {
  const TensorBlob* b = snap.Find(name);
  if (b == nullptr) throw DataError("quantized checkpoint has no tensor '" + name + "'");
  if (b->dtype != c10::toString(dtype))
    throw DataError("quantized checkpoint tensor '" + name + "' is " + b->dtype + ", want " + c10::toString(dtype));
  torch::Tensor t = torch::empty(b->shape, torch::TensorOptions().dtype(dtype));
  if (static_cast<size_t>(t.nbytes()) != b->data.size())
    throw DataError("quantized checkpoint tensor '" + name + "' has the wrong size");
  std::memcpy(t.data_ptr(), b->data.data(), b->data.size());
  return t;
}

}  // namespace

std::string QuantScheme(const Snapshot& snap) {
  const std::string* s = snap.FindBlob(kQuantSchemeBlob);
  return s != nullptr ? *s : "";
}

Snapshot QuantizedSnapshot(const torch::nn::Module& model, const models::quant::QuantizedModel& q,
                           const Snapshot& source) {
  Snapshot snap;
  snap.step = source.step;
  snap.config_text = source.config_text;
  snap.dataset_id = source.dataset_id;
  std::set<std::string> quantized;
  std::string scheme = "int8";
  int64_t group = 0;
  for (size_t i = 0; i < q.layers().size(); ++i) {
    const std::string& layer = q.layers()[i];
    const models::quant::QuantLinear& f = q.form(i);
    if (i == 0) {
      scheme = models::quant::SchemeName(f.scheme);
      group = f.group;
    } else if (models::quant::SchemeName(f.scheme) != scheme || f.group != group) {
      throw UsageError("a quantized checkpoint holds one scheme and group size: layer '" + layer + "' differs");
    }
    quantized.insert(layer + ".weight");
    if (f.scheme == models::quant::Scheme::kInt4) {
      snap.tensors.push_back(ToBlob(kQuantPrefix + layer + ".q4", f.q));
      snap.tensors.push_back(ToBlob(kQuantPrefix + layer + ".zero", f.zero));
    } else if (f.scheme == models::quant::Scheme::kTernary) {
      snap.tensors.push_back(ToBlob(kQuantPrefix + layer + ".q2", f.q));
    } else {
      snap.tensors.push_back(ToBlob(kQuantPrefix + layer + ".q", f.q));
    }
    snap.tensors.push_back(ToBlob(kQuantPrefix + layer + ".scale", f.scale));
    if (f.act_scale > 0)
      snap.tensors.push_back(ToBlob(kQuantPrefix + layer + ".act_scale", torch::full({1}, f.act_scale)));
  }
  for (const auto& p : model.named_parameters())
    if (!quantized.count(p.key())) snap.tensors.push_back(ToBlob(kModelPrefix + p.key(), p.value()));
  for (const auto& b : model.named_buffers()) snap.tensors.push_back(ToBlob(kModelPrefix + b.key(), b.value()));
  snap.blobs.emplace_back(kQuantSchemeBlob, scheme);
  if (scheme == "int4") snap.blobs.emplace_back(kQuantGroupBlob, std::to_string(group));
  return snap;
}

std::shared_ptr<models::ByteModel> ModelFromQuantizedSnapshot(
    const Snapshot& snap, const models::pb::ModelConfig& config,
    std::unique_ptr<models::quant::QuantizedModel>* quantized) {
  const std::string scheme = QuantScheme(snap);
  if (scheme != "int8" && scheme != "int4" && scheme != "ternary")
    throw DataError("quantized checkpoint of scheme '" + scheme + "': this bitbyte reads int8, int4 and ternary");
  const bool int4 = scheme == "int4", ternary = scheme == "ternary";
  int64_t group = 0;
  if (int4) {
    const std::string* g = snap.FindBlob(kQuantGroupBlob);
    if (g == nullptr) throw DataError("int4 quantized checkpoint has no '" + std::string(kQuantGroupBlob) + "'");
    try {
      size_t used = 0;
      group = std::stoll(*g, &used);
      if (used != g->size()) group = 0;
    } catch (const std::exception&) {
      group = 0;
    }
    if (group < 2 || group % 2 != 0 || group > (int64_t{1} << 20))
      throw DataError("int4 quantized checkpoint: '" + std::string(kQuantGroupBlob) + "' is '" + *g +
                      "', not an even group size");
  }
  std::shared_ptr<models::ByteModel> model = models::CreateModel(config);
  model->eval();
  // The quantized layers: every "quant/<layer>.q" (int4: ".q4", ternary: ".q2") names one.
  std::vector<std::pair<std::string, models::quant::QuantLinear>> forms;
  std::set<std::string> weights;
  const std::string suffix = int4 ? ".q4" : ternary ? ".q2" : ".q";
  for (const TensorBlob& t : snap.tensors) {
    if (t.name.rfind(kQuantPrefix, 0) != 0 || t.name.size() <= suffix.size() + 6 ||
        t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string layer = t.name.substr(6, t.name.size() - 6 - suffix.size());
    models::quant::QuantLinear f;
    f.scheme = int4      ? models::quant::Scheme::kInt4
               : ternary ? models::quant::Scheme::kTernary
                         : models::quant::Scheme::kInt8;
    f.q = Read(snap, t.name, int4 || ternary ? torch::kByte : torch::kChar);
    f.scale = Read(snap, kQuantPrefix + layer + ".scale", torch::kFloat);
    if (int4) {
      f.zero = Read(snap, kQuantPrefix + layer + ".zero", torch::kByte);
      f.group = group;
    }
    if (snap.Find(kQuantPrefix + layer + ".act_scale") != nullptr) {  // static activations
      const torch::Tensor a = Read(snap, kQuantPrefix + layer + ".act_scale", torch::kFloat);
      if (a.numel() != 1 || !(a.item<float>() > 0) || !std::isfinite(a.item<float>()))
        throw DataError("quantized checkpoint tensor 'quant/" + layer + ".act_scale' is not one positive scale");
      f.act_scale = a.item<float>();
    }
    if (f.q.dim() != 2 || f.scale.dim() != (int4 ? 2 : 1) ||
        (f.scale.size(0) != f.q.size(0) && !(ternary && f.scale.size(0) == 1)))
      throw DataError("quantized checkpoint tensors of '" + layer + "' do not fit together: " + scheme + " weight " +
                      c10::str(f.q.sizes()) + ", scale " + c10::str(f.scale.sizes()));
    forms.emplace_back(layer, std::move(f));
    weights.insert(layer + ".weight");
  }
  torch::NoGradGuard no_grad;
  const auto modules = model->named_modules("", /*include_self=*/false);
  for (auto& [layer, f] : forms) {
    const auto* m = modules.find(layer);
    auto* linear = m != nullptr ? dynamic_cast<torch::nn::LinearImpl*>(m->get()) : nullptr;
    if (linear == nullptr) throw DataError("quantized checkpoint quantizes '" + layer + "', which the model lacks");
    const int64_t out = linear->weight.size(0), in = linear->weight.size(1);
    f.in = in;
    const std::vector<int64_t> want = int4      ? std::vector<int64_t>{out, models::quant::PackedBytes(in, group)}
                                      : ternary ? std::vector<int64_t>{out, models::ternary::Bytes(in)}
                                                : std::vector<int64_t>{out, in};
    if (f.q.sizes() != c10::IntArrayRef(want))
      throw DataError("quantized checkpoint tensor 'quant/" + layer + suffix + "' is " + c10::str(f.q.sizes()) +
                      ", want " + c10::str(want) + " for the model's weight " + c10::str(linear->weight.sizes()));
    if (int4 && (f.scale.size(1) != models::quant::Groups(in, group) || f.zero.sizes() != f.scale.sizes() ||
                 f.zero.max().item<int>() > 15))
      throw DataError("quantized checkpoint tensors 'quant/" + layer + ".scale' " + c10::str(f.scale.sizes()) +
                      " and '.zero' " + c10::str(f.zero.sizes()) + " do not fit " + std::to_string(in) +
                      " inputs in groups of " + std::to_string(group) + " (zero points in 0..15)");
    if (ternary) {
      const int64_t at = models::ternary::FindInvalid(f.q.data_ptr<uint8_t>(), out, in);
      if (at >= 0)
        throw DataError("quantized checkpoint tensor 'quant/" + layer + ".q2': byte " + std::to_string(at) +
                        " holds code 3, not a ternary weight (0, +1 or -1)");
    }
    linear->weight.copy_(models::quant::Dequantize(f));
    if (linear->bias.defined()) f.bias = Read(snap, kModelPrefix + layer + ".bias", torch::kFloat);
  }
  for (auto& p : model->named_parameters()) {
    if (weights.count(p.key())) continue;
    const torch::Tensor t = Read(snap, kModelPrefix + p.key(), p.value().scalar_type());
    if (t.sizes() != p.value().sizes())
      throw DataError("quantized checkpoint tensor 'model/" + p.key() + "' is " + c10::str(t.sizes()) +
                      ", the model has " + c10::str(p.value().sizes()));
    p.value().copy_(t);
  }
  for (auto& b : model->named_buffers()) b.value().copy_(Read(snap, kModelPrefix + b.key(), b.value().scalar_type()));
  try {
    *quantized = std::make_unique<models::quant::QuantizedModel>(*model, forms);
  } catch (const UsageError& e) {
    throw DataError(std::string("quantized checkpoint: ") + e.what());
  }
  return model;
}

}  // namespace bitbyte::train
