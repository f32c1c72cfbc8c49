#include "base/thread_cpu.h"

#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace bitbyte {

std::vector<ThreadCpu> ThreadCpuTimes() {
  std::vector<ThreadCpu> out;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return out;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const int pid = static_cast<int>(::getpid());
  // Threads nobody named carry the program's name (inherited from the thread that made them).
  std::ifstream comm_in("/proc/self/comm");
  std::string program;
  std::getline(comm_in, program);
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // "tid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ')'.
    const size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    // Fields 3.. after comm: state is the 3rd; utime and stime are the 14th and 15th.
    for (int i = 3; i <= 13 && rest >> field; ++i) {
    }
    if (!(rest >> utime >> stime)) continue;
    ThreadCpu t;
    t.tid = std::atoi(e->d_name);
    t.name = t.tid == pid ? "main" : stat.substr(open + 1, close - open - 1);
    if (t.tid != pid && t.name == program) t.name = "unnamed";
    t.cpu_s = static_cast<double>(utime + stime) / tick;
    out.push_back(t);
  }
  ::closedir(dir);
  return out;
}

void NameThisThread(const std::string& name) { ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str()); }

std::string ThreadCpuTable(const std::vector<ThreadCpu>& threads, double wall_s) {
  std::map<std::string, std::pair<int, double>> by_name;
  double total = 0;
  for (const ThreadCpu& t : threads) {
    auto& [n, s] = by_name[t.name];
    ++n;
    s += t.cpu_s;
    total += t.cpu_s;
  }
  std::vector<std::pair<std::string, std::pair<int, double>>> rows(by_name.begin(), by_name.end());
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
  std::ostringstream os;
  char line[160];
  std::snprintf(line, sizeof line, "  %-16s %7s %9s %9s\n", "thread", "threads", "CPU s", "% of wall");
  os << line;
  const double wall = wall_s > 0 ? wall_s : 1;
  for (const auto& [name, v] : rows) {
    std::snprintf(line, sizeof line, "  %-16s %7d %9.2f %8.1f%%\n", name.c_str(), v.first, v.second,
                  100 * v.second / wall);
    os << line;
  }
  std::snprintf(line, sizeof line, "  %-16s %7zu %9.2f %8.1f%%\n", "total", threads.size(), total, 100 * total / wall);
  os << line;
  return os.str();
}

}  // namespace bitbyte
