#include "base/numbers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace bitbyte {
namespace {

TEST(Median, IsTheMiddleOfTheFiniteValuesWhateverTheirOrder) {
  EXPECT_EQ(Median({3, 1, 2}), 2);
  EXPECT_EQ(Median({4, 1, 2, 3}), 2.5);
  EXPECT_TRUE(std::isnan(Median({})));
  EXPECT_TRUE(std::isnan(Median({NAN, INFINITY})));
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<double> finite, with_junk;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) finite.push_back(static_cast<double>(rng() % 7));
    with_junk = finite;
    for (int i = static_cast<int>(rng() % 4); i > 0; --i)
      with_junk.insert(with_junk.begin() + static_cast<long>(rng() % (with_junk.size() + 1)), i % 2 ? NAN : -INFINITY);
    const double m = Median(with_junk);
    EXPECT_EQ(m, Median(finite));
    // At least half the values are <= m and at least half are >= m.
    size_t le = 0, ge = 0;
    for (double x : finite) {
      le += x <= m;
      ge += x >= m;
    }
    EXPECT_GE(2 * le, finite.size());
    EXPECT_GE(2 * ge, finite.size());
  }
}

TEST(FormatDouble, PrintsWithTheFormat) {
  EXPECT_EQ(FormatDouble("%.2f", 3.14159), "3.14");
  EXPECT_EQ(FormatDouble("%g", 1e-9), "1e-09");
}

}  // namespace
}  // namespace bitbyte
