// bitbyte: byte-level language modelling on tbb::flow graphs. This file only parses and
// dispatches; each subcommand lives in its own file and calls the libraries.
#include <malloc.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <string>
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

// Model commands allocate and free tensors of up to tens of MB every step. glibc's defaults
// serve those from fresh mmaps or trim them back to the OS, so every step page-faults its
// activations again: softmax and GELU backward measured 1.5-3x slower than in a warm heap. Keep
// freed memory for reuse instead (tensors up to 32 MiB from the heap, no trimming below 1 GiB
// free, one arena so the train and eval threads share it). Peak RSS is unchanged; memory is
// simply not handed back between steps.
void TuneMallocForModels(int argc, char** argv) {
  const char* command = nullptr;
  for (int i = 1; i < argc && command == nullptr; ++i)
    if (argv[i][0] != '-') command = argv[i];
  if (command == nullptr) return;
  const std::string cmd = command;
  if (cmd != "train" && cmd != "eval" && cmd != "generate" && cmd != "bench") return;
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  ::mallopt(M_ARENA_MAX, 1);
}

}  // namespace

int main(int argc, char** argv) {
  TuneMallocForModels(argc, argv);
  RaiseOpenFileLimit();
  CLI::App app{
      "bitbyte: raw text in, byte-level models trained, bits-per-byte out.\n"
      "Run 'bitbyte SUBCOMMAND --help' for the options of each subcommand."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bitbyte " BITBYTE_VERSION);
  bitbyte::cli::AddShardCommand(app);
  bitbyte::cli::AddInspectCommand(app);
  bitbyte::cli::AddVerifyCommand(app);
  bitbyte::cli::AddCatCommand(app);
  bitbyte::cli::AddTrainCommand(app);
  bitbyte::cli::AddEvalCommand(app);
  bitbyte::cli::AddGenerateCommand(app);
  bitbyte::cli::AddBenchCommand(app);
  bitbyte::cli::AddGraphCommand(app);
  bitbyte::cli::AddTopCommand(app);
  bitbyte::cli::AddReportCommand(app);
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
    try {  // bad data found inside a graph keeps its exit code
      if (e.cause()) std::rethrow_exception(e.cause());
    } catch (const bitbyte::DataError&) {
      return 3;
    } catch (...) {
    }
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitbyte: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
