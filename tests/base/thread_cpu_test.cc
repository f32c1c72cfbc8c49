// Per-thread CPU time: a named thread that burns CPU is found under its name with about the
// time it burned; an idle named thread shows (almost) none; the table adds the rows up.
#include "base/thread_cpu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <thread>

namespace bitbyte {
namespace {

double ThreadCpuNow() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

TEST(ThreadCpu, NamedThreadsAreFoundWithTheirCpuTime) {
  std::atomic<bool> measured{false};
  std::atomic<double> burned{0};
  std::thread busy([&] {
    NameThisThread("busy-test-thread-long-name");  // cut to 15 bytes
    volatile double x = 0;
    while (ThreadCpuNow() < 0.3) x = x + 1;
    burned = ThreadCpuNow();
    while (!measured) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::thread idle([&] {
    NameThisThread("idle-test");
    while (!measured) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (burned == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::vector<ThreadCpu> threads = ThreadCpuTimes();
  measured = true;
  busy.join();
  idle.join();
  const ThreadCpu *b = nullptr, *i = nullptr, *m = nullptr;
  for (const ThreadCpu& t : threads) {
    if (t.name == "busy-test-threa") b = &t;
    if (t.name == "idle-test") i = &t;
    if (t.name == "main") m = &t;
  }
  ASSERT_NE(b, nullptr);
  ASSERT_NE(i, nullptr);
  ASSERT_NE(m, nullptr);
  // /proc counts in clock ticks (10 ms).
  EXPECT_NEAR(b->cpu_s, burned.load(), 0.05);
  EXPECT_LT(i->cpu_s, 0.1);

  const std::string table = ThreadCpuTable(threads, 1.0);
  EXPECT_NE(table.find("busy-test-threa"), std::string::npos) << table;
  double total = 0;
  for (const ThreadCpu& t : threads) total += t.cpu_s;
  char want[64];
  std::snprintf(want, sizeof want, "%9.2f", total);
  EXPECT_NE(table.find(std::string("total")), std::string::npos) << table;
  EXPECT_NE(table.find(want), std::string::npos) << "total " << want << " not in\n" << table;
}

}  // namespace
}  // namespace bitbyte
