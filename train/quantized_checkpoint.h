#pragma once
// Quantized checkpoints (docs/quantization.md): the checkpoint format of train/checkpoint.h (same
// files, same atomic write, same XXH64 of every tensor), holding
//   "model/<name>"        every float32 parameter and buffer except the quantized weights
//   "quant/<layer>.q"     int8: a quantized Linear layer's int8 weight [out, in] (dtype Char)
//   "quant/<layer>.scale" int8: its float32 scale per output channel [out]
//   "quant/<layer>.act_scale"  int8 with static activations: the input's float32 scale [1]
//   "quant/<layer>.q4"    int4: the packed weight [out, PackedBytes(in, group)] (dtype Byte;
//                         layout in models/quant.h)
//   "quant/<layer>.scale", "quant/<layer>.zero"  int4: float32 scales and Byte zero points
//                         (0..15) per output channel and group [out, groups]
//   blob "quant/scheme"   the scheme ("int8" or "int4"); int4: blob "quant/group", the group size
// and the config, step and dataset of the checkpoint it was made from. No optimizer state and no
// RNG: it can be evaluated and generated from, not trained (Trainer::Restore refuses it).
#include <torch/torch.h>

#include <memory>
#include <string>

#include "models/model.h"
#include "models/model_config.pb.h"
#include "models/quant.h"
#include "train/checkpoint.h"

namespace bitbyte::train {

inline constexpr char kQuantSchemeBlob[] = "quant/scheme";
inline constexpr char kQuantGroupBlob[] = "quant/group";  // int4: the group size, in decimal

// The scheme of a quantized checkpoint; "" for a training checkpoint.
std::string QuantScheme(const Snapshot& snap);

// A quantized checkpoint of `model` with the quantized forms of `q` (one scheme); config, step and dataset from
// `source` (the checkpoint the model was loaded from).
Snapshot QuantizedSnapshot(const torch::nn::Module& model, const models::quant::QuantizedModel& q,
                           const Snapshot& source);

// The model of a quantized checkpoint on the CPU, in eval mode: every float32 tensor loaded, each
// quantized weight set to its dequantized value, and `*quantized` registering the stored int8
// forms (keep it alive while the model runs; destroy it first). DataError naming the tensor when
// the checkpoint does not fit `config`'s model.
std::shared_ptr<models::ByteModel> ModelFromQuantizedSnapshot(
    const Snapshot& snap, const models::pb::ModelConfig& config,
    std::unique_ptr<models::quant::QuantizedModel>* quantized);

}  // namespace bitbyte::train
