#include "train/precision.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/cpu.h"
#include "base/error.h"
#include "base/file_io.h"
#include "base/hash.h"
#include "models/blas.h"
#include "models/model.h"
#include "models/registry.h"
#include "train/config.h"
#include "train/trainer.h"

namespace bitbyte::train {
namespace {

using json = nlohmann::json;

std::string Hex(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string ProbeKey(const pb::TrainConfig& config, torch::Device device, int threads) {
  std::string model;
  config.model().SerializeToString(&model);
  return cpu::This().Summary() + "; torch " + TORCH_VERSION + "; openblas " + models::OpenBlasCore() + "; threads " +
         std::to_string(threads) + "; device " + device.str() + "; batch " +
         std::to_string(config.data().batch_size()) + "x" + std::to_string(config.data().seq_len()) + "; model " +
         Hex(Xxh64(model));
}

std::string Choose(double fp32_s, double bf16_s) { return fp32_s >= kBf16Margin * bf16_s ? "bf16" : "fp32"; }

// The cache file's entries, or an empty object when it is absent or unreadable (a cache is
// never worth failing a run for: it is measured again and rewritten).
json LoadCache(const std::string& path) {
  io::FileSystem& fs = io::Posix();
  if (path.empty() || !fs.Exists(path)) return json::object();
  try {
    json j = json::parse(io::ReadFile(fs, path), nullptr, false);
    return j.is_object() ? j : json::object();
  } catch (const Error&) {
    return json::object();
  }
}

}  // namespace

std::string PrecisionChoice::Describe() const {
  if (chosen_by == "config") return precision + " (from the config)";
  if (chosen_by == "qat") return precision + " (auto: as the quantization-aware steps, which are all of them)";
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s (auto, %s: a forward + backward pass takes %.3f s in fp32, %.3f s in bf16)",
                precision.c_str(), chosen_by.c_str(), fp32_s, bf16_s);
  return buf;
}

std::pair<double, double> MeasurePrecisions(const pb::TrainConfig& config, torch::Device device) {
  std::shared_ptr<models::ByteModel> model = models::CreateModel(config.model());
  model->to(device);
  model->train();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(config.seed());
  const torch::Tensor bytes =
      torch::randint(0, 256, {config.data().batch_size(), config.data().seq_len() + 1}, gen, torch::kLong).to(device);
  const torch::Tensor x = bytes.narrow(1, 0, config.data().seq_len());
  const torch::Tensor y = bytes.narrow(1, 1, config.data().seq_len());
  auto pass = [&](bool bf16) {
    const auto t0 = std::chrono::steady_clock::now();
    ForwardLoss(*model, x, y, device, bf16).backward();
    // Reading a value waits for the device (CUDA); on the CPU the pass has finished already.
    (void)model->parameters().front().grad().sum().item<double>();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
    return s;
  };
  // One untimed pass each (allocation, kernel set-up), then alternate: the best of up to 3 each,
  // as many as fit in about 5 s, at least 1.
  double fp32 = pass(false), bf16 = pass(true);
  const int rounds = std::max(1.0, std::min(3.0, 5.0 / std::max(1e-3, fp32 + bf16)));
  fp32 = bf16 = 1e30;
  for (int i = 0; i < rounds; ++i) {
    fp32 = std::min(fp32, pass(false));
    bf16 = std::min(bf16, pass(true));
  }
  return {fp32, bf16};
}

PrecisionChoice ResolvePrecision(const pb::TrainConfig& config, torch::Device device, int threads) {
  PrecisionChoice c;
  if (config.precision() != "auto") {
    c.precision = config.precision();
    c.chosen_by = "config";
    return c;
  }
  const std::string dir = io::UserCacheDir();
  c.cache_file = dir.empty() ? "" : io::JoinPath(dir, kPrecisionProbeFile);
  const std::string key = ProbeKey(config, device, threads);
  json cache = LoadCache(c.cache_file);
  const json* hit = cache.contains(key) ? &cache[key] : nullptr;
  if (hit != nullptr && hit->is_object() && hit->value("fp32_s", 0.0) > 0 && hit->value("bf16_s", 0.0) > 0) {
    c.fp32_s = (*hit)["fp32_s"].get<double>();
    c.bf16_s = (*hit)["bf16_s"].get<double>();
    c.chosen_by = "cached probe";
  } else {
    std::tie(c.fp32_s, c.bf16_s) = MeasurePrecisions(config, device);
    c.chosen_by = "probe";
    if (!c.cache_file.empty()) {
      cache[key] = {{"fp32_s", c.fp32_s}, {"bf16_s", c.bf16_s}, {"choice", Choose(c.fp32_s, c.bf16_s)}};
      try {
        io::FileSystem& fs = io::Posix();  // not the run's state: outside BITBYTE_CRASH_AFTER_WRITES's count
        fs.CreateDirs(dir);
        io::WriteFileAtomic(fs, c.cache_file, cache.dump(1) + "\n");
      } catch (const Error& e) {
        std::fprintf(stderr, "warning: cannot cache the precision probe: %s\n", e.what());
      }
    }
  }
  c.precision = Choose(c.fp32_s, c.bf16_s);
  return c;
}

std::string PhasePrecisions::Describe() const {
  return has_qat ? fp.Describe() + "; quantization-aware steps: " + qat.Describe() : fp.Describe();
}

PhasePrecisions ResolvePhasePrecisions(const pb::TrainConfig& config, torch::Device device, int threads) {
  PhasePrecisions r;
  r.has_qat = config.model().qat().scheme() != "none";
  if (!r.has_qat) {
    r.fp = r.qat = ResolvePrecision(config, device, threads);
    return r;
  }
  pb::TrainConfig quantized = config;
  quantized.set_precision(config.qat_precision());
  quantized.mutable_model()->mutable_qat()->set_start_step(0);  // the probe's forward is the same for any
  r.qat = ResolvePrecision(quantized, device, threads);
  if (config.model().qat().start_step() == 0 && config.precision() == "auto") {
    r.fp = r.qat;
    r.fp.chosen_by = "qat";
    return r;
  }
  pb::TrainConfig plain = config;
  plain.mutable_model()->clear_qat();
  FillDefaults(plain);
  r.fp = ResolvePrecision(plain, device, threads);
  return r;
}

}  // namespace bitbyte::train
