#include "models/blas.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "base/cpu.h"
#include "base/error.h"
#include "base/thread_cpu.h"
#include "models/linear.h"

namespace bitbyte::models {
namespace {

// OpenBLAS's own choice, as the decision sees it. Test hook (tests/cli/train_test.sh): what
// OpenBLAS would have chosen on a CPU it falls back on.
std::string OpenBlasCoreNow() {
  const char* pretend = std::getenv("BITBYTE_TEST_OPENBLAS_CORE");
  if (pretend != nullptr && std::getenv(kBlasChoiceMarker) == nullptr) return pretend;
  return OpenBlasCore();
}

BlasDecision& Decision() {
  static BlasDecision d =
      DecideBlasCore(std::getenv("OPENBLAS_CORETYPE"), std::getenv(kBlasChoiceMarker), OpenBlasCoreNow(), cpu::This());
  return d;
}

[[noreturn]] void RunAgain(char** argv) {
  ::execv("/proc/self/exe", argv);
  throw Error(std::string("cannot run bitbyte-ml again with OPENBLAS_CORETYPE set: ") + std::strerror(errno));
}

}  // namespace

void ChooseBlasCore(char** argv) {
  const BlasDecision& d = Decision();
  if (!d.reexec) return;
  ::setenv(kBlasChoiceMarker, ("bitbyte:" + OpenBlasCoreNow()).c_str(), 1);
  ::setenv("OPENBLAS_CORETYPE", d.core.c_str(), 1);
  RunAgain(argv);
}

const BlasDecision& BlasInUse() { return Decision(); }

std::string OpenBlasCore() {
  using CoreName = char* (*)();
  const auto core = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return core ? core() : "";
}

std::string GemmSelfCheck() {
  return CheckMatmul([](const torch::Tensor& a, const torch::Tensor& b) { return torch::mm(a, b); });
}

void CheckBlas(char** argv) {
  std::string bad = GemmSelfCheck();
  // Test hook (tests/cli/train_test.sh): the self-check fails on this core, as it would where a
  // BLAS build computes wrong results.
  const char* fails_on = std::getenv("BITBYTE_TEST_GEMM_FAILS_ON");
  if (fails_on != nullptr && Decision().core == fails_on) bad = "forced to fail on " + Decision().core;
  if (bad.empty()) return;
  const BlasDecision& d = Decision();
  const char* marker = std::getenv(kBlasChoiceMarker);
  const std::string m = marker ? marker : "";
  if (d.chosen_by == "bitbyte" && m.rfind("bitbyte:", 0) == 0 && m.size() > 8) {
    std::fprintf(stderr, "warning: OpenBLAS core %s failed the GEMM self-check (%s); running on %s\n", d.core.c_str(),
                 bad.c_str(), m.substr(8).c_str());
    ::setenv("OPENBLAS_CORETYPE", m.substr(8).c_str(), 1);
    ::setenv(kBlasChoiceMarker, ("fallback:" + d.core).c_str(), 1);
    RunAgain(argv);
  }
  throw Error("the matrix products of this LibTorch/BLAS (OpenBLAS core '" + d.core + "', " + d.chosen_by +
              ") are wrong on this CPU: " + bad + "; set OPENBLAS_CORETYPE to another core (e.g. Haswell)");
}

void NameTorchThreads(const std::string& name) {
  // One chunk per thread of the team (at::parallel_for is OpenMP here: models/ builds with -fopenmp).
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    if (at::get_thread_num() != 0) NameThisThread(name);
  });
}

}  // namespace bitbyte::models
