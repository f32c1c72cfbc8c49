// bitbyte graph (shard|train): parsing and wiring only. The graphs come from the jobs' own
// wiring (DescribeShardJob, DescribeTrainJob) or from a run's pipeline.json.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "apps/commands.h"
#include "apps/job_options.h"
#include "base/error.h"
#include "base/file_io.h"
#include "pipeline/export.h"
#include "pipeline/monitor.h"
#include "pipeline/progress.h"

namespace bitbyte::cli {
namespace {

using json = nlohmann::json;
using pipeline::kFiguresFile;

bool OnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string dir = dirs.substr(start, end - start);
    if (!dir.empty() && ::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// Graphviz's dot, DOT in and `format` (svg, png) out.
std::string RenderWithDot(const std::string& dot, const std::string& format) {
  if (!OnPath("dot"))
    throw Error("--format " + format +
                " needs Graphviz's 'dot', which is not on PATH: install it (apt-get install graphviz), "
                "or use --format dot or json and render elsewhere");
  char dir_template[] = "/tmp/bitbyte-graph.XXXXXX";
  const char* dir = ::mkdtemp(dir_template);
  if (!dir) throw Error(ErrnoMessage("create", "/tmp/bitbyte-graph.XXXXXX", errno));
  const std::string in = std::string(dir) + "/graph.dot", out = std::string(dir) + "/graph." + format,
                    err = std::string(dir) + "/dot.err";
  struct Cleanup {
    std::vector<std::string> files;
    std::string dir;
    ~Cleanup() {
      for (const auto& f : files) ::unlink(f.c_str());
      ::rmdir(dir.c_str());
    }
  } cleanup{{in, out, err}, dir};
  io::WriteFileAtomic(io::Default(), in, dot);
  const std::string type = "-T" + format;  // built before fork: the child only calls async-signal-safe functions
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(ErrnoMessage("fork for", "dot", errno));
  if (pid == 0) {
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) ::dup2(fd, 2);
    ::execlp("dot", "dot", type.c_str(), "-o", out.c_str(), in.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string message = io::Default().Exists(err) ? io::ReadFile(io::Default(), err) : "";
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw Error("graphviz 'dot -T" + format + "' failed" + (message.empty() ? "" : ": " + message));
  }
  return io::ReadFile(io::Default(), out);
}

std::string FormatOf(const std::string& format, const std::string& out) {
  if (!format.empty()) return format;
  const auto ends = [&](const char* ext) {
    const std::string e = ext;
    return out.size() >= e.size() && out.compare(out.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".svg")) return "svg";
  if (ends(".png")) return "png";
  if (ends(".json")) return "json";
  return "dot";
}

struct GraphArgs {
  std::string format, out, figures;
};

void AddGraphOutputOptions(CLI::App* c, GraphArgs* g) {
  c->add_option("--format", g->format,
                "dot, svg, png (svg and png through Graphviz's dot) or json (default: from --graph-out's "
                "extension, else dot)")
      ->check(CLI::IsMember({"dot", "svg", "png", "json"}));
  c->add_option("--graph-out", g->out,
                "Write the drawing to FILE instead of stdout (-o/--out is the job's own output, as in the job)");
  c->add_option("--figures", g->figures,
                "Draw the graph as it ran in this run (or dataset) directory, with its per-node figures from "
                "DIR/pipeline.json (busy % as colour, the bottleneck outlined), instead of building it from "
                "the options");
}

// The document from --figures DIR, checked to be a `job` run.
std::string FiguresDocument(const std::string& dir, const std::string& job) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw UsageError("--figures " + dir + ": no such directory");
  const std::string path = io::JoinPath(dir, kFiguresFile);
  if (!io::Default().Exists(path))
    throw UsageError("--figures " + dir + ": no " + kFiguresFile +
                     " there (a run writes it while it runs; older runs have none)");
  const std::string text = io::ReadFile(io::Default(), path);
  const json doc = json::parse(text, nullptr, false);
  if (!doc.is_object()) throw DataError(path + ": not JSON (damaged?)");
  if (!doc.contains("job") || !doc["job"].is_string())
    throw DataError(path + ": field \"job\" is missing or not a string (damaged?)");
  if (doc["job"].get<std::string>() != job)
    throw UsageError("--figures " + dir + ": that is a '" + doc["job"].get<std::string>() + "' job, not " + job);
  return text;
}

void Emit(const std::string& document, const std::string& source, const GraphArgs& g) {
  const std::string format = FormatOf(g.format, g.out);
  if (g.out.empty() && format == "png" && ::isatty(1))
    throw UsageError("--format png writes binary: give --graph-out FILE");
  std::string bytes;
  if (format == "json")
    bytes = document;
  else {
    bytes = pipeline::PipelineDot(document, source);
    if (format != "dot") bytes = RenderWithDot(bytes, format);
  }
  if (g.out.empty()) {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    return;
  }
  io::WriteFileAtomic(io::Default(), g.out, bytes);
  std::fprintf(stderr, "graph: %s\n", g.out.c_str());
}

}  // namespace

void AddGraphCommand(CLI::App& app, DescribeTrain describe_train, DescribeQuantize describe_quantize) {
  CLI::App* graph =
      app.add_subcommand("graph",
                         "Print the flow graph a job would build, without running it: every node with its kind,\n"
                         "concurrency and queue bound, every edge with what flows on it. With --figures DIR, the\n"
                         "graph as it ran in DIR with its live per-node figures (busy %, idle %, blocked %, queue,\n"
                         "throughput), coloured by busy % with the bottleneck outlined. Formats: dot, json, and svg\n"
                         "or png through Graphviz. Format of the figures: docs/pipeline.md");
  graph->require_subcommand(1);

  struct ShardGraph {
    ShardArgs job;
    GraphArgs g;
  };
  auto sa = std::make_shared<ShardGraph>();
  CLI::App* shard =
      graph->add_subcommand("shard", "The graphs of 'bitbyte shard' (scan, then write) for these options");
  AddShardJobOptions(shard, &sa->job, /*for_job=*/false);
  AddGraphOutputOptions(shard, &sa->g);
  shard->callback([sa] {
    if (!sa->g.figures.empty()) return Emit(FiguresDocument(sa->g.figures, "shard"), sa->g.figures, sa->g);
    Emit(shard::DescribeShardJob(ShardJobOptionsOf(sa->job)), "shard graph", sa->g);
  });

  if (!describe_train) return;  // the light binary: bitbyte-ml draws the train graph
  struct TrainGraph {
    TrainArgs job;
    GraphArgs g;
  };
  auto ta = std::make_shared<TrainGraph>();
  CLI::App* train = graph->add_subcommand(
      "train", "The graph of 'bitbyte train' for these options (config, --set, --resume RUN_DIR: its config)");
  AddTrainJobOptions(train, &ta->job, /*for_job=*/false);
  AddGraphOutputOptions(train, &ta->g);
  train->callback([ta, describe_train] {
    if (!ta->g.figures.empty()) return Emit(FiguresDocument(ta->g.figures, "train"), ta->g.figures, ta->g);
    Emit(describe_train(TrainOptionsOf(ta->job)), "train graph", ta->g);
  });

  if (!describe_quantize) return;
  struct QuantizeGraph {
    train::QuantizeOptions job;
    GraphArgs g;
  };
  auto qa = std::make_shared<QuantizeGraph>();
  CLI::App* quantize = graph->add_subcommand("quantize", "The graph of 'bitbyte quantize' for these options");
  AddQuantizeJobOptions(quantize, &qa->job);
  AddGraphOutputOptions(quantize, &qa->g);
  quantize->callback([qa, describe_quantize] {
    if (!qa->g.figures.empty()) throw UsageError("graph quantize: --figures: quantize writes no pipeline.json");
    Emit(describe_quantize(qa->job), "quantize graph", qa->g);
  });
}

}  // namespace bitbyte::cli
