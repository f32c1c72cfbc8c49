// bitbyte: byte-level language modelling on tbb::flow graphs. This file only parses and
// dispatches; each subcommand lives in its own file and calls the libraries.
//
// Built twice (apps/CMakeLists.txt). `bitbyte-ml` (BITBYTE_ML=1) has every subcommand and links
// LibTorch. `bitbyte` (BITBYTE_ML=0) has those that need neither LibTorch nor the trainer (shard,
// inspect, verify, cat, bench shard, graph shard) and execs bitbyte-ml, from its own directory,
// with the same arguments for anything else: LibTorch's static initialisation alone takes
// ~0.35 s, which the data commands should not pay.
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#if BITBYTE_ML
#include <c10/util/Exception.h>

#include "models/blas.h"
#endif

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "base/error.h"
#include "base/version.h"
#include "pipeline/graph.h"

namespace {

// A dataset reader keeps every shard file open; allow as many as the hard limit permits.
void RaiseOpenFileLimit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

#if !BITBYTE_ML
// Whether the command line names a subcommand of bitbyte-ml: anything but the light ones,
// including help for the whole program or a group, which must list every subcommand.
bool NeedsLibTorch(int argc, char** argv) {
  std::vector<std::string> words;
  bool version = false;
  for (int i = 1; i < argc && words.size() < 2; ++i) {
    const std::string a = argv[i];
    if (a == "--version") version = true;
    if (!a.empty() && a[0] != '-') words.push_back(a);
  }
  if (words.empty()) return !version;
  static const char* const kLight[] = {"shard", "inspect", "verify", "cat"};
  for (const char* w : kLight)
    if (words[0] == w) return false;
  if (words[0] == "graph" || words[0] == "bench") return words.size() < 2 || words[1] != "shard";
  return true;
}

int ExecMl(char** argv) {
  std::string self = bitbyte::cli::SelfExe();
  const std::string ml = self.substr(0, self.rfind('/') + 1) + "bitbyte-ml";
  ::execv(ml.c_str(), argv);  // returns only on failure
  std::fprintf(stderr, "bitbyte: error: this subcommand needs LibTorch, in %s, which cannot be run: %s\n", ml.c_str(),
               std::strerror(errno));
  return 1;
}
#endif

#if BITBYTE_ML
// Model commands allocate and free tensors of up to tens of MB every step. glibc's defaults
// serve those from fresh mmaps or trim them back to the OS, so every step page-faults its
// activations again: softmax and GELU backward measured 1.5-3x slower than in a warm heap. Keep
// freed memory for reuse instead (tensors up to 32 MiB from the heap, no trimming below 1 GiB
// free, one arena so the train and eval threads share it). Peak RSS is unchanged; memory is
// simply not handed back between steps.
bool IsModelCommand(int argc, char** argv) {
  const char* command = nullptr;
  for (int i = 1; i < argc && command == nullptr; ++i)
    if (argv[i][0] != '-') command = argv[i];
  if (command == nullptr) return false;
  const std::string cmd = command;
  return cmd == "train" || cmd == "eval" || cmd == "quantize" || cmd == "generate" || cmd == "bench";
}

void TuneMallocForModels(int argc, char** argv) {
  if (!IsModelCommand(argc, argv)) return;
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  ::mallopt(M_ARENA_MAX, 1);
}
#endif

// One line for the user and the exit code (bitbyte::ExitCode: the table is in the README).
struct Failure {
  std::string message;
  int exit_code = 1;
};

#if BITBYTE_ML
// The first line only (LibTorch appends C++ frames to some messages).
std::string FirstLine(const std::string& s) {
  const size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}
#endif

Failure Classify(const std::exception_ptr& ep) {
  using bitbyte::ErrorCode;
  using bitbyte::ExitCode;
  try {
    std::rethrow_exception(ep);
  } catch (const bitbyte::pipeline::NodeError& e) {
    // The node's own error, named by the node (its code is the NodeError's too).
    if (!e.cause()) return {e.what(), ExitCode(e.code())};
    Failure inner = Classify(e.cause());
    inner.message = "node '" + e.node() + "': " + inner.message;
    return inner;
  } catch (const bitbyte::Error& e) {
    return {e.what(), ExitCode(e.code())};
#if BITBYTE_ML
  } catch (const c10::Error& e) {  // LibTorch: its message without the C++ frames it appends
    return {"LibTorch: " + FirstLine(e.what_without_backtrace()), ExitCode(ErrorCode::kIo)};
#endif
  } catch (const std::bad_alloc&) {
    return {"out of memory", ExitCode(ErrorCode::kIo)};
  } catch (const std::exception& e) {
    return {e.what(), ExitCode(bitbyte::CodeOf(ep))};
  } catch (...) {
    return {"unknown error", ExitCode(ErrorCode::kInternal)};
  }
}

}  // namespace

int main(int argc, char** argv) {
#if BITBYTE_ML
  TuneMallocForModels(argc, argv);
#else
  if (NeedsLibTorch(argc, argv)) return ExecMl(argv);
#endif
  RaiseOpenFileLimit();
  CLI::App app{
      "bitbyte: raw text in, byte-level models trained, bits-per-byte out.\n"
      "Run 'bitbyte SUBCOMMAND --help' for the options of each subcommand."};
  app.require_subcommand(1);
  app.set_version_flag("--version", bitbyte::kVersionString);
  bitbyte::cli::AddShardCommand(app);
  bitbyte::cli::AddInspectCommand(app);
  bitbyte::cli::AddVerifyCommand(app);
  bitbyte::cli::AddCatCommand(app);
  CLI::App* bench = bitbyte::cli::AddBenchCommand(app);
#if BITBYTE_ML
  bitbyte::cli::AddTrainCommand(app);
  bitbyte::cli::AddEvalCommand(app);
  bitbyte::cli::AddQuantizeCommand(app);
  bitbyte::cli::AddGenerateCommand(app);
  bitbyte::cli::AddBenchTrainCommand(*bench);
  bitbyte::cli::AddBenchTracksCommand(*bench);
  bitbyte::cli::AddBenchGenerateCommand(*bench);
  bitbyte::cli::AddGraphCommand(app, bitbyte::train::DescribeTrainJob, bitbyte::train::DescribeQuantizeJob);
  bitbyte::cli::AddTopCommand(app);
  bitbyte::cli::AddReportCommand(app);
#else
  (void)bench;
  bitbyte::cli::AddGraphCommand(app, nullptr, nullptr);
#endif
  try {
#if BITBYTE_ML
    // The BLAS kernels before any command runs: choosing them may run the process again
    // (models/blas.h).
    bitbyte::models::ChooseBlasCore(argv);
    if (IsModelCommand(argc, argv)) bitbyte::models::CheckBlas(argv);
#endif
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (...) {
    const Failure f = Classify(std::current_exception());
    std::fprintf(stderr, "bitbyte: error: %s\n", f.message.c_str());
    return f.exit_code;
  }
  return 0;
}
