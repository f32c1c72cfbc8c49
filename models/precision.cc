#include "models/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace bitbyte::models {
namespace {

// LibTorch 2.4 replaced the per-device setters with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool Enabled(bool cuda) { return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU); }
void SetEnabled(bool cuda, bool on) { at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on); }
at::ScalarType Dtype(bool cuda) { return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU); }
void SetDtype(bool cuda, at::ScalarType t) { at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, t); }
#else
bool Enabled(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void SetEnabled(bool cuda, bool on) { cuda ? at::autocast::set_enabled(on) : at::autocast::set_cpu_enabled(on); }
at::ScalarType Dtype(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void SetDtype(bool cuda, at::ScalarType t) {
  cuda ? at::autocast::set_autocast_gpu_dtype(t) : at::autocast::set_autocast_cpu_dtype(t);
}
#endif

}  // namespace

bool CpuAutocastEnabled() { return Enabled(false); }

const char* PrecisionName(Precision p) { return p == Precision::kBf16 ? "bf16" : "fp32"; }

Bf16Scope::Bf16Scope(torch::Device device, bool on) : on_(on), cuda_(device.is_cuda()) {
  if (!on_) return;
  was_enabled_ = Enabled(cuda_);
  was_dtype_ = Dtype(cuda_);
  SetEnabled(cuda_, true);
  SetDtype(cuda_, at::kBFloat16);
  at::autocast::increment_nesting();
}

Bf16Scope::~Bf16Scope() {
  if (!on_) return;
  // The outermost scope drops the bf16 weight copies: the next step casts the updated weights.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetEnabled(cuda_, was_enabled_);
  SetDtype(cuda_, was_dtype_);
}

}  // namespace bitbyte::models
