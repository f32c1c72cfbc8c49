#pragma once
// main() of the google-benchmark targets in tests/models: --threads N (default 2) LibTorch
// threads, and the heap tuned as bitbyte's model commands tune it (apps/main.cc): freed tensors
// are reused, not handed back to the kernel and faulted in again.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>

namespace bitbyte::testing {

inline int BenchMain(int argc, char** argv) {
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  ::mallopt(M_ARENA_MAX, 1);
  int threads = 2;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
  at::set_num_threads(threads);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}

}  // namespace bitbyte::testing
