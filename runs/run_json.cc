#include "runs/run_json.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

namespace bitbyte::runs {

using ordered_json = nlohmann::ordered_json;

size_t JsonNestingDepth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char ch : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (ch == '\\')
        escaped = true;
      else if (ch == '"')
        in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((ch == ']' || ch == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::optional<RunJson> ParseRunJson(std::string_view text, std::string* error) {
  const ordered_json j = JsonNestingDepth(text) > kMaxJsonDepth
                             ? ordered_json(nullptr)
                             : ordered_json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    if (error) *error = text.empty() ? "the file is empty" : "it is not a JSON object";
    return std::nullopt;
  }
  RunJson r;
  for (const auto& [key, value] : j.items())
    r.values.emplace_back(key, value.is_string() ? value.get<std::string>()
                                                 : value.dump(-1, ' ', false, ordered_json::error_handler_t::replace));
  if (j.contains("data")) {
    r.has_data = true;
    if (j["data"].is_string() && !j["data"].get<std::string>().empty())
      r.data = j["data"].get<std::string>();
    else
      r.warnings.push_back("\"data\" is not a directory name; ignoring it");
  }
  if (j.contains("dataset_id")) {
    const ordered_json& v = j["dataset_id"];
    uint64_t id = 0;
    const std::string s = v.is_string() ? v.get<std::string>() : "";
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), id, 10);
    if (!s.empty() && ec == std::errc() && ptr == s.data() + s.size())
      r.dataset_id = id;
    else
      r.warnings.push_back("\"dataset_id\" is not a decimal dataset id in a string; ignoring it");
  }
  if (j.contains("threads")) {
    if (j["threads"].is_number_integer())
      r.threads = j["threads"].get<int64_t>();
    else
      r.warnings.push_back("\"threads\" is not an integer; ignoring it");
  }
  return r;
}

void WriteRunJson(io::FileSystem& fs, const std::string& path, const nlohmann::json& environment,
                  const std::string& data, uint64_t dataset_id) {
  nlohmann::json run = environment;
  run["data"] = data;
  run["dataset_id"] = std::to_string(dataset_id);
  io::WriteFileAtomic(fs, path, run.dump(2) + "\n");
}

}  // namespace bitbyte::runs
