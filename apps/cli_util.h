#pragma once
// Small helpers shared by the bitbyte subcommands.
#include <cstdint>
#include <string>

namespace bitbyte::cli {

// "1048576", "64K", "1M", "2MiB", "1G" (binary units). Throws std::invalid_argument naming the option.
uint64_t ParseSize(const std::string& text, const std::string& option);

std::string Hex64(uint64_t v);

}  // namespace bitbyte::cli
