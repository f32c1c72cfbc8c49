#include "models/blas_choice.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace bitbyte::models {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

int OpenBlasCoreRank(const std::string& core) {
  const std::string c = Lower(core);
  for (const char* n : {"skylakex", "cooperlake", "sapphirerapids"})
    if (c == n) return 3;
  for (const char* n : {"haswell", "zen", "excavator"})
    if (c == n) return 2;
  for (const char* n : {"sandybridge", "bulldozer", "piledriver", "steamroller"})
    if (c == n) return 1;
  for (const char* n : {"katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn",
                        "dunnington", "nehalem", "athlon", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat"})
    if (c == n) return 0;
  return -1;
}

std::string PreferredOpenBlasCore(const cpu::Features& f) {
  if (f.Avx512()) return "SkylakeX";
  if (f.avx2 && f.fma) return "Haswell";
  return "";
}

BlasDecision DecideBlasCore(const char* env_core, const char* marker, const std::string& openblas_core,
                            const cpu::Features& f) {
  BlasDecision d;
  const std::string want = PreferredOpenBlasCore(f);
  const std::string m = marker ? marker : "";
  if (env_core != nullptr && *env_core != '\0') {
    d.core = env_core;
    if (m.rfind("bitbyte:", 0) == 0) {
      d.chosen_by = "bitbyte";
      d.detail = "OpenBLAS chose " + m.substr(8) + " on " + f.Summary();
    } else if (m.rfind("fallback:", 0) == 0) {
      d.chosen_by = "OpenBLAS";
      d.detail = "bitbyte's choice " + m.substr(9) + " failed the GEMM self-check";
    } else {
      d.chosen_by = "environment";
      d.detail = "OPENBLAS_CORETYPE=" + d.core;
      if (!want.empty() && OpenBlasCoreRank(d.core) >= 0 && OpenBlasCoreRank(d.core) < OpenBlasCoreRank(want))
        d.detail +=
            "; this CPU also runs " + want + " kernels: unset OPENBLAS_CORETYPE to let OpenBLAS and bitbyte choose";
    }
    return d;
  }
  d.core = openblas_core;
  d.chosen_by = "OpenBLAS";
  if (openblas_core.empty()) {
    d.detail = "LibTorch does not use OpenBLAS";
    return d;
  }
  const int have = OpenBlasCoreRank(openblas_core);
  if (!want.empty() && have >= 0 && have < OpenBlasCoreRank(want)) {
    d.reexec = true;
    d.core = want;
    d.chosen_by = "bitbyte";
    d.detail = "OpenBLAS chose " + openblas_core + " on " + f.Summary();
    return d;
  }
  d.detail = "its own choice on " + f.Summary();
  return d;
}

std::string UserOpenBlasCore() {
  if (std::getenv(kBlasChoiceMarker) != nullptr) return "";  // bitbyte re-ran itself: the user set none
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  return env != nullptr ? env : "";
}

}  // namespace bitbyte::models
