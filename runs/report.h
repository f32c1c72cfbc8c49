#pragma once
// `bitbyte report`: one self-contained HTML page about a run directory (docs/training.md,
// "Reports"). Everything is inline: the figures as JSON in <script type="application/json"
// id="bitbyte-data">, the charts and the pipeline graph drawn as SVG by inline JavaScript, inline
// CSS; no URL is ever loaded. Torn or missing files show up in a "Problems" panel, never as a
// failure. Torch-free.
#include <string>
#include <string_view>

#include "base/file_io.h"
#include "runs/run_dir.h"

namespace bitbyte::runs {

// The whole HTML page for what ReadRunDir found.
std::string RenderReport(const RunDirContents& run);

// Reads RUN_DIR (ReadRunDir: throws UsageError when it is not a run directory),
// renders it and writes the page to `out_path` atomically (io::WriteFileAtomic through `fs`).
// Returns what was read, so callers can print its `missing` and `problems`.
RunDirContents WriteReport(const std::string& dir, const std::string& out_path, const RunDirOptions& options = {},
                           io::FileSystem& fs = io::Default());

// Text for HTML element content and attribute values: & < > " ' escaped, invalid UTF-8 and
// control characters (but tab, CR, LF) replaced by U+FFFD.
std::string HtmlEscape(std::string_view text);

// JSON text made safe inside <script type="application/json">: "</" becomes "<\/", "<!--"
// becomes "<\u0021--", U+2028 and U+2029 become \u2028 and \u2029 (all only occur inside JSON
// strings, where these escapes mean the same characters).
std::string EscapeScriptJson(std::string_view json);

}  // namespace bitbyte::runs
