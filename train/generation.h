#pragma once
// The next-byte logits of a growing text, for `bitbyte generate`: by the model's recurrent form
// when it has one (MambaMLM: O(1) work and state per byte) or else by a forward pass over the
// last `window` bytes. Both give the same logits while the text fits in one window.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "models/model.h"

namespace bitbyte::train {

class NextByte {
 public:
  // window: the longest window (the training seq_len, at most the model's context).
  NextByte(models::ByteModel& model, int64_t window, const torch::Device& device, bool recurrent);
  // Logits [256], float64 on the CPU, for the byte after `text`. Each call's text must extend the
  // previous call's (generation appends). The recurrent form starts from the first call's last
  // `window` bytes and then steps each byte appended since the previous call.
  torch::Tensor Logits(const std::string& text);
  bool recurrent() const { return stepper_ != nullptr; }

 private:
  torch::Tensor Bytes(const char* data, size_t n) const;
  models::ByteModel& model_;
  size_t window_;
  torch::Device device_;
  std::unique_ptr<models::ByteModel::Stepper> stepper_;
  bool primed_ = false;
  size_t stepped_ = 0;  // bytes of the text the stepper has seen (its position in the text)
  torch::Tensor last_;
};

}  // namespace bitbyte::train
