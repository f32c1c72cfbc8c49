#pragma once
// run.json, the environment of a training run (threads, device, LibTorch, BLAS core, CPU, host,
// versions) and its data: "data" (the dataset directory, absolute) and "dataset_id" (decimal, in
// a string). One reader and one writer: the train job writes it at every start and reads it on
// resume; ReadRunDir (reports, top) reads it for display.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/file_io.h"

namespace bitbyte::runs {

struct RunJson {
  // Every value in file order, as text (strings as they are, anything else as JSON).
  std::vector<std::pair<std::string, std::string>> values;
  bool has_data = false;               // "data" is present ...
  std::string data;                    // ... and, when usable, a non-empty string ("" otherwise)
  std::optional<uint64_t> dataset_id;  // "dataset_id", when a decimal number in a string
  std::optional<int64_t> threads;      // "threads", when an integer
  // Fields present but unusable, each "\"data\" is not a directory name; ignoring it".
  std::vector<std::string> warnings;
};

// Parses run.json's text. std::nullopt, with *error set ("the file is empty", "it is not a JSON
// object"), when it is not a JSON object; never throws on what the text holds (a document nested
// deeper than limits allow is "not a JSON object").
std::optional<RunJson> ParseRunJson(std::string_view text, std::string* error);

// Writes run.json atomically through `fs`: the fields of `environment` (an object), then "data"
// and "dataset_id".
void WriteRunJson(io::FileSystem& fs, const std::string& path, const nlohmann::json& environment,
                  const std::string& data, uint64_t dataset_id);

// The deepest nesting of [ and { outside strings. nlohmann's parser and dump() recurse, so the
// readers of run files refuse a document nested deeper than kMaxJsonDepth before parsing it.
size_t JsonNestingDepth(std::string_view text);
inline constexpr size_t kMaxJsonDepth = 256;

}  // namespace bitbyte::runs
