#include "base/cpu.h"

#include <cpuid.h>

#include <cstdint>
#include <cstring>
#include <utility>

namespace bitbyte::cpu {
namespace {

uint64_t Xgetbv() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t{edx} << 32) | eax;
}

Features Probe() {
  Features f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;
  __get_cpuid(1, &a, &b, &c, &d);
  const unsigned base_family = (a >> 8) & 0xf, ext_family = (a >> 20) & 0xff;
  const unsigned base_model = (a >> 4) & 0xf, ext_model = (a >> 16) & 0xf;
  f.family = static_cast<int>(base_family == 0xf ? base_family + ext_family : base_family);
  f.model = static_cast<int>(base_family == 0x6 || base_family == 0xf ? (ext_model << 4) + base_model : base_model);
  const bool osxsave = c & (1u << 27);
  const uint64_t xcr0 = osxsave ? Xgetbv() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;                 // XMM and YMM state
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;         // XTILECFG, XTILEDATA
  f.avx = os_avx && (c & (1u << 28));
  f.fma = f.avx && (c & (1u << 12));
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f.avx2 = f.avx && (b & (1u << 5));
    f.avx512f = os_avx512 && (b & (1u << 16));
    f.avx512dq = f.avx512f && (b & (1u << 17));
    f.avx512cd = f.avx512f && (b & (1u << 28));
    f.avx512bw = f.avx512f && (b & (1u << 30));
    f.avx512vl = f.avx512f && (b & (1u << 31));
    f.avx512_vnni = f.avx512f && (c & (1u << 11));
    f.amx_bf16 = os_amx && (d & (1u << 22));
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    f.avx512_bf16 = f.avx512f && (a1 & (1u << 5));
  }
  return f;
}

}  // namespace

std::string Features::Summary() const {
  std::string s = vendor + " family " + std::to_string(family) + " model " + std::to_string(model) + ":";
  const std::pair<const char*, bool> flags[] = {{"avx2", avx2},
                                                {"fma", fma},
                                                {"avx512", Avx512()},
                                                {"avx512_bf16", avx512_bf16},
                                                {"avx512_vnni", avx512_vnni},
                                                {"amx_bf16", amx_bf16}};
  bool any = false;
  for (const auto& [name, on] : flags)
    if (on) {
      s += std::string(" ") + name;
      any = true;
    }
  if (!any) s += " (no AVX2)";
  return s;
}

const Features& This() {
  static const Features f = Probe();
  return f;
}

}  // namespace bitbyte::cpu
