// The GEMM self-check on the OpenBLAS core in use (ctest runs it once per core this CPU runs,
// forced with OPENBLAS_CORETYPE: blas_Prescott, blas_Haswell, blas_SkylakeX), and that the forced
// core is the one OpenBLAS runs and the one reported.
#include "models/blas.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

namespace bitbyte::models {
namespace {

TEST(Blas, GemmSelfCheckPassesOnTheCoreInUse) {
  const std::string bad = GemmSelfCheck();
  EXPECT_EQ(bad, "") << "OpenBLAS core " << BlasInUse().core;
  const char* forced = std::getenv("BITBYTE_TEST_BLAS_CORE");
  if (forced != nullptr) {
    EXPECT_EQ(BlasInUse().core, forced);
    EXPECT_EQ(BlasInUse().chosen_by, "environment");
  }
}

}  // namespace
}  // namespace bitbyte::models
