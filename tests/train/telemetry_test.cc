// The telemetry formulas (train/telemetry.h) against hand-computed values, the LZ76 parse against
// a brute-force one on random bits, and the gate's verdicts.
#include "train/telemetry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace bitbyte::train {
namespace {

std::vector<uint8_t> BitsOf(const std::string& s) {
  std::vector<uint8_t> b;
  for (char c : s) b.push_back(c == '1');
  return b;
}

// LZ76 by its definition: from position l, the phrase is the longest prefix of s[l..] that
// starts somewhere before l (it may run into the phrase itself), plus one symbol (or to the end).
int64_t BruteLz76(const std::vector<uint8_t>& s) {
  const size_t n = s.size();
  int64_t phrases = 0;
  size_t l = 0;
  while (l < n) {
    size_t best = 0;
    for (size_t j = 0; j < l; ++j) {
      size_t k = 0;
      while (l + k < n && s[j + k] == s[l + k]) ++k;
      best = std::max(best, k);
    }
    ++phrases;
    l += best + 1;
  }
  return phrases;
}

TEST(Telemetry, HandComputedValues) {
  EXPECT_DOUBLE_EQ(BinaryEntropy(0.5), 1.0);
  EXPECT_DOUBLE_EQ(BinaryEntropy(0.0), 0.0);
  EXPECT_DOUBLE_EQ(BinaryEntropy(1.0), 0.0);
  EXPECT_NEAR(BinaryEntropy(0.25), 0.8112781244591328, 1e-15);   // -(1/4 log2 1/4 + 3/4 log2 3/4)
  EXPECT_NEAR(BinaryKl(0.5, 0.25), 0.20751874963942190, 1e-15);  // 1/2 log2 2 + 1/2 log2 (2/3)
  EXPECT_DOUBLE_EQ(BinaryKl(0.3, 0.3), 0.0);
  // Kaspar and Schuster's example: 0 | 001 | 10 | 100 | 1000 | 101.
  EXPECT_EQ(Lz76Phrases(BitsOf("0001101001000101")), 6);
  EXPECT_EQ(Lz76Phrases(BitsOf("00000000")), 2);  // 0 | 0000000
  EXPECT_EQ(Lz76Phrases(BitsOf("01010101")), 3);  // 0 | 1 | 010101
  EXPECT_DOUBLE_EQ(NormalisedLz76(BitsOf("0001101001000101")), 6.0 * 4 / 16);
  // K, C, S of two bits.
  const Telemetry t = ComputeTelemetry({0.5, 0.25}, {0.5, 0.5}, {0, 1});
  EXPECT_NEAR(t.k, 1 - (1 + 0.8112781244591328) / 2, 1e-15);
  EXPECT_DOUBLE_EQ(t.c, 1.0);  // "01": 2 phrases x log2(2) / 2
  EXPECT_NEAR(t.s, std::exp2(-0.20751874963942190 / 2), 1e-15);
  EXPECT_EQ(t.bits, 2);
  // Extremes: certain and right everywhere (K 1, S 1); unsure everywhere (K 0).
  const Telemetry sure = ComputeTelemetry({1.0, 0.0, 1.0}, {1.0, 0.0, 1.0}, {1, 0, 1});
  EXPECT_DOUBLE_EQ(sure.k, 1.0);
  EXPECT_NEAR(sure.s, 1.0, 1e-9);  // q is kept 1e-12 from 0 and 1
  EXPECT_DOUBLE_EQ(ComputeTelemetry({0.5, 0.5}, {0.9, 0.1}, {0, 0}).k, 0.0);
}

TEST(Telemetry, Lz76EqualsItsDefinitionOnRandomBits) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 300; ++i) {
    const size_t n = 1 + rng() % 200;
    const int bias = static_cast<int>(rng() % 5);  // from all zeros to fair coins
    std::vector<uint8_t> b(n);
    for (auto& v : b) v = static_cast<int>(rng() % 8) < bias * 2 ? 1 : 0;
    EXPECT_EQ(Lz76Phrases(b), BruteLz76(b)) << "n " << n << " bias " << bias;
  }
  // Random bits score near 1, a constant sequence near 0.
  std::vector<uint8_t> fair(1 << 14), constant(1 << 14, 1);
  for (auto& v : fair) v = rng() & 1;
  EXPECT_GT(NormalisedLz76(fair), 0.85);
  EXPECT_LT(NormalisedLz76(constant), 0.01);
}

TEST(Telemetry, ReferenceDistributionIsSmoothedFrequencies) {
  const std::vector<double> p = ReferenceByteDistribution("aab");
  double sum = 0;
  for (double v : p) sum += v;
  EXPECT_NEAR(sum, 1.0, 1e-13);  // 256 terms of rounding
  EXPECT_DOUBLE_EQ(p['a'], 2.5 / 131);
  EXPECT_DOUBLE_EQ(p['b'], 1.5 / 131);
  EXPECT_DOUBLE_EQ(p['z'], 0.5 / 131);
}

TEST(Telemetry, GateNamesTheFirstValueOutsideItsBounds) {
  pb::TelemetryConfig g;
  Telemetry t;
  t.k = 0.5;
  t.c = 0.7;
  t.s = 0.3;
  EXPECT_EQ(GateViolation(g, t), "");  // the defaults let everything through
  g.set_k_max(0.4);
  EXPECT_EQ(GateViolation(g, t), "K 0.5 above telemetry.k_max 0.4");
  g.set_k_max(1);
  g.set_c_min(0.75);
  EXPECT_EQ(GateViolation(g, t), "C 0.7 below telemetry.c_min 0.75");
  g.set_c_min(0);
  g.set_s_min(0.31);
  EXPECT_EQ(GateViolation(g, t), "S 0.3 below telemetry.s_min 0.31");
  g.set_s_min(0.3);  // bounds are inclusive
  EXPECT_EQ(GateViolation(g, t), "");
}

}  // namespace
}  // namespace bitbyte::train
