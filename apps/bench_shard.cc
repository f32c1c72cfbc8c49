// bitbyte bench shard: shard and sequential-read throughput against the zstd CLI on the same
// bytes, in the same run, each side a child process timed with wait4 (wall time, peak RSS).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "base/error.h"
#include "base/file_io.h"
#include "pipeline/graph.h"

namespace bitbyte::cli {
namespace {

// Best of `repeat` runs (shared machines are noisy: the minimum is the least disturbed).
RunResult Best(int repeat, const std::vector<std::string>& argv, const std::function<void()>& before = {}) {
  RunResult best;
  for (int i = 0; i < repeat; ++i) {
    if (before) before();
    RunResult r = Spawn(argv);
    if (i == 0 || r.seconds < best.seconds) {
      best.seconds = r.seconds;
      best.cpu_seconds = r.cpu_seconds;
    }
    best.max_rss_kb = std::max(best.max_rss_kb, r.max_rss_kb);
  }
  return best;
}

// A deterministic pseudo-English corpus (Zipf-distributed words) when no input is given.
void GenerateCorpus(const std::string& path, uint64_t bytes) {
  std::mt19937_64 rng(42);
  std::vector<std::string> words;
  const char* letters = "etaoinshrdlcumwfgypbvkjxqz";
  for (int i = 0; i < 5000; ++i) {
    std::string w;
    const int len = 1 + static_cast<int>(rng() % 9);
    for (int k = 0; k < len; ++k)
      w += letters[std::min<size_t>(25, static_cast<size_t>(std::abs(std::normal_distribution<>(0, 7)(rng))))];
    words.push_back(w);
  }
  std::vector<double> weights;
  for (int i = 0; i < 5000; ++i) weights.push_back(1.0 / (i + 1));
  std::discrete_distribution<int> pick(weights.begin(), weights.end());
  auto f = io::Default().NewWritableFile(path);
  std::string buf;
  uint64_t written = 0, line = 0;
  while (written < bytes) {
    buf.clear();
    while (buf.size() < (1 << 20)) {
      buf += words[static_cast<size_t>(pick(rng))];
      buf += (++line % 12 == 0) ? ".\n" : " ";
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - written));
    f->Append(std::string_view(buf.data(), n));
    written += n;
  }
  f->Close();
}

void RemoveTree(const std::string& dir) {
  if (!io::Default().Exists(dir)) return;
  for (const auto& n : io::Default().ListDir(dir)) io::Default().Remove(io::JoinPath(dir, n));
  ::rmdir(dir.c_str());
}

}  // namespace

CLI::App* AddBenchCommand(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (results go in docs/benchmarks.md)");
  bench->require_subcommand(1);
  struct Args {
    std::string input, work = "/tmp/bitbyte-bench";
    uint64_t generate_mb = 100;
    int threads = 0, level = 3, repeat = 3;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = bench->add_subcommand(
      "shard",
      "Shard and sequential-read throughput of bitbyte against the zstd CLI on the same bytes, in the\n"
      "same run: `bitbyte shard` vs `zstd -T<threads> -<level>`, `bitbyte cat` vs `zstd -d`.\n"
      "Each side runs as a child process; best of --repeat runs; peak RSS from wait4.");
  c->add_option("--input", a->input, "Corpus file (default: a generated pseudo-text corpus)");
  c->add_option("--generate-mb", a->generate_mb, "Size of the generated corpus in MB")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 20))
      ->capture_default_str();
  c->add_option("--threads", a->threads, "Threads for both sides (default: all cores)")
      ->check(CLI::Range(0, pipeline::kMaxThreads));
  c->add_option("--level", a->level, "zstd level for both sides")->check(CLI::Range(1, 22))->capture_default_str();
  c->add_option("--repeat", a->repeat, "Runs per measurement (best is kept)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  c->add_option("--work-dir", a->work, "Scratch directory (removed afterwards)")->capture_default_str();
  c->callback([a] {
    const int threads = a->threads > 0 ? a->threads : pipeline::DefaultThreads();
    io::Default().CreateDirs(a->work);
    std::string input = a->input;
    if (input.empty()) {
      input = io::JoinPath(a->work, "generated.txt");
      std::fprintf(stderr, "generating %llu MB of pseudo-text in %s\n", static_cast<unsigned long long>(a->generate_mb),
                   input.c_str());
      GenerateCorpus(input, a->generate_mb * 1000 * 1000);
    }
    struct stat st;
    if (::stat(input.c_str(), &st) != 0) throw Error(ErrnoMessage("read benchmark input", input, errno));
    const double mb = static_cast<double>(st.st_size) / 1e6;
    const std::string self = kSelfExe, ds = io::JoinPath(a->work, "ds"), zst = io::JoinPath(a->work, "input.zst");
    const std::string t = std::to_string(threads), lvl = std::to_string(a->level);
    Spawn({"cat", input});  // warm the page cache for both sides
    std::fprintf(stderr, "bitbyte shard ...\n");
    RunResult ours = Best(a->repeat, {self, "shard", input, "-o", ds, "--threads", t, "--level", lvl, "-q"},
                          [&] { RemoveTree(ds); });
    std::fprintf(stderr, "zstd -T%d -%d ...\n", threads, a->level);
    RunResult zstd = Best(a->repeat, {"zstd", "-T" + t, "-" + lvl, "-q", "-f", input, "-o", zst});
    // zstd -T1 still reads and writes on a second thread (async I/O); --single-thread does not.
    RunResult zstd_single;
    if (threads == 1)
      zstd_single = Best(a->repeat, {"zstd", "--single-thread", "-" + lvl, "-q", "-f", input, "-o", zst});
    std::fprintf(stderr, "bitbyte cat ...\n");
    RunResult ours_read = Best(a->repeat, {self, "cat", ds, "--split", "all"});
    std::fprintf(stderr, "zstd -d ...\n");
    RunResult zstd_read = Best(a->repeat, {"zstd", "-d", "-q", "-c", zst});
    uint64_t ds_bytes = 0;
    for (const auto& n : io::Default().ListDir(ds))
      if (::stat(io::JoinPath(ds, n).c_str(), &st) == 0) ds_bytes += static_cast<uint64_t>(st.st_size);
    ::stat(zst.c_str(), &st);
    const uint64_t zst_bytes = static_cast<uint64_t>(st.st_size);

    std::printf("input %s, %.1f MB, threads %d, level %d, best of %d\n", input.c_str(), mb, threads, a->level,
                a->repeat);
    std::printf("%-28s %10s %8s %10s %12s %12s\n", "", "seconds", "CPU s", "MB/s", "peak RSS MB", "stored MB");
    auto row = [&](const char* name, const RunResult& r, double stored) {
      std::printf("%-28s %10.3f %8.3f %10.1f %12.1f %12.2f\n", name, r.seconds, r.cpu_seconds, mb / r.seconds,
                  static_cast<double>(r.max_rss_kb) / 1024.0, stored / 1e6);
    };
    row("bitbyte shard", ours, static_cast<double>(ds_bytes));
    row(("zstd -T" + t + " -" + lvl).c_str(), zstd, static_cast<double>(zst_bytes));
    if (threads == 1) row(("zstd --single-thread -" + lvl).c_str(), zstd_single, static_cast<double>(zst_bytes));
    row("bitbyte cat (read)", ours_read, 0);
    row("zstd -d (read)", zstd_read, 0);
    std::printf("ratio shard/zstd %.2fx (target >= 0.9), read/zstd -d %.2fx (target >= 0.8)\n",
                zstd.seconds / ours.seconds, zstd_read.seconds / ours_read.seconds);
    if (threads == 1) std::printf("ratio shard/zstd --single-thread %.2fx\n", zstd_single.seconds / ours.seconds);
    RemoveTree(ds);
    io::Default().Remove(zst);
    if (a->input.empty()) io::Default().Remove(input);
  });
  return bench;
}

}  // namespace bitbyte::cli
