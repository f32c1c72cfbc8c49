#include "train/evaluator.h"

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "base/error.h"

namespace bitbyte::train {
namespace {

// Sum over rows of -log p(target) for inputs [B, T] (int64) and targets [B, T].
double WindowNats(models::ByteModel& model, const torch::Tensor& x, const torch::Tensor& y) { return model.Nats(x, y); }

torch::Tensor BytesTensor(const std::vector<const char*>& starts, int64_t len, torch::Device device) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(starts.size()), len}, torch::kUInt8);
  auto* out = t.data_ptr<uint8_t>();
  for (size_t i = 0; i < starts.size(); ++i) std::memcpy(out + i * len, starts[i], len);
  return t.to(device).to(torch::kLong);
}

}  // namespace

uint64_t PredictedBytes(const std::vector<std::string_view>& streams) {
  uint64_t n = 0;
  for (std::string_view s : streams) n += s.size() > 1 ? s.size() - 1 : 0;
  return n;
}

EvalResult EvaluateBpb(models::ByteModel& model, const std::vector<std::string_view>& streams, int64_t context,
                       int batch_size, torch::Device device) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  std::vector<const char*> full;  // starts of full windows (context + 1 bytes each)
  auto run_full = [&] {
    if (full.empty()) return;
    const torch::Tensor w = BytesTensor(full, context + 1, device);
    r.nats += WindowNats(model, w.narrow(1, 0, context), w.narrow(1, 1, context));
    r.bytes += full.size() * static_cast<uint64_t>(context);
    full.clear();
  };
  for (std::string_view s : streams) {
    if (s.size() < 2) continue;
    const uint64_t predicted = s.size() - 1;
    uint64_t pos = 0;
    for (; pos + context <= predicted; pos += context) {
      full.push_back(s.data() + pos);
      if (static_cast<int>(full.size()) == batch_size) run_full();
    }
    if (pos < predicted) {  // the stream's last, shorter window
      const int64_t len = static_cast<int64_t>(predicted - pos);
      const torch::Tensor w = BytesTensor({s.data() + pos}, len + 1, device);
      r.nats += WindowNats(model, w.narrow(1, 0, len), w.narrow(1, 1, len));
      r.bytes += static_cast<uint64_t>(len);
    }
  }
  run_full();
  if (was_training) model.train();
  // Nothing predicted has no bpb (never 0.0, which would pass for a perfect model and win `best`).
  if (r.bytes == 0) throw InternalError("nothing to evaluate: no byte to predict (each stream needs at least 2 bytes)");
  r.bpb = r.nats / std::log(2.0) / static_cast<double>(r.bytes);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace bitbyte::train
