#include "models/cpu_kernels.h"

#include <cstdlib>
#include <string>

#include "base/cpu.h"

namespace bitbyte::models::kernels {

Isa CpuIsa() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const Isa isa = [] {
    const char* cap = std::getenv("BITBYTE_KERNEL_ISA");
    const std::string want = cap ? cap : "";
    if (want == "base") return Isa::kBase;
    const cpu::Features& f = cpu::This();
    const bool avx2 = f.avx2 && f.fma;
    if (want == "avx2") return avx2 ? Isa::kAvx2 : Isa::kBase;
    if (f.avx512f && f.avx512vl && f.avx512dq && f.avx512bw) return Isa::kAvx512;
    return avx2 ? Isa::kAvx2 : Isa::kBase;
  }();
  return isa;
#else
  return Isa::kBase;
#endif
}

}  // namespace bitbyte::models::kernels
