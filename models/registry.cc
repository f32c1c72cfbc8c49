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
