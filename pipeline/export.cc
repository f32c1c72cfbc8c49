#include "pipeline/export.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/numbers.h"

namespace bitbyte::pipeline {
namespace {

using json = nlohmann::json;

std::string DotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string Rate(double per_s, const char* unit) {
  const char* prefixes[] = {"", "k", "M", "G"};
  int i = 0;
  while (per_s >= 1000 && i < 3) {
    per_s /= 1000;
    ++i;
  }
  return FormatDouble(per_s < 10 ? "%.2f" : "%.1f", per_s) + " " + prefixes[i] + unit + "/s";
}

// White at 0% busy to red at 100%.
std::string Fill(double busy_pct) {
  const double t = std::clamp(busy_pct / 100.0, 0.0, 1.0);
  const int r = static_cast<int>(std::lround(255 - t * (255 - 215)));
  const int g = static_cast<int>(std::lround(255 - t * (255 - 48)));
  const int b = static_cast<int>(std::lround(255 - t * (255 - 39)));
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
  return buf;
}

std::string Shape(const std::string& kind) {
  if (kind == "source") return "invhouse";
  if (kind == "limiter") return "octagon";
  if (kind == "sequencer") return "cds";
  return "box";
}

// Fields read by type: a field of another type counts as absent (pipeline.json may be damaged
// or hostile; nlohmann's value() would throw a type_error instead).
double Num(const json& j, const char* key, double fallback = 0) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

// A count or size: clamped to [0, 2^53] (a huge or negative number must not overflow a cast).
uint64_t Count(const json& j, const char* key, double fallback = 0) {
  const double v = Num(j, key, fallback);
  return v > 0 ? static_cast<uint64_t>(std::min(v, 9007199254740992.0)) : 0;
}

std::string Str(const json& j, const char* key, const std::string& fallback = "") {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}

}  // namespace

std::string PipelineDot(const std::string& json_text, const std::string& source) {
  const json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("graphs") || !doc["graphs"].is_array())
    throw DataError(source + ": not a pipeline document (a JSON object with \"graphs\" expected)");
  const bool job_running = Str(doc, "state") == "running";
  std::string dot = "digraph " + DotQuote(Str(doc, "job", "job")) +
                    " {\n"
                    "  rankdir=TB; fontname=\"Helvetica\"; node [fontname=\"Helvetica\" fontsize=10 "
                    "style=\"filled,rounded\" fillcolor=\"#ffffff\"];\n"
                    "  edge [fontname=\"Helvetica\" fontsize=9];\n";
  int gi = 0;
  for (const json& g : doc["graphs"]) {
    if (!g.is_object() || !g.contains("nodes") || !g["nodes"].is_array())
      throw DataError(source + ": graph " + std::to_string(gi) + " has no \"nodes\" array");
    const std::string gname = Str(g, "name", "graph " + std::to_string(gi));
    const std::string prefix = "g" + std::to_string(gi) + "_";
    // A job's graphs run one after the other: each is drawn by its own state (the last window
    // while it runs, the whole run once it stopped), as its bottleneck was chosen.
    const bool running = Str(g, "state") == "running";
    const std::string bottleneck =
        g.contains("bottleneck") && g["bottleneck"].is_string() ? g["bottleneck"].get<std::string>() : "";
    std::string caption = gname;
    if (g.contains("elapsed_s") && g["elapsed_s"].is_number())
      caption += " (" + FormatDouble("%.1f", g["elapsed_s"].get<double>()) + " s)";
    dot += "  subgraph " + DotQuote("cluster_" + std::to_string(gi)) + " {\n    label=" + DotQuote(caption) +
           "; style=dashed;\n";
    for (const json& n : g["nodes"]) {
      if (!n.is_object() || !n.contains("name") || !n["name"].is_string())
        throw DataError(source + ": a node of graph '" + gname + "' has no name");
      const std::string name = n["name"].get<std::string>();
      const std::string kind = Str(n, "kind", "?");
      const uint64_t conc = Count(n, "concurrency", 1);
      std::string label = (name == bottleneck ? "BOTTLENECK\n" : "") + name + "\n" + kind;
      if (kind == "limiter")
        label += ", " + std::to_string(conc) + " tokens";
      else if (kind == "sequencer")
        label += ", in order";
      else
        label += conc == 0 ? ", parallel" : conc == 1 ? ", serial" : ", " + std::to_string(conc) + " at once";
      if (n.contains("queue_bound") && n["queue_bound"].is_number() && kind != "limiter")
        label += "\nqueue <= " + std::to_string(Count(n, "queue_bound"));
      std::string attrs = "shape=" + Shape(kind);
      const json& span = n.contains(running ? "window" : "total") ? n[running ? "window" : "total"] : json();
      if (span.is_object()) {  // figures
        if (span.contains("busy_pct") && span["busy_pct"].is_number()) {
          const double busy = span["busy_pct"].get<double>();
          label +=
              "\nbusy " + FormatDouble("%.0f", busy) + "%  idle " + FormatDouble("%.0f", Num(span, "idle_pct")) + "%";
          if (Num(span, "blocked_pct") >= 0.5)
            label += "  blocked " + FormatDouble("%.0f", Num(span, "blocked_pct")) + "%";
          attrs += " fillcolor=" + DotQuote(Fill(busy));
        }
        label += "\nin " + std::to_string(Count(n, "in")) + "  out " + std::to_string(Count(n, "out"));
        if (Num(n, "queue") > 0) label += "  queue " + std::to_string(Count(n, "queue"));
        if (kind == "limiter") label += "  tokens used " + std::to_string(Count(n, "in_flight"));
        label += "\n" + Rate(Num(span, "items_per_s"), "items");
        if (Num(span, "bytes_per_s") > 0) label += "  " + Rate(Num(span, "bytes_per_s"), "B");
      }
      if (name == bottleneck) attrs += " penwidth=3 color=\"#b2182b\"";
      dot += "    " + DotQuote(prefix + name) + " [label=" + DotQuote(label) + " " + attrs + "];\n";
    }
    dot += "  }\n";
    if (g.contains("edges") && g["edges"].is_array()) {
      for (const json& e : g["edges"]) {
        if (!e.is_object() || !e.contains("from") || !e.contains("to") || !e["from"].is_string() ||
            !e["to"].is_string())
          throw DataError(source + ": an edge of graph '" + gname + "' lacks from/to");
        const bool token = Str(e, "kind", "data") == "token";
        dot += "  " + DotQuote(prefix + e["from"].get<std::string>()) + " -> " +
               DotQuote(prefix + e["to"].get<std::string>()) + " [label=" + DotQuote(Str(e, "label")) +
               (token ? " style=dashed color=\"#777777\" fontcolor=\"#777777\" constraint=false" : "") + "];\n";
      }
    }
    ++gi;
  }
  if (gi > 1) {  // a job's graphs run one after the other
    for (int i = 1; i < gi; ++i) {
      const json& a = doc["graphs"][i - 1]["nodes"];
      const json& b = doc["graphs"][i]["nodes"];
      if (!a.empty() && !b.empty())
        dot += "  " + DotQuote("g" + std::to_string(i - 1) + "_" + Str(a.back(), "name")) + " -> " +
               DotQuote("g" + std::to_string(i) + "_" + Str(b.front(), "name")) + " [style=invis];\n";
    }
  }
  if (doc.contains("graphs") && !doc["graphs"].empty() && doc["graphs"][0].contains("bottleneck"))
    dot +=
        "  legend [shape=plaintext label=\"fill: busy % (white 0%, red 100%)" +
        std::string(job_running ? ", last " + FormatDouble("%.0f", Num(doc, "interval_s", 2)) + " s for a running graph"
                                : ", whole run") +
        "\"];\n";
  return dot + "}\n";
}

}  // namespace bitbyte::pipeline
