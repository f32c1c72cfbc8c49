// The BLAS core decision (models/blas_choice.h): an environment value is kept, a fallback core
// below what the CPU runs is replaced by the CPU's best, and OpenBLAS's own good choice stays.
#include "models/blas_choice.h"

#include <gtest/gtest.h>

namespace bitbyte::models {
namespace {

cpu::Features Avx512() {
  cpu::Features f;
  f.vendor = "GenuineIntel";
  f.avx = f.avx2 = f.fma = true;
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512cd = true;
  return f;
}
cpu::Features Avx2() {
  cpu::Features f;
  f.vendor = "AuthenticAMD";
  f.avx = f.avx2 = f.fma = true;
  return f;
}

TEST(BlasChoice, RanksAndPreferredCores) {
  EXPECT_EQ(OpenBlasCoreRank("Prescott"), 0);
  EXPECT_EQ(OpenBlasCoreRank("SANDYBRIDGE"), 1);
  EXPECT_EQ(OpenBlasCoreRank("Zen"), 2);
  EXPECT_EQ(OpenBlasCoreRank("Haswell"), 2);
  EXPECT_EQ(OpenBlasCoreRank("Cooperlake"), 3);
  EXPECT_EQ(OpenBlasCoreRank("SkylakeX"), 3);
  EXPECT_EQ(OpenBlasCoreRank("Marvel"), -1);
  EXPECT_EQ(PreferredOpenBlasCore(Avx512()), "SkylakeX");
  EXPECT_EQ(PreferredOpenBlasCore(Avx2()), "Haswell");
  cpu::Features partial = Avx512();
  partial.avx512vl = false;  // not the whole AVX-512 set SkylakeX kernels use
  EXPECT_EQ(PreferredOpenBlasCore(partial), "Haswell");
  EXPECT_EQ(PreferredOpenBlasCore(cpu::Features{}), "");
}

TEST(BlasChoice, AFallbackCoreIsReplacedByTheCpusBest) {
  // Intel Xeon model 207 with OpenBLAS 0.3.21: Prescott (63 against 286 GFLOPS with SkylakeX).
  BlasDecision d = DecideBlasCore(nullptr, nullptr, "Prescott", Avx512());
  EXPECT_TRUE(d.reexec);
  EXPECT_EQ(d.core, "SkylakeX");
  EXPECT_EQ(d.chosen_by, "bitbyte");
  d = DecideBlasCore(nullptr, nullptr, "Sandybridge", Avx2());
  EXPECT_TRUE(d.reexec);
  EXPECT_EQ(d.core, "Haswell");
  // After the re-run: the core is in the environment, with bitbyte's marker.
  d = DecideBlasCore("SkylakeX", "bitbyte:Prescott", "SkylakeX", Avx512());
  EXPECT_FALSE(d.reexec);
  EXPECT_EQ(d.chosen_by, "bitbyte");
  EXPECT_NE(d.detail.find("Prescott"), std::string::npos) << d.detail;
}

TEST(BlasChoice, OpenBlasOwnGoodChoiceAndTheEnvironmentAreKept) {
  for (const char* own : {"Cooperlake", "SkylakeX", "Haswell", "Zen"}) {
    const BlasDecision d = DecideBlasCore(nullptr, nullptr, own, Avx2());
    EXPECT_FALSE(d.reexec) << own;
    EXPECT_EQ(d.core, own);
    EXPECT_EQ(d.chosen_by, "OpenBLAS");
  }
  EXPECT_FALSE(DecideBlasCore(nullptr, nullptr, "Marvel", Avx512()).reexec);  // unknown: not second-guessed
  EXPECT_FALSE(DecideBlasCore(nullptr, nullptr, "", Avx512()).reexec);        // not OpenBLAS
  // Set by the environment, even below what the CPU runs: kept, with a hint.
  const BlasDecision d = DecideBlasCore("Haswell", nullptr, "Haswell", Avx512());
  EXPECT_FALSE(d.reexec);
  EXPECT_EQ(d.core, "Haswell");
  EXPECT_EQ(d.chosen_by, "environment");
  EXPECT_NE(d.detail.find("SkylakeX"), std::string::npos) << d.detail;
  // bitbyte's choice failed the self-check: OpenBLAS's own core, said so.
  const BlasDecision f = DecideBlasCore("Prescott", "fallback:SkylakeX", "Prescott", Avx512());
  EXPECT_FALSE(f.reexec);
  EXPECT_EQ(f.chosen_by, "OpenBLAS");
  EXPECT_NE(f.detail.find("SkylakeX"), std::string::npos) << f.detail;
}

}  // namespace
}  // namespace bitbyte::models
