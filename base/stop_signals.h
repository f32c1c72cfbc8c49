#pragma once
// SIGINT and SIGTERM as a request to stop: while a StopSignals lives, either signal sets a flag
// that the job polls at its next safe point (the training job: after the current step, with a
// checkpoint; the shard job: before the next input or frame, leaving the previous dataset), instead
// of killing the process. The previous handlers come back when it is destroyed. One at a time.
#include <atomic>

namespace bitbyte {

class StopSignals {
 public:
  StopSignals();  // clears the flag
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Set by a signal (async-signal-safe: a lock-free atomic store).
  static const std::atomic<bool>& flag();
  static bool Requested() { return flag().load(std::memory_order_relaxed); }
};

}  // namespace bitbyte
