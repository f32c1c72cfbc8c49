#pragma once
// Progress for long jobs: a refreshing line on a terminal (bytes/s, ETA), plain periodic lines
// when stderr is not a terminal, or nothing. Thread-safe; printing is rate-limited.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace bitbyte::pipeline {

enum class ProgressMode { kAuto, kTerminal, kPlain, kNone };

class Progress {
 public:
  // total 0: unknown (no ETA). Plain mode prints every `plain_interval_s`.
  Progress(std::string label, uint64_t total, ProgressMode mode, double plain_interval_s = 10.0,
           std::FILE* out = stderr);
  ~Progress();
  void Add(uint64_t bytes);
  void Finish();  // prints the final line once

  static std::string FormatBytes(double bytes);
  static std::string FormatDuration(double seconds);

 private:
  void Print(bool final);
  std::string label_;
  uint64_t total_;
  ProgressMode mode_;
  double interval_s_;
  std::FILE* out_;
  std::atomic<uint64_t> done_{0};
  std::chrono::steady_clock::time_point start_;
  std::atomic<int64_t> last_print_ns_{0};  // since start_; read without the lock in Add()
  std::mutex mu_;
  bool finished_ = false;
};

}  // namespace bitbyte::pipeline
