// bitbyte report: parsing and wiring only; the report lives in runs/report.
#include <cstdio>
#include <memory>
#include <string>

#include "apps/commands.h"
#include "base/file_io.h"
#include "runs/report.h"
#include "train/config.h"

namespace bitbyte::cli {

void AddReportCommand(CLI::App& app) {
  struct Args {
    std::string dir, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c =
      app.add_subcommand("report",
                         "Write one self-contained HTML page about a training run: state, steps done, latest and\n"
                         "best val bpb; charts of training loss, val bpb, throughput, data wait and checkpoint\n"
                         "stalls (x axis: step or wall time); the flow graph from pipeline.json with each node's\n"
                         "busy %, items/s and queue, coloured by busy % with the bottleneck marked; the config and\n"
                         "the environment (run.json). Everything is inline: the page loads no file and no URL, so it\n"
                         "can be mailed or archived as is. Works on a run that is still training, was killed or is\n"
                         "damaged: missing files and torn or invalid metrics lines are listed in a Problems panel\n"
                         "and printed here as 'warning:' lines. Prints the path of the page on stdout.\n"
                         "Open it as report.html#wall to start with wall time on the x axis.\n"
                         "Exit status: 0 when the page was written (even with problems), 2 when RUN_DIR is not a\n"
                         "run directory, 1 when the page cannot be written.");
  c->add_option("run_dir", a->dir, "Run directory (from bitbyte train --out)")->required();
  c->add_option("-o,--out", a->out, "HTML file to write (default: RUN_DIR/report.html)");
  c->callback([a] {
    const std::string out = a->out.empty() ? io::JoinPath(a->dir, "report.html") : a->out;
    const runs::RunDirContents r = runs::WriteReport(a->dir, out, {train::ConfigTotalSteps});
    for (const std::string& m : r.missing) std::fprintf(stderr, "warning: %s\n", m.c_str());
    for (const std::string& p : r.problems) std::fprintf(stderr, "warning: %s\n", p.c_str());
    std::printf("%s\n", out.c_str());
  });
}

}  // namespace bitbyte::cli
