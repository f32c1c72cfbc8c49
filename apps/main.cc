// bitbyte: byte-level language modelling on tbb::flow graphs. This file only parses and
// dispatches; each subcommand lives in its own file and calls the libraries.
#include <sys/resource.h>

#include <cstdio>
#include <exception>
#include <stdexcept>

#include "apps/commands.h"
#include "pipeline/graph.h"
#include "sharding/error.h"

namespace {

// A dataset reader keeps every shard file open; allow as many as the hard limit permits.
void RaiseOpenFileLimit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  RaiseOpenFileLimit();
  CLI::App app{
      "bitbyte: raw text in, byte-level models trained, bits-per-byte out.\n"
      "Run 'bitbyte SUBCOMMAND --help' for the options of each subcommand."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bitbyte 0.1.0");
  bitbyte::cli::AddShardCommand(app);
  bitbyte::cli::AddInspectCommand(app);
  bitbyte::cli::AddVerifyCommand(app);
  bitbyte::cli::AddCatCommand(app);
  bitbyte::cli::AddTrainCommand(app);
  bitbyte::cli::AddEvalCommand(app);
  bitbyte::cli::AddGenerateCommand(app);
  bitbyte::cli::AddBenchCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const std::invalid_argument& e) {  // a bad option value found after parsing
    std::fprintf(stderr, "bitbyte: error: %s\n", e.what());
    return 2;
  } catch (const bitbyte::DataError& e) {
    std::fprintf(stderr, "bitbyte: error: %s\n", e.what());
    return 3;
  } catch (const bitbyte::pipeline::NodeError& e) {
    std::fprintf(stderr, "bitbyte: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitbyte: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
