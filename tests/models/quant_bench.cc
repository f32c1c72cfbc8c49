// Benchmark (not a test): the quantized products (models/quant.h: ternary's lookup kernel, int4's
// VNNI tiles, int8 on oneDNN's integer GEMM, each with its activation quantization) against the
// float32 Linear (oneDNN sgemm, as bitbyte's float32 Linear runs) and bf16 (under autocast), at a
// generation step's shape (1 row) and a training batch's (4096 rows), for BitByteLM's default
// layer shapes (d 256: 256 -> 768 and 1024 -> 256). Run: build/release/bin/quant_bench [--threads N]
// [--benchmark_repetitions=3]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <string>

#include "models/linear.h"
#include "models/precision.h"
#include "models/quant.h"
#include "tests/models/bench_main.h"

namespace {

using bitbyte::models::quant::QuantLinear;

enum Kind { kFp32, kBf16, kInt8, kInt4, kTernary };

void Product(benchmark::State& state, Kind kind) {
  const int64_t rows = state.range(0), in = state.range(1), out = state.range(2);
  torch::manual_seed(1);
  const torch::Tensor w = torch::randn({out, in}) * 0.05, b = torch::randn({out});
  const torch::Tensor x = torch::randn({rows, in});
  QuantLinear q;
  if (kind == kInt8) q = bitbyte::models::quant::QuantizeLinear(w, b);
  if (kind == kInt4) q = bitbyte::models::quant::QuantizeLinearInt4(w, b, 64, torch::Tensor());
  if (kind == kTernary) q = bitbyte::models::quant::QuantizeLinearTernary(w, b, false);
  torch::Tensor y = torch::empty({rows, out});
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    if (kind == kFp32) {
      y = bitbyte::models::Linear(x, w, b);
    } else if (kind == kBf16) {
      bitbyte::models::Bf16Scope scope(torch::kCPU, true);
      y = bitbyte::models::Linear(x, w, b);
    } else {
      bitbyte::models::quant::ApplyRows(q, x.data_ptr<float>(), rows, y.data_ptr<float>(), false);
    }
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["GMAC/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * rows * in * out) / 1e9, benchmark::Counter::kIsRate);
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (const int64_t rows : {1, 4096}) {
    b->Args({rows, 256, 768});
    b->Args({rows, 1024, 256});
  }
  b->ArgNames({"rows", "in", "out"});
}

}  // namespace

BENCHMARK_CAPTURE(Product, fp32, kFp32)->Apply(Shapes);
BENCHMARK_CAPTURE(Product, bf16, kBf16)->Apply(Shapes);
BENCHMARK_CAPTURE(Product, int8, kInt8)->Apply(Shapes);
BENCHMARK_CAPTURE(Product, int4, kInt4)->Apply(Shapes);
BENCHMARK_CAPTURE(Product, ternary, kTernary)->Apply(Shapes);

int main(int argc, char** argv) { return bitbyte::testing::BenchMain(argc, argv); }
