#pragma once
// Small numeric helpers shared by the reports, the benchmarks and the graph export.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace bitbyte {

// The median of the finite values (the mean of the two middle ones for an even count); NaN when
// there is none.
inline double Median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// printf of one double ("%.3f" ...), as a string.
inline std::string FormatDouble(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace bitbyte
