#include "train/telemetry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "base/error.h"

namespace bitbyte::train {

double BinaryEntropy(double p) {
  if (p <= 0 || p >= 1) return 0;
  return -(p * std::log2(p) + (1 - p) * std::log2(1 - p));
}

double BinaryKl(double r, double q) {
  q = std::clamp(q, 1e-12, 1 - 1e-12);
  double kl = 0;
  if (r > 0) kl += r * std::log2(r / q);
  if (r < 1) kl += (1 - r) * std::log2((1 - r) / (1 - q));
  return std::max(kl, 0.0);
}

int64_t Lz76Phrases(const std::vector<uint8_t>& s) {
  // Kaspar & Schuster (1987): i scans candidate starts of an earlier copy, k the length matched,
  // l the start of the current phrase, k_max the longest match seen for it.
  const int64_t n = static_cast<int64_t>(s.size());
  if (n == 0) return 0;
  if (n == 1) return 1;
  int64_t c = 1, l = 1, i = 0, k = 1, k_max = 1;
  while (true) {
    if (s[i + k - 1] == s[l + k - 1]) {
      ++k;
      if (l + k > n) {
        ++c;
        break;
      }
    } else {
      k_max = std::max(k, k_max);
      ++i;
      if (i == l) {  // no earlier start copies more: the phrase ends here
        ++c;
        l += k_max;
        if (l + 1 > n) break;
        i = 0;
        k = 1;
        k_max = 1;
      } else {
        k = 1;
      }
    }
  }
  return c;
}

double NormalisedLz76(const std::vector<uint8_t>& bits) {
  const double n = static_cast<double>(bits.size());
  if (bits.size() < 2) return 0;
  return static_cast<double>(Lz76Phrases(bits)) * std::log2(n) / n;
}

Telemetry ComputeTelemetry(const std::vector<double>& q, const std::vector<double>& r, const std::vector<uint8_t>& b) {
  if (q.empty() || q.size() != r.size() || q.size() != b.size())
    throw InternalError("ComputeTelemetry: q, r and b must have the same, non-zero length");
  Telemetry t;
  t.bits = static_cast<int64_t>(q.size());
  double h = 0, kl = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    h += BinaryEntropy(q[i]);
    kl += BinaryKl(r[i], q[i]);
  }
  const double n = static_cast<double>(q.size());
  t.k = 1 - h / n;
  t.c = NormalisedLz76(b);
  t.s = std::exp2(-kl / n);
  return t;
}

std::vector<double> ReferenceByteDistribution(const std::string& text) {
  std::vector<double> p(256, 0.5);
  for (unsigned char ch : text) p[ch] += 1;
  const double total = static_cast<double>(text.size()) + 128.0;
  for (double& v : p) v /= total;
  return p;
}

namespace {

std::string Outside(const char* name, double v, const char* side, const char* field, double bound) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s %.4g %s telemetry.%s %.4g", name, v, side, field, bound);
  return buf;
}

}  // namespace

std::string GateViolation(const pb::TelemetryConfig& g, const Telemetry& t) {
  if (t.k < g.k_min()) return Outside("K", t.k, "below", "k_min", g.k_min());
  if (t.k > g.k_max()) return Outside("K", t.k, "above", "k_max", g.k_max());
  if (t.c < g.c_min()) return Outside("C", t.c, "below", "c_min", g.c_min());
  if (t.c > g.c_max()) return Outside("C", t.c, "above", "c_max", g.c_max());
  if (t.s < g.s_min()) return Outside("S", t.s, "below", "s_min", g.s_min());
  if (t.s > g.s_max()) return Outside("S", t.s, "above", "s_max", g.s_max());
  return "";
}

}  // namespace bitbyte::train
