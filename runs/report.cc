#include "runs/report.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/file_io.h"
#include "base/numbers.h"

namespace bitbyte::runs {
namespace {

using json = nlohmann::json;

// The inline CSS and JavaScript, embedded at build time from runs/report_assets/ (plain ES2015:
// no library, no network, no URL; tests/cli/report_test.sh checks it): kReportCss; kErrorTrapJs,
// which runs first, in <head>, and counts every uncaught error, unhandled rejection and
// console.error in <body data-errors="N">, listing them in #script-errors (the browser test reads
// both); kReportJs, which draws the pipeline graph(s) and the charts from <script
// type="application/json" id="bitbyte-data"> and sets <body data-rendered="1"> at the end.
#include "runs/report_assets.h"

constexpr char kNone[] = "\xE2\x80\x94";  // an em dash: no value

std::string Fmt(double v, const char* format = "%.4f") {
  if (!std::isfinite(v)) return kNone;
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string FmtBytes(double v) {
  if (!std::isfinite(v)) return kNone;
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (std::fabs(v) >= 1024 && i < 4) {
    v /= 1024;
    ++i;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf,
                std::fabs(v) >= 100  ? "%.0f %s"
                : std::fabs(v) >= 10 ? "%.1f %s"
                                     : "%.2f %s",
                v, units[i]);
  return buf;
}

std::string FmtDuration(double s) {
  if (!std::isfinite(s)) return kNone;
  char buf[64];
  if (s < 1)
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  else if (s < 120)
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 7200)
    std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else
    std::snprintf(buf, sizeof buf, "%.2f h", s / 3600);
  return buf;
}

std::string FmtTime(double unix_s) {
  if (!(unix_s > 0)) return kNone;
  const time_t t = static_cast<time_t>(unix_s);
  struct tm tm;
  if (!::localtime_r(&t, &tm)) return kNone;
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
  return buf;
}

// Six significant digits: the charts need no more, and the page stays small.
double Round6(double v) {
  if (!std::isfinite(v)) return v;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return std::strtod(buf, nullptr);
}

json Column(const std::vector<double>& values) {
  json a = json::array();
  for (double v : values) a.push_back(std::isfinite(v) ? json(Round6(v)) : json(nullptr));
  return a;
}

// The figures a node is coloured by: the last window while running, the whole run after.
const NodeFigures* Figures(const PipelineNode& n, bool live) {
  const auto& first = live ? n.window : n.total;
  const auto& second = live ? n.total : n.window;
  return first ? &*first : second ? &*second : nullptr;
}

bool GraphLive(const PipelineGraph& g, const PipelineInfo& p) {
  return (g.state.empty() ? p.state : g.state) == "running";
}

json ReportData(const RunDirContents& r) {
  json d;
  d["format"] = "bitbyte.report/1";
  d["dir"] = r.dir;
  d["state"] = r.state;
  d["writing"] = r.writing;
  d["steps_total"] = r.steps_total ? json(*r.steps_total) : json(nullptr);
  d["read_unix"] = r.read_unix;
  {
    std::vector<double> step, loss, lr, grad_norm, bps, wait, step_s, step_wall_s, elapsed, wall, stall;
    for (const StepRecord& s : r.steps) {
      step.push_back(static_cast<double>(s.step));
      loss.push_back(s.loss);
      lr.push_back(s.lr);
      grad_norm.push_back(s.grad_norm);
      bps.push_back(s.bytes_per_s);
      wait.push_back(s.data_wait_frac);
      step_s.push_back(s.step_s);
      step_wall_s.push_back(s.step_wall_s);
      elapsed.push_back(s.elapsed_s);
      wall.push_back(s.wall_s);
      stall.push_back(s.ckpt_stall_s.value_or(NAN));
    }
    json steps;
    steps["step"] = json::array();
    for (const StepRecord& s : r.steps) steps["step"].push_back(s.step);
    steps["loss"] = Column(loss);
    steps["lr"] = Column(lr);
    steps["grad_norm"] = Column(grad_norm);
    steps["bytes_per_s"] = Column(bps);
    steps["data_wait_frac"] = Column(wait);
    steps["step_s"] = Column(step_s);
    steps["step_wall_s"] = Column(step_wall_s);
    steps["elapsed_s"] = Column(elapsed);
    steps["wall_s"] = Column(wall);
    steps["ckpt_stall_s"] = Column(stall);
    d["steps"] = std::move(steps);
  }
  {
    std::vector<double> bpb, bytes, eval_s, elapsed, wall;
    json evals;
    evals["step"] = json::array();
    for (const EvalRecord& e : r.evals) {
      evals["step"].push_back(e.step);
      bpb.push_back(e.val_bpb);
      bytes.push_back(e.val_bytes);
      eval_s.push_back(e.eval_s);
      elapsed.push_back(e.elapsed_s);
      wall.push_back(e.wall_s);
    }
    evals["val_bpb"] = Column(bpb);
    evals["val_bytes"] = Column(bytes);
    evals["eval_s"] = Column(eval_s);
    evals["elapsed_s"] = Column(elapsed);
    evals["wall_s"] = Column(wall);
    d["evals"] = std::move(evals);
  }
  {
    json q;
    q["step"] = json::array();
    std::vector<double> wall, int8, int4;
    for (const QuantEvalRecord& e : r.quant_evals) {
      q["step"].push_back(e.step);
      wall.push_back(e.wall_s);
      double v8 = NAN, v4 = NAN;
      for (const auto& [scheme, bpb] : e.val_bpb) (scheme == "int8" ? v8 : v4) = bpb;
      int8.push_back(v8);
      int4.push_back(v4);
    }
    q["wall_s"] = Column(wall);
    q["val_bpb_int8"] = Column(int8);
    q["val_bpb_int4"] = Column(int4);
    d["quant_evals"] = std::move(q);
  }
  {
    json t;
    t["step"] = json::array();
    std::vector<double> wall, k, c, s;
    for (const TelemetryRecord& e : r.telemetry) {
      t["step"].push_back(e.step);
      wall.push_back(e.wall_s);
      k.push_back(e.k);
      c.push_back(e.c);
      s.push_back(e.s);
    }
    t["wall_s"] = Column(wall);
    t["k"] = Column(k);
    t["c"] = Column(c);
    t["s"] = Column(s);
    d["telemetry"] = std::move(t);
  }
  {
    json g = json::array();
    for (const GrowthRecord& e : r.growth) g.push_back({{"step", e.step}, {"what", e.what}});
    d["growth"] = std::move(g);
  }
  json pipeline = nullptr;
  if (r.pipeline) {
    pipeline = json::parse(r.pipeline->json, nullptr, false);
    if (pipeline.is_discarded()) pipeline = nullptr;
  }
  d["pipeline"] = std::move(pipeline);
  json run = json::array();
  for (const auto& [k, v] : r.run_info) run.push_back({k, v});
  d["run"] = std::move(run);
  return d;
}

class Html {
 public:
  Html& raw(std::string_view s) {
    out_.append(s);
    return *this;
  }
  Html& text(std::string_view s) {
    out_ += HtmlEscape(s);
    return *this;
  }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

void Row(Html& h, std::string_view label, const std::string& value, std::string_view cls = "") {
  h.raw("<tr");
  if (!cls.empty()) h.raw(" class=\"").text(cls).raw("\"");
  h.raw("><th>").text(label).raw("</th><td>").text(value).raw("</td></tr>\n");
}

void Summary(Html& h, const RunDirContents& r) {
  h.raw("<header id=\"summary\">\n<h1>bitbyte report <span class=\"dir\">").text(r.dir).raw("</span></h1>\n");
  h.raw("<p class=\"state-line\"><span class=\"state state-").text(r.state).raw("\" id=\"run-state\">").text(r.state);
  h.raw("</span>");
  if (r.writing) h.raw(" <span class=\"writing\">still being written</span>");
  h.raw("</p>\n<table class=\"kv summary\">\n");
  if (!r.has_config && !r.has_metrics && r.pipeline) {
    // Not a training run (a dataset written by bitbyte shard): the job and its graphs.
    const PipelineInfo& p = *r.pipeline;
    Row(h, "job", p.job.empty() ? std::string(kNone) : p.job);
    for (const PipelineGraph& g : p.graphs) Row(h, "graph " + g.name, FmtDuration(g.elapsed_s));
    if (p.started_unix && p.updated_unix) Row(h, "run time", FmtDuration(*p.updated_unix - *p.started_unix));
    Row(h, "last written", FmtTime(r.last_modified_unix));
    Row(h, "report generated", FmtTime(r.read_unix), "generated");
    h.raw("</table>\n</header>\n");
    return;
  }
  const int64_t done = r.LastStep();
  std::string steps = std::to_string(done);
  if (r.steps_total) {
    steps += " of " + std::to_string(*r.steps_total);
    if (*r.steps_total > 0)
      steps += " (" + Fmt(100.0 * static_cast<double>(done) / static_cast<double>(*r.steps_total), "%.0f") + "%)";
  } else {
    steps += " of ? (no config)";
  }
  Row(h, "steps done", steps, "steps");
  if (r.steps_total && *r.steps_total > 0) {
    const double frac = std::clamp(static_cast<double>(done) / static_cast<double>(*r.steps_total), 0.0, 1.0);
    h.raw("<tr><th></th><td><div class=\"progress\"><div style=\"width:")
        .raw(Fmt(100 * frac, "%.1f"))
        .raw("%\"></div></div></td></tr>\n");
  }
  const StepRecord* last = r.LatestStep();
  Row(h, "latest loss", last ? Fmt(last->loss) + " at step " + std::to_string(last->step) : kNone);
  const EvalRecord* le = r.LatestEval();
  Row(h, "latest val bpb", le ? Fmt(le->val_bpb) + " at step " + std::to_string(le->step) : kNone);
  const EvalRecord* be = r.BestEval();
  Row(h, "best val bpb", be ? Fmt(be->val_bpb) + " at step " + std::to_string(be->step) : kNone);
  if (!r.quant_evals.empty()) {  // the newest quantized evaluation, against the float32 one of its step
    const QuantEvalRecord& q =
        *std::max_element(r.quant_evals.begin(), r.quant_evals.end(),
                          [](const QuantEvalRecord& a, const QuantEvalRecord& b) { return a.step < b.step; });
    const EvalRecord* same = nullptr;
    for (const EvalRecord& e : r.evals)
      if (e.step == q.step) same = &e;
    std::string text;
    for (const auto& [scheme, bpb] : q.val_bpb) {
      text += (text.empty() ? "" : ", ") + scheme + " " + Fmt(bpb);
      if (same != nullptr) {
        char d[32];
        std::snprintf(d, sizeof d, " (%+.4f)", bpb - same->val_bpb);
        text += d;
      }
    }
    Row(h, "latest quantized val bpb", text + " at step " + std::to_string(q.step));
  }
  if (!r.growth.empty()) {
    std::string text;
    for (const GrowthRecord& g : r.growth)
      text += (text.empty() ? "" : "; ") + std::string("step ") + std::to_string(g.step) + ": " + g.what;
    Row(h, "growth", text);
  }
  if (const TelemetryRecord* t = r.LatestTelemetry()) {
    char text[96];
    std::snprintf(text, sizeof text, "K %.4f, C %.4f, S %.4f at step %lld", t->k, t->c, t->s,
                  static_cast<long long>(t->step));
    Row(h, "latest telemetry", text);
  }
  if (!r.steps.empty()) {
    const size_t from = r.steps.size() > 20 ? r.steps.size() - 20 : 0;
    std::vector<double> bps, wait;
    for (size_t i = from; i < r.steps.size(); ++i) {
      bps.push_back(r.steps[i].bytes_per_s);
      wait.push_back(r.steps[i].data_wait_frac);
    }
    const std::string of_last = " (median of the last " + std::to_string(bps.size()) + " steps)";
    const double median_bps = Median(bps), median_wait = Median(wait);
    Row(h, "throughput", std::isfinite(median_bps) ? FmtBytes(median_bps) + "/s" + of_last : kNone);
    Row(h, "data wait", std::isfinite(median_wait) ? Fmt(100 * median_wait, "%.2f") + "% of a step" + of_last : kNone);
    Row(h, "training time", FmtDuration(last ? last->wall_s : NAN) + " (all invocations)");
  }
  size_t committed = 0;
  for (const CheckpointEntry& e : r.checkpoints) committed += e.committed && e.name.rfind("step-", 0) == 0;
  Row(h, "checkpoints",
      std::to_string(committed) + (r.latest.empty() ? "" : ", latest " + r.latest) +
          (r.best.empty() ? "" : ", best " + r.best));
  Row(h, "last written",
      FmtTime(r.last_modified_unix) +
          (r.last_modified_unix > 0 ? " (" + FmtDuration(r.read_unix - r.last_modified_unix) + " before this report)"
                                    : ""));
  Row(h, "report generated", FmtTime(r.read_unix), "generated");
  h.raw("</table>\n</header>\n");
}

void Problems(Html& h, const RunDirContents& r) {
  if (r.missing.empty() && r.problems.empty()) return;
  h.raw("<section id=\"problems\" class=\"problems\">\n<h2>Problems</h2>\n<ul>\n");
  for (const std::string& m : r.missing) h.raw("<li class=\"missing\">").text(m).raw("</li>\n");
  for (const std::string& p : r.problems) h.raw("<li class=\"problem\">").text(p).raw("</li>\n");
  h.raw("</ul>\n</section>\n");
}

void NodeTable(Html& h, const PipelineGraph& g, bool live) {
  h.raw(
      "<table class=\"nodes\">\n<thead><tr><th>node</th><th>kind</th><th>concurrency</th><th>queue</th><th>in</th>"
      "<th>out</th><th>in flight</th><th>bytes</th><th>busy&nbsp;%</th><th>idle&nbsp;%</th><th>blocked&nbsp;%</th>"
      "<th>items/s</th><th>bytes/s</th><th>busy s</th></tr></thead>\n<tbody>\n");
  for (const PipelineNode& n : g.nodes) {
    const bool bn = g.bottleneck && *g.bottleneck == n.name;
    const NodeFigures* f = Figures(n, live);
    h.raw(bn ? "<tr class=\"bottleneck\"><td>" : "<tr><td>").text(n.name);
    if (bn) h.raw(" <span class=\"tag\">bottleneck</span>");
    h.raw("</td><td>")
        .text(n.kind)
        .raw("</td><td>")
        .text(n.concurrency == 0 ? std::string("unlimited") : std::to_string(n.concurrency));
    std::string queue = n.has_counts ? std::to_string(n.queue) : kNone;
    if (n.queue_bound) queue += " / " + std::to_string(*n.queue_bound);
    h.raw("</td><td>").text(queue);
    for (int64_t v : {n.in, n.out, n.in_flight}) h.raw("</td><td>").text(n.has_counts ? std::to_string(v) : kNone);
    h.raw("</td><td>").text(n.has_counts ? FmtBytes(static_cast<double>(n.bytes)) : kNone);
    h.raw("</td><td>").text(f ? Fmt(f->busy_pct, "%.1f") : kNone);
    h.raw("</td><td>").text(f ? Fmt(f->idle_pct, "%.1f") : kNone);
    h.raw("</td><td>").text(f ? Fmt(f->blocked_pct, "%.1f") : kNone);
    h.raw("</td><td>").text(f ? Fmt(f->items_per_s, "%.2f") : kNone);
    h.raw("</td><td>").text(f && std::isfinite(f->bytes_per_s) ? FmtBytes(f->bytes_per_s) + "/s" : kNone);
    h.raw("</td><td>").text(n.has_counts ? Fmt(n.busy_s, "%.2f") : kNone);
    h.raw("</td></tr>\n");
  }
  h.raw("</tbody>\n</table>\n");
}

void Pipeline(Html& h, const RunDirContents& r) {
  h.raw("<section id=\"pipeline\">\n<h2>Pipeline</h2>\n");
  if (!r.pipeline) {
    h.raw("<p class=\"none\">")
        .text(r.has_pipeline ? "pipeline.json is damaged: no graph to show."
                             : "No pipeline.json in this run directory: no graph to show.")
        .raw("</p>\n</section>\n");
    return;
  }
  const PipelineInfo& p = *r.pipeline;
  if (p.graphs.empty()) h.raw("<p class=\"none\">pipeline.json describes no graph.</p>\n");
  for (size_t i = 0; i < p.graphs.size(); ++i) {
    const PipelineGraph& g = p.graphs[i];
    const bool live = GraphLive(g, p);
    h.raw("<div class=\"graph\" data-graph-index=\"")
        .raw(std::to_string(i))
        .raw("\" data-graph=\"")
        .text(g.name)
        .raw("\">\n");
    h.raw("<h3>").text(g.name.empty() ? "(unnamed graph)" : g.name).raw(" <span class=\"sub\">");
    std::string sub = g.state.empty() ? p.state : g.state;
    if (std::isfinite(g.elapsed_s)) sub += ", " + FmtDuration(g.elapsed_s);
    sub += g.bottleneck ? ", bottleneck " + *g.bottleneck : ", no bottleneck named";
    sub += live ? "; colour: busy % over the last window" : "; colour: busy % over the whole run";
    h.text(sub).raw("</span></h3>\n<div class=\"graph-svg\"></div>\n");
    NodeTable(h, g, live);
    h.raw("</div>\n");
  }
  // The legend of the node colours: the white-to-red scale in 11 steps (as the graph's JS).
  h.raw(
      "<div class=\"legend\"><svg width=\"470\" height=\"48\" viewBox=\"0 0 470 48\" role=\"img\" "
      "aria-label=\"legend\">\n");
  for (int i = 0; i <= 10; ++i) {
    const double t = i / 10.0;
    char rect[200];
    std::snprintf(rect, sizeof rect,
                  "<rect x=\"%d\" y=\"8\" width=\"20\" height=\"14\" fill=\"rgb(%d,%d,%d)\" stroke=\"#888\" "
                  "stroke-width=\"0.5\"/>",
                  10 + 20 * i, static_cast<int>(std::lround(255 - 40 * t)),
                  static_cast<int>(std::lround(255 - 207 * t)), static_cast<int>(std::lround(255 - 224 * t)));
    h.raw(rect);
  }
  h.raw(R"(
<text x="10" y="37" font-size="11">0%</text><text x="120" y="37" font-size="11" text-anchor="middle">busy</text><text x="230" y="37" font-size="11" text-anchor="end">100%</text>
<rect x="252" y="6" width="22" height="14" fill="#eeeeee" stroke="#888" stroke-dasharray="3 2"/><text x="280" y="17" font-size="11">no work (limiter, sequencer)</text>
<rect x="252" y="27" width="22" height="14" fill="#fff" stroke="#b30000" stroke-width="3"/><text x="280" y="38" font-size="11">bottleneck</text>
</svg></div>
)");
  h.raw("</section>\n");
}

void Charts(Html& h, const RunDirContents& r) {
  h.raw(
      "<section id=\"charts\">\n<h2>Training</h2>\n<div class=\"xaxis\" role=\"radiogroup\">x axis: "
      "<label><input type=\"radio\" name=\"xaxis\" value=\"step\" checked> step</label> "
      "<label><input type=\"radio\" name=\"xaxis\" value=\"wall\"> wall time (elapsed_s, summed over resumes)</label>"
      "</div>\n<div class=\"charts\">\n");
  const char* charts[][2] = {{"loss", "training loss (nats per byte)"},
                             {"bpb", "validation bits per byte"},
                             {"throughput", "throughput (bytes_per_s)"},
                             {"wait", "data wait (data_wait_frac, % of the step)"},
                             {"stall", "checkpoint stall (ckpt_stall_s, ms)"}};
  std::vector<std::pair<std::string, std::string>> shown;
  for (const auto& c : charts) shown.emplace_back(c[0], c[1]);
  for (const char* scheme : {"int8", "int4"}) {  // quantized evaluations, when the run has them
    bool any = false;
    for (const QuantEvalRecord& e : r.quant_evals)
      for (const auto& v : e.val_bpb) any = any || v.first == scheme;
    if (any)
      shown.emplace_back(std::string("bpb_") + scheme,
                         std::string("validation bits per byte, Linear layers in ") + scheme + " (quant_eval)");
  }
  if (!r.telemetry.empty())
    for (const auto& [id, caption] :
         {std::pair{"tel_k", "telemetry K: negentropy of the bit predictions"},
          std::pair{"tel_c", "telemetry C: normalised Lempel-Ziv complexity of the most likely bits"},
          std::pair{"tel_s", "telemetry S: symbiosis with the probe's byte statistics"}})
      shown.emplace_back(id, caption);
  for (const auto& [id, caption] : shown) {
    h.raw("<figure class=\"chart\" id=\"chart-").raw(id).raw("\"><figcaption>").text(caption);
    h.raw("</figcaption><div class=\"plot\"></div><div class=\"tip\" hidden></div></figure>\n");
  }
  h.raw("</div>\n</section>\n");
}

void Checkpoints(Html& h, const RunDirContents& r) {
  h.raw("<section id=\"checkpoints\">\n<h2>Checkpoints</h2>\n");
  if (r.checkpoints.empty()) {
    h.raw("<p class=\"none\">No checkpoint.</p>\n</section>\n");
    return;
  }
  const std::string latest = r.latest, best = r.best.substr(0, r.best.find(' '));
  h.raw(
      "<table "
      "class=\"list\"><thead><tr><th>directory</th><th>step</th><th>committed</th><th></th></tr></thead><tbody>\n");
  for (const CheckpointEntry& e : r.checkpoints) {
    std::string tags;
    if (e.name == latest) tags += "latest ";
    if (e.name == best) tags += "best";
    h.raw("<tr><td>").text(e.name).raw("</td><td>").text(e.step >= 0 ? std::to_string(e.step) : kNone);
    h.raw("</td><td>").text(e.committed ? "yes" : "no (incomplete)").raw("</td><td>").text(tags).raw("</td></tr>\n");
  }
  h.raw("</tbody></table>\n</section>\n");
}

void Config(Html& h, const RunDirContents& r) {
  h.raw("<section id=\"config\">\n<h2>Config <span class=\"sub\">config.txtpb</span></h2>\n");
  if (!r.has_config)
    h.raw("<p class=\"none\">No config.txtpb.</p>\n");
  else
    h.raw("<pre class=\"config\">").text(r.config_text).raw("</pre>\n");
  h.raw("</section>\n");
}

void Environment(Html& h, const RunDirContents& r) {
  h.raw("<section id=\"environment\">\n<h2>Environment <span class=\"sub\">run.json</span></h2>\n");
  if (r.run_info.empty())
    h.raw("<p class=\"none\">No run.json.</p>\n");
  else {
    h.raw("<table class=\"kv env\">\n");
    for (const auto& [k, v] : r.run_info) Row(h, k, v);
    h.raw("</table>\n");
  }
  if (r.pipeline) {
    const PipelineInfo& p = *r.pipeline;
    h.raw("<h3>The job <span class=\"sub\">pipeline.json</span></h3>\n<table class=\"kv job\">\n");
    if (!p.job.empty()) Row(h, "job", p.job);
    if (!p.state.empty()) Row(h, "state", p.state);
    if (p.pid) Row(h, "pid", std::to_string(*p.pid));
    if (!p.host.empty()) Row(h, "host", p.host);
    if (p.threads) Row(h, "threads", std::to_string(*p.threads));
    if (p.started_unix) Row(h, "started", FmtTime(*p.started_unix));
    if (p.updated_unix) Row(h, "updated", FmtTime(*p.updated_unix));
    if (p.interval_s) Row(h, "update interval", Fmt(*p.interval_s, "%.1f s"));
    Row(h, "format", p.format);
    h.raw("</table>\n");
  }
  h.raw("</section>\n");
}

}  // namespace

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = b[i];
    if (c < 0x80) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        case '\t':
        case '\n':
        case '\r': out += static_cast<char>(c); break;
        default:
          if (c < 0x20 || c == 0x7F)
            out += "\xEF\xBF\xBD";
          else
            out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF) is copied.
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF)
      len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, cp = c & 0x07;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      if ((b[i + k] & 0xC0) != 0x80)
        ok = false;
      else
        cp = (cp << 6) | (b[i + k] & 0x3F);
    }
    if (ok &&
        ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
      ok = false;
    // Noncharacters and C1 controls are allowed in HTML text; keep them.
    if (ok) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string EscapeScriptJson(std::string_view j) {
  std::string out;
  out.reserve(j.size() + 16);
  for (size_t i = 0; i < j.size(); ++i) {
    if (j[i] == '<' && i + 1 < j.size() && j[i + 1] == '/') {
      out += "<\\/";
      ++i;
    } else if (j.substr(i, 4) == "<!--") {
      out += "<\\u0021--";
      i += 3;
    } else if (j.substr(i, 3) == "\xE2\x80\xA8") {
      out += "\\u2028";
      i += 2;
    } else if (j.substr(i, 3) == "\xE2\x80\xA9") {
      out += "\\u2029";
      i += 2;
    } else {
      out += j[i];
    }
  }
  return out;
}

std::string RenderReport(const RunDirContents& r) {
  Html h;
  h.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
  h.raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
  h.raw("<meta name=\"generator\" content=\"bitbyte report\">\n");
  h.raw("<title>bitbyte report: ").text(r.dir).raw("</title>\n");
  h.raw("<script>").raw(kErrorTrapJs).raw("</script>\n");
  h.raw("<style>").raw(kReportCss).raw("</style>\n</head>\n");
  h.raw("<body data-errors=\"0\" data-state=\"")
      .text(r.state)
      .raw("\" data-writing=\"")
      .raw(r.writing ? "1" : "0")
      .raw("\">\n");
  h.raw("<div id=\"script-errors\" class=\"script-errors\" hidden></div>\n");
  Summary(h, r);
  Problems(h, r);
  Pipeline(h, r);
  Charts(h, r);
  Checkpoints(h, r);
  Config(h, r);
  Environment(h, r);
  h.raw("<footer>Generated by <code>bitbyte report</code> at ").text(FmtTime(r.read_unix));
  h.raw(". Self-contained: no file or URL is loaded.</footer>\n");
  const std::string data = ReportData(r).dump(-1, ' ', false, json::error_handler_t::replace);
  h.raw("<script type=\"application/json\" id=\"bitbyte-data\">").raw(EscapeScriptJson(data)).raw("</script>\n");
  h.raw("<script>").raw(kReportJs).raw("</script>\n</body>\n</html>\n");
  return std::move(h.str());
}

RunDirContents WriteReport(const std::string& dir, const std::string& out_path, const RunDirOptions& options,
                           io::FileSystem& fs) {
  RunDirContents r = ReadRunDir(dir, options);
  io::WriteFileAtomic(fs, out_path, RenderReport(r));
  return r;
}

}  // namespace bitbyte::runs
