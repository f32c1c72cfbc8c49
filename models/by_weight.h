#pragma once
// A registry of values by Linear-layer weight, for models::Linear to consult on every call
// (quantized forms and calibrations, quant.h; quantization-aware training, qat.h). Internal to
// models/.
#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/error.h"

namespace bitbyte::models {

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

}  // namespace bitbyte::models
