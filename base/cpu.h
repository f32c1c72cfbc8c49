#pragma once
// What this CPU can do, from cpuid (and xgetbv: whether the OS saves the vector registers), for
// choosing kernels: the machines bitbyte runs on change from one session to the next, and the
// fastest correct kernel with them (docs/benchmarks.md).
#include <string>

namespace bitbyte::cpu {

struct Features {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ...
  int family = 0, model = 0;
  bool avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512cd = false;
  bool avx512_bf16 = false, avx512_vnni = false, amx_bf16 = false;
  bool Avx512() const { return avx512f && avx512bw && avx512vl && avx512dq && avx512cd; }
  std::string Summary() const;  // "AuthenticAMD family 26 model 2: avx2 fma avx512 avx512_bf16 ..."
};

// This CPU (probed once).
const Features& This();

}  // namespace bitbyte::cpu
