#pragma once
// Which OpenBLAS kernels ("core") LibTorch's matmuls run on, decided by bitbyte rather than by
// luck (docs/benchmarks.md): OpenBLAS 0.3.21 falls back to its SSE3 "Prescott" kernels on CPUs it
// does not know (measured 63 against 286 GFLOPS with the right kernels on an Intel Xeon model
// 207). The decision itself, Torch-free and testable; models/blas.h applies it.
#include <string>

#include "base/cpu.h"

namespace bitbyte::models {

// 0: SSE kernels, 1: AVX, 2: AVX2 + FMA, 3: AVX-512; -1: a name bitbyte does not know.
int OpenBlasCoreRank(const std::string& core);

// The core bitbyte wants on a CPU with these features: "SkylakeX" with AVX-512 (F, BW, VL, DQ,
// CD), "Haswell" with AVX2 and FMA, "" otherwise (leave it to OpenBLAS).
std::string PreferredOpenBlasCore(const cpu::Features& f);

struct BlasDecision {
  bool reexec = false;    // run the process again with OPENBLAS_CORETYPE=core
  std::string core;       // the core in use, or the one to set
  std::string chosen_by;  // "environment", "bitbyte", "OpenBLAS"
  std::string detail;     // why, for the start line and run.json
};

// env_core: OPENBLAS_CORETYPE as the process got it (null: unset); marker: BITBYTE_BLAS_CHOSEN
// (set by bitbyte when it re-ran itself; null otherwise); openblas_core: what OpenBLAS runs now
// (openblas_get_corename; "" when LibTorch does not use OpenBLAS). A value the environment sets
// is kept (some set it because older OpenBLAS builds compute wrong results on their CPU).
BlasDecision DecideBlasCore(const char* env_core, const char* marker, const std::string& openblas_core,
                            const cpu::Features& f);

// The variable bitbyte sets ("bitbyte:CORE" or "fallback:CORE") when it runs itself again with
// an OPENBLAS_CORETYPE of its own choosing; its children inherit both.
inline constexpr char kBlasChoiceMarker[] = "BITBYTE_BLAS_CHOSEN";

// OPENBLAS_CORETYPE as the user's environment gave it ("" when unset): not bitbyte's own setting.
std::string UserOpenBlasCore();

}  // namespace bitbyte::models
