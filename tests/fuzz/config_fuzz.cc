// libFuzzer target: arbitrary bytes as a text config (`--config FILE`, a run's config.txtpb).
// ParseConfigText, the overrides (`--set`), FillDefaults and ValidateConfig must accept the
// config or throw UsageError (their documented error); anything else (a crash, a
// sanitizer report, another exception) is a bug. A config that passes must print
// (ConfigToText) to text that parses back to the same config: that is how config.txtpb is
// written and read again on `train --resume`.
//
// Lines of the input that start with "#set " (comments to the parser) are also applied, in
// order, as `--set` overrides: "#set optim.lr=0.01".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "base/error.h"
#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  bitbyte::train::pb::TrainConfig config;
  try {
    config = bitbyte::train::ParseConfigText(text, "<fuzz>");
    for (size_t at = 0; at < text.size();) {
      size_t end = text.find('\n', at);
      if (end == std::string::npos) end = text.size();
      if (text.compare(at, 5, "#set ") == 0) bitbyte::train::ApplyOverride(config, text.substr(at + 5, end - at - 5));
      at = end + 1;
    }
    bitbyte::train::FillDefaults(config);
    bitbyte::train::ValidateConfig(config);
  } catch (const bitbyte::UsageError&) {
    return 0;
  }
  const std::string printed = bitbyte::train::ConfigToText(config);
  bitbyte::train::pb::TrainConfig again;
  try {
    again = bitbyte::train::ParseConfigText(printed, "<printed>");
  } catch (const bitbyte::UsageError& e) {
    std::fprintf(stderr, "a valid config prints to text that does not parse: %s\n%s", e.what(), printed.c_str());
    std::abort();
  }
  bitbyte::train::FillDefaults(again);
  if (again.SerializeAsString() != config.SerializeAsString() ||
      !bitbyte::train::IncompatibleField(config, again).empty()) {
    std::fprintf(stderr, "a valid config does not survive printing and parsing:\n%s", printed.c_str());
    std::abort();
  }
  return 0;
}
