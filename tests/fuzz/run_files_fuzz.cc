// libFuzzer target: arbitrary bytes as the files of a run directory, read as `bitbyte report`,
// `top` and `graph --figures` read them. Input layout: the first byte says which files exist
// (bit 0 run.json, bit 1 metrics.jsonl, bit 2 pipeline.json, bit 3 config.txtpb); the rest is
// cut at each 0x1E byte (ASCII record separator) into their contents, in that order (a missing
// part is an empty file).
//
// Promises checked (runs/run_dir.h, runs/report.h, pipeline/export.h):
//  - ReadRunDir never throws because of what the files contain (only when none exists);
//  - a pipeline.json that parses is re-serialised as valid JSON (PipelineInfo::json);
//  - RenderReport renders whatever ReadRunDir found;
//  - PipelineDot draws pipeline.json or throws bitbyte::DataError.
// Anything else (a crash, a sanitizer report, an exception) is a bug.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/file_io.h"
#include "pipeline/export.h"
#include "runs/report.h"
#include "runs/run_dir.h"
#include "tests/fuzz/fuzz_dir.h"
#include "train/config.h"

namespace {

const char* const kFiles[] = {"run.json", "metrics.jsonl", "pipeline.json", "config.txtpb"};

const bitbyte::fuzz::FuzzDir& Scratch() {
  static const bitbyte::fuzz::FuzzDir dir("bitbyte-run-fuzz",
                                          {"run.json", "metrics.jsonl", "pipeline.json", "config.txtpb"});
  return dir;
}

const std::string& Dir() { return Scratch().path(); }

void Put(const std::string& name, std::string_view bytes) { Scratch().Put(name, bytes); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const unsigned present = data[0] & 0xF;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string_view> parts;
  for (int i = 0; i < 4; ++i) {
    const size_t cut = i == 3 ? std::string_view::npos : rest.find('\x1e');
    parts.push_back(rest.substr(0, cut));
    rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
  }
  for (int i = 0; i < 4; ++i) {
    if (present & (1u << i))
      Put(kFiles[i], parts[i]);
    else
      ::unlink((Dir() + "/" + kFiles[i]).c_str());
  }
  if (present == 0) return 0;  // not a run directory: ReadRunDir's one documented error

  const bitbyte::runs::RunDirContents c = bitbyte::runs::ReadRunDir(Dir(), {bitbyte::train::ConfigTotalSteps});
  if (c.pipeline && !nlohmann::json::accept(c.pipeline->json)) {
    std::fprintf(stderr, "PipelineInfo::json is not valid JSON: %s\n", c.pipeline->json.c_str());
    std::abort();
  }
  (void)bitbyte::runs::RenderReport(c);

  if (present & 4u) {
    try {
      (void)bitbyte::pipeline::PipelineDot(std::string(parts[2]), "pipeline.json");
    } catch (const bitbyte::DataError&) {
    }
  }
  return 0;
}
