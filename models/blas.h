#pragma once
// Applying the BLAS core decision (models/blas_choice.h) in bitbyte-ml, and guarding it.
// OpenBLAS reads OPENBLAS_CORETYPE once, when the process loads it: to change the core the
// process runs itself again (execv of /proc/self/exe, same arguments) with the variable set.
#include <string>

#include "models/blas_choice.h"

namespace bitbyte::models {

// Decides, and re-runs the process when bitbyte picks another core. Call first in main.
void ChooseBlasCore(char** argv);
// The decision in effect (after ChooseBlasCore; before it: OpenBLAS's own).
const BlasDecision& BlasInUse();
// The core OpenBLAS runs now (openblas_get_corename); "" when LibTorch does not use OpenBLAS.
std::string OpenBlasCore();

// torch::mm on float32 shapes with tails (1..67 rows and columns, transposed operands too)
// against a double-precision reference: "" when every result is within tolerance, else which
// shape differed and by how much.
std::string GemmSelfCheck();

// For the model commands: runs GemmSelfCheck. When bitbyte's own choice fails it, the process
// runs again on OpenBLAS's own core; when any other core fails it, throws bitbyte::Error naming it.
void CheckBlas(char** argv);

// Names the threads of the calling thread's OpenMP team (LibTorch's intra-op threads, not the
// caller itself) `name`, for per-thread CPU figures (base/thread_cpu.h).
void NameTorchThreads(const std::string& name);

}  // namespace bitbyte::models
