#pragma once
// Checks the tracks' rules (models/*_track.cc) share: every error a UsageError naming the field.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "base/error.h"

namespace bitbyte::models::rules {

// `field` below model. ("bitbyte_lm.n_head").
[[noreturn]] inline void Bad(const std::string& field, const std::string& what) {
  throw UsageError("config field model." + field + ": " + what);
}

inline std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

inline void RequireRange(const std::string& field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    Bad(field, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
}

// A finite double in (lo, hi] (lo_open) or [lo, hi) (hi_open) or [lo, hi].
inline void RequireReal(const std::string& field, double v, double lo, double hi, bool lo_open, bool hi_open) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok)
    Bad(field, std::string("must be a finite number in ") + (lo_open ? "(" : "[") + Num(lo) + ", " + Num(hi) +
                   (hi_open ? ")" : "]") + ", got " + Num(v));
}

}  // namespace bitbyte::models::rules
