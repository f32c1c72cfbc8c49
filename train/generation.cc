#include "train/generation.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "base/error.h"

namespace bitbyte::train {

NextByte::NextByte(models::ByteModel& model, int64_t window, const torch::Device& device, bool recurrent)
    : model_(model), window_(static_cast<size_t>(std::max<int64_t>(1, window))), device_(device) {
  if (recurrent) stepper_ = model.MakeStepper(1, static_cast<int64_t>(window_));
}

torch::Tensor NextByte::Bytes(const char* data, size_t n) const {
  torch::Tensor x = torch::empty({1, static_cast<int64_t>(n)}, torch::kUInt8);
  std::memcpy(x.data_ptr(), data, n);
  return x.to(device_).to(torch::kLong);
}

torch::Tensor NextByte::Logits(const std::string& text) {
  if (text.empty()) throw InternalError("the model needs at least one byte of context");
  torch::NoGradGuard no_grad;
  if (!stepper_) {
    const size_t n = std::min(text.size(), window_);
    return model_.NextLogits(Bytes(text.data() + text.size() - n, n)).squeeze(0).to(torch::kCPU, torch::kDouble);
  }
  if (text.size() < stepped_) throw InternalError("NextByte: the text must only grow");
  if (!primed_) stepped_ = text.size() - std::min(text.size(), window_);  // first call: its last window
  primed_ = true;
  if (stepped_ < text.size()) last_ = stepper_->Feed(Bytes(text.data() + stepped_, text.size() - stepped_));
  stepped_ = text.size();
  return last_.squeeze(0).to(torch::kCPU, torch::kDouble);
}

}  // namespace bitbyte::train
