// Benchmark (not a test): the fused CPU selective scan against the reference tensor ops,
// forward + backward, the MambaMLM default shape (d_model 256 -> D 512 channels, N 16), T 1024,
// float, on --threads LibTorch threads (default 2), the heap tuned as the model commands tune it. The ratio of the two
// is the figure in docs/benchmarks.md (target >= 10x). Run: build/release/bin/scan_bench [--threads N]
//   [--benchmark_repetitions=3]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "models/selective_scan.h"
#include "tests/models/bench_main.h"

namespace {

using bitbyte::models::ScanImpl;

void ScanForwardBackward(benchmark::State& state, ScanImpl impl) {
  const int64_t b = state.range(0), d = 512, n = 16, t = 1024;
  torch::manual_seed(1);
  auto leaf = [](torch::Tensor x) { return x.requires_grad_(true); };
  const torch::Tensor u = leaf(torch::randn({b, d, t})), delta = leaf(torch::rand({b, d, t}) * 0.1 + 1e-3);
  const torch::Tensor a = leaf(-torch::rand({d, n}) * 4), bm = leaf(torch::randn({b, n, t}));
  const torch::Tensor c = leaf(torch::randn({b, n, t})), dskip = leaf(torch::ones({d}));
  const torch::Tensor gy = torch::randn({b, d, t});
  for (auto _ : state) {
    for (const torch::Tensor& x : {u, delta, a, bm, c, dskip}) x.mutable_grad() = torch::Tensor();
    torch::Tensor y = bitbyte::models::SelectiveScan(u, delta, a, bm, c, dskip, impl);
    y.backward(gy);
    benchmark::DoNotOptimize(u.grad().data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * b * t);  // positions per second, as "bytes"
}

}  // namespace

BENCHMARK_CAPTURE(ScanForwardBackward, fused, ScanImpl::kFused)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(ScanForwardBackward, reference, ScanImpl::kReference)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

int main(int argc, char** argv) { return bitbyte::testing::BenchMain(argc, argv); }
