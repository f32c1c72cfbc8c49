#include "train/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "base/error.h"
#include "train/telemetry.h"

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

// The telemetry of bits with model conditionals q [n, 8], reference conditionals r [n, 8] and the
// model's bits b [n, 8] (all on the CPU).
Telemetry FromTensors(const torch::Tensor& q, const torch::Tensor& r, const torch::Tensor& b) {
  const torch::Tensor qc = q.to(torch::kCPU, torch::kDouble).contiguous().reshape(-1);
  const torch::Tensor rc = r.to(torch::kCPU, torch::kDouble).contiguous().reshape(-1);
  const torch::Tensor bc = b.to(torch::kCPU, torch::kUInt8).contiguous().reshape(-1);
  const double* qd = qc.data_ptr<double>();
  const double* rd = rc.data_ptr<double>();
  const uint8_t* bd = bc.data_ptr<uint8_t>();
  return ComputeTelemetry(std::vector<double>(qd, qd + qc.numel()), std::vector<double>(rd, rd + rc.numel()),
                          std::vector<uint8_t>(bd, bd + bc.numel()));
}

// The bytes of `generated` (not empty) as [n] int64.
torch::Tensor GeneratedBytes(const std::string& generated) {
  if (generated.empty()) throw InternalError("telemetry of a generation: nothing generated");
  torch::Tensor y = torch::empty({static_cast<int64_t>(generated.size())}, torch::kUInt8);
  std::memcpy(y.data_ptr(), generated.data(), generated.size());
  return y.to(torch::kLong);
}

torch::Tensor Reference(const std::string& text) {
  const std::vector<double> p = ReferenceByteDistribution(text);
  return torch::tensor(p, torch::kDouble);
}

}  // namespace

Telemetry TextTelemetry(models::ByteModel& model, std::string_view text, int64_t context, torch::Device device) {
  const auto t0 = std::chrono::steady_clock::now();
  if (text.size() < 2) throw InternalError("TextTelemetry: the text has no byte to predict");
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<torch::Tensor> qs, ys;
  for (uint64_t pos = 0; pos + 1 < text.size(); pos += static_cast<uint64_t>(context)) {
    const int64_t len = std::min<int64_t>(context, static_cast<int64_t>(text.size() - 1 - pos));
    const torch::Tensor w = BytesTensor({text.data() + pos}, len + 1, device);
    const torch::Tensor y = w.narrow(1, 1, len);
    qs.push_back(model.BitProbabilities(w.narrow(1, 0, len), y).reshape({-1, 8}).to(torch::kCPU));
    ys.push_back(y.reshape(-1).to(torch::kCPU));
  }
  if (was_training) model.train();
  const torch::Tensor q = torch::cat(qs), y = torch::cat(ys);
  const torch::Tensor ref = Reference(std::string(text));
  const torch::Tensor r = models::ByteModel::BitConditionals(ref.unsqueeze(0).expand({y.size(0), 256}), y);
  Telemetry t = FromTensors(q, r, q > 0.5);
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return t;
}

Telemetry GenerationTelemetry(const torch::Tensor& probs, const std::string& generated,
                              const std::string& reference_text) {
  return BitTelemetry(models::ByteModel::BitConditionals(probs, GeneratedBytes(generated)), generated, reference_text);
}

Telemetry BitTelemetry(const torch::Tensor& q, const std::string& generated, const std::string& reference_text) {
  const torch::Tensor y = GeneratedBytes(generated);
  const torch::Tensor r =
      models::ByteModel::BitConditionals(Reference(reference_text).unsqueeze(0).expand({y.size(0), 256}), y);
  const torch::Tensor bits = torch::div(y.unsqueeze(-1), torch::tensor({128, 64, 32, 16, 8, 4, 2, 1}), "floor")
                                 .remainder(2);  // the generated bits themselves
  return FromTensors(q, r, bits);
}

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
  r.bound = model.Denoises();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace bitbyte::train
