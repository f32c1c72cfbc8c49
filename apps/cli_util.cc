#include "apps/cli_util.h"

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <stdexcept>

namespace bitbyte::cli {

uint64_t ParseSize(const std::string& text, const std::string& option) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) throw std::invalid_argument(option + ": '" + text + "' is not a size (examples: 65536, 64K, 1M, 2G)");
  uint64_t n = 0;
  try {
    n = std::stoull(text.substr(0, i));
  } catch (const std::out_of_range&) {
    throw std::invalid_argument(option + ": '" + text + "' is too large");
  }
  std::string unit = text.substr(i);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  uint64_t mul = 1;
  if (unit.empty() || unit == "B") mul = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB") mul = uint64_t{1} << 10;
  else if (unit == "M" || unit == "MB" || unit == "MIB") mul = uint64_t{1} << 20;
  else if (unit == "G" || unit == "GB" || unit == "GIB") mul = uint64_t{1} << 30;
  else throw std::invalid_argument(option + ": unknown unit '" + text.substr(i) + "' (use K, M or G)");
  if (n > UINT64_MAX / mul) throw std::invalid_argument(option + ": '" + text + "' is too large");
  return n * mul;
}

std::string Hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace bitbyte::cli
