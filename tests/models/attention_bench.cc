// Benchmark (not a test): the fused causal attention against the composed ops (baddbmm with the
// cached mask, softmax, bmm; models/attention.h), forward + backward, BitByteLM's head shape
// (4 heads of 64), at T 256 (batch 16, the bench train shape) and T 2048 (batch 2), float32 and
// bf16 inputs (under autocast, as the model runs them), on --threads LibTorch threads (default 2). The ratios are the
// figures in docs/benchmarks.md (targets >= 3x at T 256, >= 10x at T 2048). Run: build/release/bin/attention_bench
// [--threads N] [--benchmark_repetitions=3]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "models/attention.h"
#include "models/fused_attention.h"
#include "models/precision.h"
#include "tests/models/bench_main.h"

namespace {

void AttentionForwardBackward(benchmark::State& state, bool fused, bool bf16) {
  const int64_t t = state.range(0), b = 4096 / t > 1 ? 4096 / t : 2, h = 4, dh = 64;
  torch::manual_seed(1);
  const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
  const torch::Tensor qkv = torch::randn({b, t, 3 * h * dh}).to(dtype).requires_grad_(true);
  const torch::Tensor gy = torch::randn({b, t, h * dh}).to(dtype);
  for (auto _ : state) {
    qkv.mutable_grad() = torch::Tensor();
    torch::Tensor y;
    {
      bitbyte::models::Bf16Scope scope(torch::kCPU, bf16);  // as the model runs in bf16: under autocast
      y = fused ? bitbyte::models::FusedCausalAttention(qkv, h) : bitbyte::models::ComposedAttention(qkv, h);
    }
    y.backward(gy.to(y.scalar_type()));
    benchmark::DoNotOptimize(qkv.grad().data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * b * t);  // positions per second, as "bytes"
}

}  // namespace

BENCHMARK_CAPTURE(AttentionForwardBackward, fused_fp32, true, false)
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AttentionForwardBackward, composed_fp32, false, false)
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AttentionForwardBackward, fused_bf16, true, true)
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AttentionForwardBackward, composed_bf16, false, true)
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) { return bitbyte::testing::BenchMain(argc, argv); }
