#include "apps/cli_util.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "base/error.h"

namespace bitbyte::cli {

uint64_t ParseSize(const std::string& text, const std::string& option) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) throw UsageError(option + ": '" + text + "' is not a size (examples: 65536, 64K, 1M, 2G)");
  uint64_t n = 0;
  try {
    n = std::stoull(text.substr(0, i));
  } catch (const std::out_of_range&) {
    throw UsageError(option + ": '" + text + "' is too large");
  }
  std::string unit = text.substr(i);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  uint64_t mul = 1;
  if (unit.empty() || unit == "B")
    mul = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    mul = uint64_t{1} << 10;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    mul = uint64_t{1} << 20;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    mul = uint64_t{1} << 30;
  else
    throw UsageError(option + ": unknown unit '" + text.substr(i) + "' (use K, M or G)");
  if (n > UINT64_MAX / mul) throw UsageError(option + ": '" + text + "' is too large");
  return n * mul;
}

std::string Hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string SelfExe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("cannot find the bitbyte executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

RunResult Spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(ErrnoMessage("fork for", argv[0], errno));
  if (pid == 0) {
    const int out = ::open(options.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
      std::perror(options.stdout_path.c_str());
      ::_exit(127);
    }
    ::dup2(out, 1);
    if (!options.stderr_path.empty()) {
      const int err = ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err < 0) {
        std::perror(options.stderr_path.c_str());
        ::_exit(127);
      }
      ::dup2(err, 2);
    }
    for (const auto& name : options.unset_env) ::unsetenv(name.c_str());
    for (const auto& [name, value] : options.set_env) ::setenv(name.c_str(), value.c_str(), 1);
    std::vector<char*> args;
    for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::perror(args[0]);
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru {};
  if (::wait4(pid, &status, 0, &ru) < 0) throw Error(ErrnoMessage("wait for", argv[0], errno));
  RunResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.max_rss_kb = ru.ru_maxrss;
  r.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  if (WIFSIGNALED(status))
    r.failure =
        "killed by signal " + std::to_string(WTERMSIG(status)) +
        (WTERMSIG(status) == SIGKILL ? " (out of memory?)" : " (" + std::string(strsignal(WTERMSIG(status))) + ")");
  else if (WEXITSTATUS(status) != 0)
    r.failure = "exit status " + std::to_string(WEXITSTATUS(status));
  if (!r.failure.empty() && options.throw_on_failure) {
    std::string cmd;
    for (const auto& s : argv) cmd += s + " ";
    throw Error("benchmark command failed (" + r.failure + "): " + cmd);
  }
  return r;
}

}  // namespace bitbyte::cli
