// The Torch half of the registry: building a model by name, and the ByteModel defaults.
#include "models/registry.h"

#include <stdexcept>

#include "base/error.h"
#include "models/bit_transformer_lm.h"
#include "models/bitbyte_lm.h"
#include "models/cross_entropy.h"
#include "models/mamba_mlm.h"
#include "models/model.h"
#include "models/qat.h"

namespace bitbyte::models {

bool ByteModel::Decays(const std::string& name, const torch::Tensor& param) const {
  return param.dim() >= 2 && name.find("emb") == std::string::npos;
}

torch::Tensor ByteModel::Loss(const torch::Tensor& x, const torch::Tensor& y) {
  return CrossEntropy(forward(x).reshape({-1, 256}), y.reshape(-1));  // float32 (cross_entropy.h)
}

double ByteModel::Nats(const torch::Tensor& x, const torch::Tensor& y) {
  const torch::Tensor logp = torch::log_softmax(forward(x).to(torch::kDouble), -1);
  return -logp.gather(-1, y.unsqueeze(-1)).sum().item<double>();
}

torch::Tensor ByteModel::NextLogits(const torch::Tensor& bytes) { return forward(bytes).select(1, -1); }

void ByteModel::Trace(const torch::Tensor& bytes) { forward(bytes); }

ByteModel::Denoised ByteModel::Denoise(const torch::Tensor&, int64_t, int64_t, double, at::Generator&) {
  throw InternalError("Denoise: this model generates byte after byte");
}

torch::Tensor ByteModel::BitProbabilities(const torch::Tensor& x, const torch::Tensor& y) {
  return BitConditionals(torch::softmax(forward(x).to(torch::kDouble), -1), y);
}

torch::Tensor ByteModel::BitConditionals(const torch::Tensor& probs, const torch::Tensor& bytes) {
  const torch::Tensor p = probs.to(torch::kDouble).reshape({-1, 256});
  const torch::Tensor b = bytes.to(torch::kLong).reshape({-1, 1});
  std::vector<torch::Tensor> out;
  for (int64_t k = 0; k < 8; ++k) {
    // The 2^k blocks of 2^(8-k) bytes that share their first k bits; the byte's own block, whose
    // upper half has bit k set.
    const int64_t width = int64_t{256} >> k;
    const torch::Tensor block = p.view({p.size(0), int64_t{1} << k, width})
                                    .gather(1, torch::div(b, width, "floor").unsqueeze(-1).expand({-1, 1, width}))
                                    .squeeze(1);
    out.push_back(block.narrow(1, width / 2, width / 2).sum(1) / block.sum(1).clamp_min(1e-300));
  }
  std::vector<int64_t> shape = bytes.sizes().vec();
  shape.push_back(8);
  return torch::stack(out, 1).view(shape);
}

void ByteModel::IdentityBlocksFrom(int64_t first) {
  torch::NoGradGuard no_grad;
  const std::vector<std::string> outputs = ResidualOutputs();
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    if (name.rfind("blocks.", 0) != 0) continue;
    const size_t dot = name.find('.', 7);
    if (dot == std::string::npos || std::stoll(name.substr(7, dot - 7)) < first) continue;
    const std::string rest = name.substr(dot + 1);
    for (const std::string& o : outputs)
      if (rest.rfind(o, 0) == 0) p.value().zero_();
  }
}

int64_t ByteModel::ParameterCount() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

std::shared_ptr<ByteModel> CreateModel(const pb::ModelConfig& config) {
  ValidateModelConfig(config);
  // Each track's module, by its block (the tracks table, models/tracks.h, has everything else).
  std::shared_ptr<ByteModel> model;
  switch (FindTrack(config.name())->block) {
    case pb::ModelConfig::kBitbyteLm: model = std::make_shared<BitByteLM>(config.bitbyte_lm()); break;
    case pb::ModelConfig::kMambaMlm: model = std::make_shared<MambaMLM>(config.mamba_mlm()); break;
    case pb::ModelConfig::kBitTransformerLm:
      model = std::make_shared<BitTransformerLM>(config.bit_transformer_lm());
      break;
    case pb::ModelConfig::TRACK_NOT_SET: break;
  }
  if (model == nullptr) throw InternalError("model '" + config.name() + "' is validated but has no constructor");
  const qat::Scheme scheme = qat::ParseScheme(config.qat().scheme());
  if (scheme != qat::Scheme::kNone)
    model->set_qat(std::make_shared<qat::QatModel>(*model, scheme, config.qat().group(),
                                                   config.qat().ternary_scale() == "channel"));
  return model;
}

}  // namespace bitbyte::models
