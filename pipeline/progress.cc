#include "pipeline/progress.h"

#include <unistd.h>

#include <cmath>

namespace bitbyte::pipeline {

Progress::Progress(std::string label, uint64_t total, ProgressMode mode, double plain_interval_s, std::FILE* out)
    : label_(std::move(label)), total_(total), mode_(mode), interval_s_(plain_interval_s), out_(out) {
  if (mode_ == ProgressMode::kAuto) mode_ = ::isatty(::fileno(out_)) ? ProgressMode::kTerminal : ProgressMode::kPlain;
  start_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { Finish(); }

std::string Progress::FormatBytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string Progress::FormatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  long t = std::lround(s);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

void Progress::Add(uint64_t bytes) {
  done_ += bytes;
  if (mode_ == ProgressMode::kNone) return;
  const int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count();
  const double every = mode_ == ProgressMode::kTerminal ? 0.2 : interval_s_;
  if (static_cast<double>(now_ns - last_print_ns_.load()) * 1e-9 < every) return;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || finished_) return;
  last_print_ns_ = now_ns;
  Print(false);
}

void Progress::Finish() {
  if (mode_ == ProgressMode::kNone) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  Print(true);
}

void Progress::Print(bool final) {
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double done = static_cast<double>(done_.load());
  const double rate = el > 0 ? done / el : 0;
  std::string line = label_ + ": " + FormatBytes(done);
  if (total_ > 0) {
    char pct[32];
    std::snprintf(pct, sizeof pct, " / %s (%.1f%%)", FormatBytes(static_cast<double>(total_)).c_str(),
                  100.0 * done / static_cast<double>(total_));
    line += pct;
  }
  line += ", " + FormatBytes(rate) + "/s";
  if (final) {
    line += ", " + FormatDuration(el);
  } else if (total_ > 0 && rate > 0) {
    line += ", ETA " + FormatDuration((static_cast<double>(total_) - done) / rate);
  }
  if (mode_ == ProgressMode::kTerminal) {
    std::fprintf(out_, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

}  // namespace bitbyte::pipeline
