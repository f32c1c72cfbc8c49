#pragma once
// Small helpers shared by the bitbyte subcommands.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bitbyte::cli {

// "1048576", "64K", "1M", "2MiB", "1G" (binary units). Throws UsageError naming the option.
uint64_t ParseSize(const std::string& text, const std::string& option);

std::string Hex64(uint64_t v);

// ---- child processes, for benchmarks ----
struct RunResult {
  double seconds = 0;      // wall
  double cpu_seconds = 0;  // user + system
  long max_rss_kb = 0;
  std::string failure;  // empty when it exited 0; else "exit status N" or "killed by signal N (...)"
};

std::string SelfExe();  // this bitbyte binary's path

// This program, for running itself as a child: the very binary that is running, even when a
// rebuild has replaced the file since it started (a benchmark of an hour outlives many builds).
inline constexpr const char* kSelfExe = "/proc/self/exe";

struct SpawnOptions {
  std::string stdout_path = "/dev/null";
  std::string stderr_path;                                   // empty: the child writes to this process's stderr
  std::vector<std::pair<std::string, std::string>> set_env;  // set in the child
  std::vector<std::string> unset_env;                        // removed in the child
  bool throw_on_failure = true;  // false: a failed command is reported in RunResult::failure
};

// Runs argv, timed with wait4 (wall, CPU, peak RSS); throws if it cannot start or (unless told
// otherwise) fails.
RunResult Spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

}  // namespace bitbyte::cli
