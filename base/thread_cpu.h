#pragma once
// CPU time of every thread of this process, by name (Linux: /proc/self/task). For `train
// --stats`: where the cores went, and how much of it the graph's own threads spent waiting.
#include <string>
#include <vector>

namespace bitbyte {

struct ThreadCpu {
  int tid = 0;
  std::string name;  // the thread's name (comm), "main" for the process's first thread
  double cpu_s = 0;  // user + system time so far
};

// The threads alive now. Empty where /proc is not readable.
std::vector<ThreadCpu> ThreadCpuTimes();

// Names the calling thread (at most 15 bytes are kept), so that ThreadCpuTimes can tell it apart.
void NameThisThread(const std::string& name);

// Per name: threads, CPU seconds, and the share of `wall_s` (a table, one line per name, the
// largest first, then the total).
std::string ThreadCpuTable(const std::vector<ThreadCpu>& threads, double wall_s);

}  // namespace bitbyte
