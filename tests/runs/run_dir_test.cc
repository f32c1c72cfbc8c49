// ReadRunDir (runs/run_dir) and RenderReport (runs/report) on hand-made run directories:
// complete, damaged (torn and garbage metrics lines, damaged pipeline.json, missing files),
// random bytes, and a run directory whose lock is held (a job still writing it).
#include "runs/run_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file_io.h"
#include "runs/report.h"
#include "train/config.h"

namespace bitbyte::runs {
namespace {

namespace fs = std::filesystem;

// Run directories of the train job: its config gives the total steps.
const RunDirOptions kTrainJob{train::ConfigTotalSteps};

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "bitbyte-rundir-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void Write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string StepLine(int step, double elapsed, bool ckpt = false) {
  char buf[400];
  std::snprintf(
      buf, sizeof buf,
      "{\"step\":%d,\"loss\":%.4f,\"lr\":0.001,\"grad_norm\":1.5,\"bytes_per_s\":%.1f,\"data_wait_frac\":0.01,"
      "\"step_s\":0.02,\"step_wall_s\":0.021,\"elapsed_s\":%.3f%s}\n",
      step, 5.5 - 0.05 * step, 6000.0 + step, elapsed, ckpt ? ",\"ckpt_stall_s\":0.0012" : "");
  return buf;
}

std::string EvalLine(int step, double bpb, double elapsed) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "{\"step\":%d,\"val_bpb\":%.4f,\"val_bytes\":4095,\"eval_s\":0.05,\"elapsed_s\":%.3f}\n", step, bpb,
                elapsed);
  return buf;
}

// 30 steps, an evaluation every 10, a checkpoint every 10.
std::string Metrics30() {
  std::string m;
  for (int s = 1; s <= 30; ++s) {
    m += StepLine(s, 0.03 * s, s % 10 == 0);
    if (s % 10 == 0) m += EvalLine(s, 4.0 - 0.1 * s / 10 + (s == 30 ? 0.5 : 0), 0.03 * s + 0.01);
  }
  return m;
}

// The train graph as pipeline.json describes it (train_job.cc's nodes and edges).
std::string PipelineJson(const std::string& state = "finished", const std::string& node0 = "batch_source") {
  nlohmann::json nodes = nlohmann::json::array();
  const char* names[][2] = {{"", "source"},         {"prefetch", "limiter"},    {"prepare", "function"},
                            {"order", "sequencer"}, {"train_step", "function"}, {"metrics_order", "sequencer"},
                            {"eval", "function"},   {"metrics", "function"},    {"checkpoint", "function"}};
  int i = 0;
  for (const auto& n : names) {
    const std::string name = i == 0 ? node0 : n[0];
    const std::string kind = n[1];
    const bool works = kind != "limiter" && kind != "sequencer";
    const double busy = name == "train_step" ? 95.0 : 10.0 * i;
    nlohmann::json f = {{"seconds", 10.0},
                        {"busy_pct", works ? nlohmann::json(busy) : nlohmann::json(nullptr)},
                        {"idle_pct", works ? nlohmann::json(100 - busy) : nlohmann::json(nullptr)},
                        {"blocked_pct", works ? nlohmann::json(0.0) : nlohmann::json(nullptr)},
                        {"items_per_s", 3.0},
                        {"bytes_per_s", 1000.0}};
    nodes.push_back({{"name", name},
                     {"kind", kind},
                     {"concurrency", name == "prepare" ? 0 : 1},
                     {"queue_bound", name == "prefetch" ? nlohmann::json(3) : nlohmann::json(nullptr)},
                     {"in", 30},
                     {"out", 30},
                     {"queue", 0},
                     {"in_flight", 0},
                     {"bytes", 3840},
                     {"busy_s", works ? nlohmann::json(busy / 10) : nlohmann::json(nullptr)},
                     {"blocked_s", works ? nlohmann::json(0.0) : nlohmann::json(nullptr)},
                     {"window", f},
                     {"total", f}});
    ++i;
  }
  auto edge = [](const std::string& a, const std::string& b, const std::string& label, const std::string& kind) {
    return nlohmann::json{{"from", a}, {"to", b}, {"label", label}, {"kind", kind}};
  };
  nlohmann::json edges = {edge(node0, "prefetch", "", "data"),
                          edge("prefetch", "prepare", "", "data"),
                          edge("prepare", "order", "batch", "data"),
                          edge("order", "train_step", "batch, in step order", "data"),
                          edge("train_step", "prefetch", "token returned", "token"),
                          edge("train_step", "metrics_order", "step figures", "data"),
                          edge("metrics_order", "metrics", "in step order", "data"),
                          edge("train_step", "eval", "weights snapshot", "data"),
                          edge("eval", "metrics", "val bpb", "data"),
                          edge("metrics", "checkpoint", "snapshot, val bpb", "data")};
  nlohmann::json doc = {{"format", "bitbyte.pipeline/1"},
                        {"job", "train"},
                        {"state", state},
                        {"pid", 999999999},
                        {"host", "nohost.invalid"},
                        {"started_unix", 1763913330.5},
                        {"updated_unix", 1763913340.5},
                        {"interval_s", 2.0},
                        {"threads", 2},
                        {"graphs",
                         {{{"name", "train"},
                           {"state", state},
                           {"elapsed_s", 10.0},
                           {"bottleneck", "train_step"},
                           {"nodes", nodes},
                           {"edges", edges}}}}};
  return doc.dump(2) + "\n";
}

const char kRunJson[] =
    "{\n  \"threads\": 2,\n  \"device\": \"cpu\",\n  \"libtorch\": \"1.13.1\",\n  \"blas_core\": \"Haswell\",\n"
    "  \"openblas_coretype_env\": \"\",\n  \"data\": \"/data/moby\",\n  \"dataset_id\": \"1234\"\n}\n";

// A finished 30-step run with everything in place.
void MakeRun(const TempDir& d, const std::string& pipeline = PipelineJson()) {
  Write(d / "run.json", kRunJson);
  Write(d / "config.txtpb", "model {\n  name: \"bitbyte_lm\"\n}\nsteps: 30\n");
  Write(d / "metrics.jsonl", Metrics30());
  if (!pipeline.empty()) Write(d / "pipeline.json", pipeline);
  for (int s : {10, 20, 30}) {
    char name[32];
    std::snprintf(name, sizeof name, "step-%09d", s);
    Write(d / (std::string("checkpoints/") + name + "/COMMIT"), "commit\n");
  }
  Write(d / "checkpoints/latest", "step-000000030\n");
  Write(d / "checkpoints/best", "step-000000020 3.800000\n");
}

bool ValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

bool HasProblem(const RunDirContents& c, const std::string& text) {
  for (const auto* list : {&c.missing, &c.problems})
    for (const std::string& p : *list)
      if (p.find(text) != std::string::npos) return true;
  return false;
}

std::string AllProblems(const RunDirContents& c) {
  std::string s;
  for (const auto* list : {&c.missing, &c.problems})
    for (const std::string& p : *list) s += "[" + p + "] ";
  return s;
}

// The JSON inside <script type="application/json" id="bitbyte-data">.
std::string DataJson(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"bitbyte-data\">";
  const size_t a = html.find(open);
  if (a == std::string::npos) return "";
  const size_t b = html.find("</script>", a);
  return html.substr(a + open.size(), b - a - open.size());
}

// ---------------------------------------------------------------------------------------------

TEST(RunDir, NotARunDirectoryIsAnInvalidArgument) {
  TempDir d;
  try {
    ReadRunDir(d / "nope");
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(d / "nope"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  Write(d / "file", "x");
  EXPECT_THROW(ReadRunDir(d / "file"), UsageError);
  fs::create_directories(d / "empty");
  Write(d / "empty/notes.txt", "x");
  try {
    ReadRunDir(d / "empty");
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("not a run directory"), std::string::npos) << e.what();
  }
}

TEST(RunDir, ReadsACompleteRun) {
  TempDir d;
  MakeRun(d);
  const RunDirContents c = ReadRunDir(d.path(), kTrainJob);
  EXPECT_TRUE(c.missing.empty()) << AllProblems(c);
  EXPECT_TRUE(c.problems.empty()) << AllProblems(c);
  EXPECT_EQ(c.state, "finished");
  EXPECT_FALSE(c.writing);
  ASSERT_EQ(c.steps.size(), 30u);
  ASSERT_EQ(c.evals.size(), 3u);
  EXPECT_EQ(c.metrics_lines, 33u);
  EXPECT_EQ(c.skipped_lines, 0u);
  ASSERT_TRUE(c.steps_total);
  EXPECT_EQ(*c.steps_total, 30);
  EXPECT_EQ(c.LastStep(), 30);
  EXPECT_EQ(c.steps[9].step, 10);
  ASSERT_TRUE(c.steps[9].ckpt_stall_s);
  EXPECT_DOUBLE_EQ(*c.steps[9].ckpt_stall_s, 0.0012);
  EXPECT_FALSE(c.steps[8].ckpt_stall_s);
  EXPECT_DOUBLE_EQ(c.steps[0].bytes_per_s, 6001.0);
  EXPECT_EQ(c.steps[0].line, 1u);
  ASSERT_NE(c.BestEval(), nullptr);
  EXPECT_EQ(c.BestEval()->step, 20);
  EXPECT_EQ(c.LatestEval()->step, 30);
  EXPECT_EQ(c.LatestStep()->step, 30);
  // run.json in file order, strings unquoted, numbers as JSON.
  ASSERT_EQ(c.run_info.size(), 7u);
  EXPECT_EQ(c.run_info[0], std::make_pair(std::string("threads"), std::string("2")));
  EXPECT_EQ(c.run_info[2], std::make_pair(std::string("libtorch"), std::string("1.13.1")));
  // pipeline.json
  ASSERT_TRUE(c.pipeline);
  EXPECT_EQ(c.pipeline->job, "train");
  ASSERT_TRUE(c.pipeline->threads);
  EXPECT_EQ(*c.pipeline->threads, 2);
  ASSERT_EQ(c.pipeline->graphs.size(), 1u);
  const PipelineGraph& g = c.pipeline->graphs[0];
  EXPECT_EQ(g.nodes.size(), 9u);
  EXPECT_EQ(g.edges.size(), 10u);
  ASSERT_TRUE(g.bottleneck);
  EXPECT_EQ(*g.bottleneck, "train_step");
  EXPECT_EQ(g.nodes[1].kind, "limiter");
  ASSERT_TRUE(g.nodes[1].queue_bound);
  EXPECT_EQ(*g.nodes[1].queue_bound, 3);
  ASSERT_TRUE(g.nodes[1].total);
  EXPECT_TRUE(std::isnan(g.nodes[1].total->busy_pct));  // a limiter does no work
  EXPECT_DOUBLE_EQ(g.nodes[4].total->busy_pct, 95.0);
  EXPECT_EQ(g.edges[4].kind, "token");
  // checkpoints
  ASSERT_EQ(c.checkpoints.size(), 3u);
  EXPECT_TRUE(c.checkpoints[2].committed);
  EXPECT_EQ(c.checkpoints[2].step, 30);
  EXPECT_EQ(c.latest, "step-000000030");
  EXPECT_EQ(c.best, "step-000000020 3.800000");
}

TEST(RunDir, TornLinesAtTheEndAndInTheMiddleAreSkippedAndCounted) {
  TempDir d;
  MakeRun(d);
  std::string m = Metrics30();
  // Line 3 torn in the middle (a kill mid-append, then an append after it), line 7 garbage,
  // and the last line torn without its newline.
  const size_t third = m.find('\n', m.find('\n') + 1) + 1;
  m.insert(third, "{\"step\":3,\"loss\":5.3,\"lr\":0.0");
  std::vector<std::string> lines;
  std::istringstream in(m);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  lines.insert(lines.begin() + 6, "\x01\xff garbage \xfe");
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  text += "{\"step\":31,\"loss\":4.0,\"lr\"";
  Write(d / "metrics.jsonl", text);
  const RunDirContents c = ReadRunDir(d.path(), kTrainJob);
  EXPECT_EQ(c.skipped_lines, 3u) << AllProblems(c);
  EXPECT_EQ(c.steps.size(), 29u);  // line 3 joined two records: both are lost
  EXPECT_EQ(c.evals.size(), 3u);
  EXPECT_TRUE(c.torn_last_line);
  ASSERT_EQ(c.skipped_line_numbers.size(), 3u);
  EXPECT_EQ(c.skipped_line_numbers[0], 3u);
  EXPECT_EQ(c.skipped_line_numbers[1], 7u);
  EXPECT_EQ(c.skipped_line_numbers[2], lines.size() + 1);
  EXPECT_TRUE(HasProblem(c, "3 lines skipped")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, "lines 3, 7, ")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, "last line is torn")) << AllProblems(c);

  // Exactly two: a torn last line and a garbage middle line.
  Write(d / "metrics.jsonl", StepLine(1, 0.1) + "garbage\n" + StepLine(2, 0.2) + "{\"step\":3,\"lo");
  const RunDirContents c2 = ReadRunDir(d.path(), kTrainJob);
  EXPECT_EQ(c2.skipped_lines, 2u);
  EXPECT_EQ(c2.steps.size(), 2u);
  EXPECT_TRUE(HasProblem(c2, "2 lines skipped")) << AllProblems(c2);
}

TEST(RunDir, WrongTypesNullsAndOddValuesAreSkipped) {
  RunDirContents c;
  ParseMetrics(
      "{\"step\":\"3\",\"loss\":1}\n"                                      // step a string
      "{\"step\":3,\"loss\":null}\n"                                       // NaN written by a JSON library
      "{\"step\":-1,\"loss\":1}\n"                                         // negative step
      "{\"step\":1.5,\"loss\":1}\n"                                        // fractional step
      "{\"step\":3,\"loss\":\"x\"}\n"                                      // loss a string
      "{\"step\":3,\"val_bpb\":[1]}\n"                                     // bpb an array
      "{\"step\":3}\n"                                                     // neither a step nor an evaluation
      "[1,2]\n42\n\"s\"\nnull\n\n   \n"                                    // not objects; empty lines
      "{\"step\":99999999999999999999,\"loss\":1}\n"                       // step out of range
      "{\"step\":4,\"loss\":1e999}\n"                                      // not finite
      "{\"step\":5.0,\"loss\":2,\"lr\":\"fast\",\"ckpt_stall_s\":null}\n"  // kept; lr and stall unknown
      "{\"step\":6,\"val_bpb\":3.5}\n",                                    // kept; the other figures unknown
      c);
  EXPECT_EQ(c.metrics_lines, 17u);
  EXPECT_EQ(c.skipped_lines, 15u);
  ASSERT_EQ(c.steps.size(), 1u);
  EXPECT_EQ(c.steps[0].step, 5);
  EXPECT_TRUE(std::isnan(c.steps[0].lr));
  EXPECT_FALSE(c.steps[0].ckpt_stall_s);
  ASSERT_EQ(c.evals.size(), 1u);
  EXPECT_TRUE(std::isnan(c.evals[0].eval_s));
  EXPECT_EQ(c.skipped_line_numbers.size(), 10u);  // only the first few are kept
}

TEST(RunDir, WallTimeAddsUpAcrossResumes) {
  RunDirContents c;
  // First invocation to step 3 (elapsed 1..3), resumed: elapsed restarts.
  ParseMetrics(
      StepLine(1, 1) + StepLine(2, 2) + StepLine(3, 3) + EvalLine(3, 4, 3.5) + StepLine(4, 0.5) + StepLine(5, 1.5), c);
  ASSERT_EQ(c.steps.size(), 5u);
  EXPECT_DOUBLE_EQ(c.steps[2].wall_s, 3);
  EXPECT_DOUBLE_EQ(c.evals[0].wall_s, 3.5);
  EXPECT_DOUBLE_EQ(c.steps[3].wall_s, 4);
  EXPECT_DOUBLE_EQ(c.steps[4].wall_s, 5);
}

TEST(RunDir, RecordsStampedOnTwoThreadsSlightlyOutOfOrderAreNotARestart) {
  RunDirContents c;
  // The evaluation's record (stamped at 2.31) lands just before a step stamped at 2.30.
  ParseMetrics(StepLine(1, 1) + StepLine(2, 2) + EvalLine(2, 4, 2.31) + StepLine(3, 2.30) + StepLine(4, 3), c);
  ASSERT_EQ(c.steps.size(), 4u);
  EXPECT_DOUBLE_EQ(c.steps[2].wall_s, 2.30);
  EXPECT_DOUBLE_EQ(c.steps[3].wall_s, 3);
  EXPECT_DOUBLE_EQ(c.WallSeconds(), 3);
}

TEST(RunDir, WallSecondsSumsTheInvocations) {
  std::mt19937_64 rng(20261207);
  for (int trial = 0; trial < 50; ++trial) {
    // Invocations of random lengths, each resumed from a step the one before reached.
    std::string text;
    double total = 0;
    int step = 0;
    const int invocations = 1 + static_cast<int>(rng() % 4);
    for (int inv = 0; inv < invocations; ++inv) {
      const int n = 4 + static_cast<int>(rng() % 20);  // long enough for its restart to show
      double elapsed = 0;
      for (int i = 0; i < n; ++i) {
        elapsed += 0.6 + static_cast<double>(rng() % 1000) / 1000.0;
        text += StepLine(++step, elapsed);
      }
      if (rng() % 2) text += EvalLine(step, 3, elapsed += 0.25);  // an evaluation after its last step
      total += elapsed;
    }
    RunDirContents c;
    ParseMetrics(text, c);
    EXPECT_NEAR(c.WallSeconds(), total, 1e-6) << "trial " << trial;
  }
  RunDirContents none;
  EXPECT_EQ(none.WallSeconds(), 0);
}

TEST(RunDir, RandomBytesNeverCrashTheReaders) {
  std::mt19937_64 rng(20251123);
  const std::vector<std::string> pieces = {"{",
                                           "}",
                                           "[",
                                           "]",
                                           "\"step\":",
                                           "\"loss\":",
                                           "\"val_bpb\":",
                                           "1",
                                           "-3",
                                           "2.5e3",
                                           "null",
                                           ",",
                                           "\n",
                                           "\"",
                                           "\\",
                                           "\xff",
                                           "\xc3\xa9",
                                           " ",
                                           "1e999",
                                           StepLine(7, 1),
                                           EvalLine(7, 3, 1),
                                           "\"ckpt_stall_s\":0.1"};
  for (int iter = 0; iter < 400; ++iter) {
    std::string text;
    const int n = static_cast<int>(rng() % 200);
    for (int i = 0; i < n; ++i) {
      if (rng() % 3 == 0)
        text += static_cast<char>(rng() % 256);
      else
        text += pieces[rng() % pieces.size()];
    }
    RunDirContents c;
    ParseMetrics(text, c);
    EXPECT_EQ(c.steps.size() + c.evals.size() + c.skipped_lines, c.metrics_lines);
    for (const StepRecord& r : c.steps) {
      EXPECT_TRUE(std::isfinite(r.loss));
      EXPECT_GE(r.step, 0);
    }
    for (const EvalRecord& r : c.evals) EXPECT_TRUE(std::isfinite(r.val_bpb));
    std::string why;
    const auto p = ParsePipeline(text, &why);
    if (!p) {
      EXPECT_FALSE(why.empty());
    }
  }
  // Deep nesting is refused, not recursed into.
  std::string why;
  EXPECT_FALSE(ParsePipeline(std::string(100000, '[') + std::string(100000, ']'), &why));
  EXPECT_NE(why.find("nested"), std::string::npos) << why;
  RunDirContents c;
  ParseMetrics(std::string(100000, '{'), c);
  EXPECT_EQ(c.skipped_lines, 1u);
}

TEST(RunDir, MissingFilesAreListed) {
  TempDir d;
  Write(d / "config.txtpb", "steps: 12\n");
  const RunDirContents c = ReadRunDir(d.path(), kTrainJob);
  EXPECT_TRUE(HasProblem(c, "run.json is missing")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, "metrics.jsonl is missing")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, "pipeline.json is missing")) << AllProblems(c);
  EXPECT_FALSE(HasProblem(c, "config.txtpb")) << AllProblems(c);
  ASSERT_TRUE(c.steps_total);
  EXPECT_EQ(*c.steps_total, 12);
  EXPECT_EQ(c.state, "unknown");
  EXPECT_TRUE(c.steps.empty());
  const std::string html = RenderReport(c);
  EXPECT_NE(html.find("id=\"problems\""), std::string::npos);
  EXPECT_NE(html.find("run.json is missing"), std::string::npos);
}

TEST(RunDir, DamagedFilesAreProblemsNotFailures) {
  TempDir d;
  MakeRun(d);
  const std::string p = PipelineJson();
  Write(d / "pipeline.json", p.substr(0, p.size() / 2));  // torn
  Write(d / "run.json", "{\"threads\": 2,");
  Write(d / "config.txtpb", "steps: \"many\"\nbogus {");
  fs::create_directories(d / "checkpoints/step-000000040");  // no COMMIT
  fs::create_directories(d / "checkpoints/.tmp-step-000000050");
  fs::create_directories(d / "checkpoints/damaged-step-000000035");
  Write(d / "checkpoints/latest", "step-000000099\n");
  const RunDirContents c = ReadRunDir(d.path(), kTrainJob);
  EXPECT_FALSE(c.pipeline);
  EXPECT_TRUE(HasProblem(c, "pipeline.json is damaged")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, "run.json is damaged")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, "config.txtpb does not parse")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, "step-000000040 has no COMMIT")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, ".tmp-step-000000050 is left over")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, "damaged-step-000000035")) << AllProblems(c);
  EXPECT_TRUE(HasProblem(c, "latest names step-000000099")) << AllProblems(c);
  EXPECT_FALSE(c.steps_total);
  EXPECT_EQ(c.steps.size(), 30u);
  EXPECT_EQ(c.state, "interrupted");  // no total known, no pipeline state: not known to be done
  const std::string html = RenderReport(c);
  EXPECT_NE(html.find("pipeline.json is damaged"), std::string::npos);
}

TEST(RunDir, AHeldDirLockMeansTheRunIsStillBeingWritten) {
  TempDir d;
  MakeRun(d, PipelineJson("running"));
  {
    io::DirLock lock(d.path());
    const std::optional<bool> held = DirLockHeld(d.path());
    ASSERT_TRUE(held.has_value());
    EXPECT_TRUE(*held);
    const RunDirContents c = ReadRunDir(d.path(), kTrainJob);
    EXPECT_TRUE(c.writing);
    EXPECT_EQ(c.state, "running");
    EXPECT_TRUE(HasProblem(c, "still being written")) << AllProblems(c);
    EXPECT_NE(c.writing_detail.find(std::to_string(::getpid())), std::string::npos) << c.writing_detail;
    const std::string html = RenderReport(c);
    EXPECT_NE(html.find("still being written"), std::string::npos);
    EXPECT_NE(html.find("data-writing=\"1\""), std::string::npos);
  }
  EXPECT_FALSE(DirLockHeld(d.path()).value_or(true));
  // pipeline.json still says running (another host), nobody holds the lock, not updated for
  // long: the job died.
  const RunDirContents c = ReadRunDir(d.path(), kTrainJob);
  EXPECT_FALSE(c.writing);
  EXPECT_NE(c.state, "running");
  EXPECT_TRUE(HasProblem(c, "probably dead")) << AllProblems(c);
  // The same on this host, with a pid that is not alive: killed.
  std::string p = PipelineJson("running");
  p.replace(p.find("nohost.invalid"), 14, [] {
    char h[256] = {};
    ::gethostname(h, sizeof h - 1);
    return std::string(h);
  }());
  Write(d / "pipeline.json", p);
  const RunDirContents k = ReadRunDir(d.path(), kTrainJob);
  EXPECT_FALSE(k.writing);
  EXPECT_EQ(k.state, "interrupted");
  EXPECT_TRUE(HasProblem(k, "killed or crashed")) << AllProblems(k);
  EXPECT_FALSE(DirLockHeld(d / "nope").has_value());
}

TEST(RunDir, AGraphDescribedButNotRunHasNoFigures) {
  const std::string text = R"({"format": "bitbyte.pipeline/1", "job": "shard", "state": "finished",
    "graphs": [{"name": "shard.scan", "bottleneck": null,
                "nodes": [{"name": "enumerate", "kind": "source", "concurrency": 1, "queue_bound": null},
                          {"name": "read", "kind": "function", "concurrency": 4},
                          {"kind": "function"}, 7],
                "edges": [{"from": "enumerate", "to": "read"}, {"from": "read"}, "x"]},
               {"name": "shard.write", "nodes": []}, 3]})";
  std::string why;
  const auto p = ParsePipeline(text, &why);
  ASSERT_TRUE(p) << why;
  ASSERT_EQ(p->graphs.size(), 2u);
  const PipelineGraph& g = p->graphs[0];
  EXPECT_FALSE(g.bottleneck);
  ASSERT_EQ(g.nodes.size(), 2u);  // the nameless node and the number are dropped
  EXPECT_FALSE(g.nodes[0].has_counts);
  EXPECT_FALSE(g.nodes[0].queue_bound);
  EXPECT_FALSE(g.nodes[1].window);
  ASSERT_EQ(g.edges.size(), 1u);
  EXPECT_EQ(g.edges[0].kind, "data");
  EXPECT_FALSE(ParsePipeline("{\"format\": \"other/1\"}", &why));
  EXPECT_NE(why.find("format"), std::string::npos);
  EXPECT_FALSE(ParsePipeline("", &why));
  EXPECT_FALSE(ParsePipeline("[]", &why));

  // A shard job's directory: the training files are not expected there.
  TempDir d;
  Write(d / "pipeline.json", text);
  const RunDirContents c = ReadRunDir(d.path(), kTrainJob);
  EXPECT_TRUE(c.missing.empty()) << AllProblems(c);
  EXPECT_EQ(c.state, "finished");
  const std::string html = RenderReport(c);
  EXPECT_NE(html.find("data-graph=\"shard.scan\""), std::string::npos);
  EXPECT_NE(html.find("data-graph=\"shard.write\""), std::string::npos);
}

// ---------------------------------------------------------------------------------------------

TEST(Report, ContainsEverySectionAndNothingExternal) {
  TempDir d;
  MakeRun(d);
  const std::string html = RenderReport(ReadRunDir(d.path(), kTrainJob));
  for (const char* id : {"id=\"summary\"",
                         "id=\"pipeline\"",
                         "id=\"charts\"",
                         "id=\"chart-loss\"",
                         "id=\"chart-bpb\"",
                         "id=\"chart-throughput\"",
                         "id=\"chart-wait\"",
                         "id=\"chart-stall\"",
                         "id=\"checkpoints\"",
                         "id=\"config\"",
                         "id=\"environment\"",
                         "id=\"bitbyte-data\"",
                         "id=\"script-errors\"",
                         "name=\"xaxis\" value=\"wall\"",
                         "window.onerror",
                         "console.error",
                         "data-errors=\"0\"",
                         "class=\"legend\"",
                         "<table class=\"nodes\">",
                         "<pre class=\"config\">",
                         "libtorch",
                         "1.13.1",
                         "steps: 30",
                         ">finished<",
                         "30 of 30 (100%)",
                         "3.8000 at step 20",
                         "<span class=\"tag\">bottleneck</span>"}) {
    EXPECT_NE(html.find(id), std::string::npos) << id;
  }
  EXPECT_EQ(html.find("id=\"problems\""), std::string::npos) << "no problem, no panel";
  // The error trap comes before any other script.
  EXPECT_LT(html.find("window.onerror"), html.find("<style>"));
  // Self-contained: no URL at all, no external resource.
  for (const char* bad : {"http://", "https://", "<link", "src=", "href=", "url(", "@import", "//cdn"})
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  EXPECT_EQ(Count(html, "<script"), 3u);
  EXPECT_EQ(Count(html, "</script>"), 3u);
  EXPECT_TRUE(ValidUtf8(html));
  // Every node of the graph is in the node table.
  for (const std::string n :
       {"batch_source", "prefetch", "prepare", "order", "train_step", "metrics_order", "eval", "metrics", "checkpoint"})
    EXPECT_TRUE(html.find("<tr><td>" + n + "</td>") != std::string::npos ||
                html.find("<td>" + n + " <span class=\"tag\">") != std::string::npos)
        << n;
}

TEST(Report, TheEmbeddedDataParsesAndHoldsTheRecords) {
  TempDir d;
  MakeRun(d);
  const std::string html = RenderReport(ReadRunDir(d.path(), kTrainJob));
  const nlohmann::json j = nlohmann::json::parse(DataJson(html));
  EXPECT_EQ(j["format"], "bitbyte.report/1");
  EXPECT_EQ(j["steps"]["loss"].size(), 30u);
  EXPECT_EQ(j["steps"]["step"][29], 30);
  EXPECT_EQ(j["steps"]["ckpt_stall_s"][9], 0.0012);
  EXPECT_TRUE(j["steps"]["ckpt_stall_s"][8].is_null());
  EXPECT_EQ(j["evals"]["val_bpb"].size(), 3u);
  EXPECT_EQ(j["pipeline"]["graphs"][0]["nodes"].size(), 9u);
  EXPECT_EQ(j["steps_total"], 30);
  EXPECT_EQ(j["state"], "finished");
}

TEST(Report, EscapesScriptEndsHtmlAndOddCharacters) {
  TempDir d;
  MakeRun(d, PipelineJson("finished", "</script><script>alert(1)</script>"));
  Write(d / "run.json",
        "{\"data\": \"</script><script>alert(2)</script>\", \"note\": \"a\xe2\x80\xa8"
        "b\xe2\x80\xa9"
        "c <!-- x\"}\n");
  Write(d / "config.txtpb", "# </script><b>bold</b> & \"q\" \xff\xfe\x01\nsteps: 30\n");
  const RunDirContents c = ReadRunDir(d.path(), kTrainJob);
  const std::string html = RenderReport(c);
  // "<script" inside the data is harmless (no "<!--" can precede it); "</script" would end it.
  EXPECT_EQ(Count(html, "<script") - Count(DataJson(html), "<script"), 3u);
  EXPECT_EQ(Count(html, "</script"), 3u);
  EXPECT_EQ(html.find("<b>bold</b>"), std::string::npos);
  EXPECT_NE(
      html.find("&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; &amp; &quot;q&quot; \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"),
      std::string::npos);
  EXPECT_NE(html.find("&lt;/script&gt;&lt;script&gt;alert(2)"), std::string::npos);  // environment table
  EXPECT_TRUE(ValidUtf8(html));
  const std::string data = DataJson(html);
  EXPECT_EQ(data.find("</"), std::string::npos);
  EXPECT_EQ(data.find("<!--"), std::string::npos);
  EXPECT_EQ(data.find("\xe2\x80\xa8"), std::string::npos);
  EXPECT_EQ(data.find("\xe2\x80\xa9"), std::string::npos);
  EXPECT_NE(data.find("<\\/script>"), std::string::npos);
  EXPECT_NE(data.find("\\u2028"), std::string::npos);
  // The escapes mean the same characters.
  const nlohmann::json j = nlohmann::json::parse(data);
  EXPECT_EQ(j["pipeline"]["graphs"][0]["nodes"][0]["name"], "</script><script>alert(1)</script>");
  EXPECT_EQ(j["run"][1][1],
            "a\xe2\x80\xa8"
            "b\xe2\x80\xa9"
            "c <!-- x");
  EXPECT_EQ(HtmlEscape("a<b>&\"'\x01\xc3\xa9\xed\xa0\x80"),
            "a&lt;b&gt;&amp;&quot;&#39;\xEF\xBF\xBD\xc3\xa9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(EscapeScriptJson("\"</a><!--\""), "\"<\\/a><\\u0021--\"");
}

TEST(Report, ProblemsPanelListsWhatIsWrong) {
  TempDir d;
  MakeRun(d);
  fs::remove(d / "run.json");
  Write(d / "metrics.jsonl", StepLine(1, 0.1) + "garbage\n" + StepLine(2, 0.2) + "{\"step\":3,\"lo");
  const std::string html = RenderReport(ReadRunDir(d.path(), kTrainJob));
  EXPECT_NE(html.find("id=\"problems\""), std::string::npos);
  EXPECT_NE(html.find("run.json is missing"), std::string::npos);
  EXPECT_NE(html.find("2 lines skipped"), std::string::npos);
  EXPECT_NE(html.find("lines 2, 4)"), std::string::npos);
}

TEST(Report, RandomlyDamagedRunDirectoriesAlwaysRender) {
  std::mt19937_64 rng(7);
  const std::vector<std::string> files = {"run.json",      "config.txtpb",       "metrics.jsonl",
                                          "pipeline.json", "checkpoints/latest", "checkpoints/best"};
  int rendered = 0, refused = 0;
  for (int iter = 0; iter < 150; ++iter) {
    TempDir d;
    MakeRun(d);
    const int damages = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < damages; ++k) {
      const std::string path = d / files[rng() % files.size()];
      std::string text = fs::exists(path) && fs::is_regular_file(path) ? Read(path) : std::string();
      switch (rng() % 7) {
        case 0:  // truncated anywhere (a torn write)
          if (!text.empty()) Write(path, text.substr(0, rng() % text.size()));
          break;
        case 1:  // bytes flipped
          for (int f = 0; f < 8 && !text.empty(); ++f) text[rng() % text.size()] ^= static_cast<char>(1 + rng() % 255);
          Write(path, text);
          break;
        case 2:  // removed
          fs::remove(path);
          break;
        case 3:  // garbage appended
          for (int f = 0; f < 64; ++f) text += static_cast<char>(rng() % 256);
          Write(path, text);
          break;
        case 4:  // emptied
          Write(path, "");
          break;
        case 5:  // a directory where a file should be
          fs::remove(path);
          fs::create_directories(path);
          break;
        case 6:  // a line duplicated somewhere in the middle
          if (!text.empty()) {
            const size_t at = rng() % text.size();
            Write(path, text.substr(0, at) + text.substr(at / 2));
          }
          break;
      }
    }
    RunDirContents c;
    try {
      c = ReadRunDir(d.path(), kTrainJob);
    } catch (const UsageError&) {
      ++refused;  // none of the four files left
      continue;
    }
    const std::string html = RenderReport(c);
    ASSERT_TRUE(ValidUtf8(html)) << "iteration " << iter;
    ASSERT_EQ(Count(html, "</script>"), 3u) << "iteration " << iter;
    ASSERT_EQ(Count(html, "<script") - Count(DataJson(html), "<script"), 3u) << "iteration " << iter;
    ASSERT_NE(html.find("</html>"), std::string::npos);
    ASSERT_NO_THROW(nlohmann::json::parse(DataJson(html))) << "iteration " << iter;
    ++rendered;
  }
  EXPECT_GT(rendered, 100);
  (void)refused;
}

TEST(Report, WriteReportWritesTheFileAtomically) {
  TempDir d;
  MakeRun(d);
  const RunDirContents c = WriteReport(d.path(), d / "out.html");
  EXPECT_EQ(c.steps.size(), 30u);
  const std::string html = Read(d / "out.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_FALSE(fs::exists(d / "out.html.tmp"));
  EXPECT_THROW(WriteReport(d / "nope", d / "x.html"), UsageError);
  EXPECT_FALSE(fs::exists(d / "x.html"));
}

}  // namespace
}  // namespace bitbyte::runs
