#include "base/stop_signals.h"

#include <csignal>

namespace bitbyte {
namespace {

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "a signal handler may only store to a lock-free atomic");

extern "C" void OnStopSignal(int) { g_stop.store(true); }

struct sigaction g_old_int = {}, g_old_term = {};

}  // namespace

StopSignals::StopSignals() {
  g_stop.store(false);
  struct sigaction sa = {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

const std::atomic<bool>& StopSignals::flag() { return g_stop; }

}  // namespace bitbyte
