// Benchmark (not a test): BitTransformerLM's activation memory against depth, reversible blocks
// against the same blocks keeping every activation (docs/tracks.md; target: 12 layers <= 1.3x
// 2 layers reversible). Activation memory = the peak of CPU tensor storage during a forward and
// backward pass minus what was held before it (parameters, their gradients, the batch), counted by
// models/tensor_memory.h. Default width (d_model 256, 4 heads), batch 4 windows of 256 bytes
// (2056 bit positions), float32 and bf16 (autocast), on --threads LibTorch threads (default 2).
// Run: build/release/bin/reversible_bench [--threads N]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "models/bit_transformer_lm.h"
#include "models/precision.h"
#include "models/registry.h"
#include "models/tensor_memory.h"
#include "tests/models/bench_main.h"

namespace {

namespace models = bitbyte::models;

void ForwardBackward(benchmark::State& state, bool reversible, bool bf16) {
  models::tensor_memory::Install();
  models::pb::ModelConfig c;
  c.set_name("bit_transformer_lm");
  c.mutable_bit_transformer_lm()->set_n_layer(static_cast<int32_t>(state.range(0)));
  c.mutable_bit_transformer_lm()->set_reversible(reversible);
  torch::manual_seed(1);
  const auto model = models::CreateModel(c);
  const int64_t b = 4, t = 256;
  const torch::Tensor w = torch::randint(256, {b, t + 1}, torch::kLong);
  const torch::Tensor x = w.narrow(1, 0, t), y = w.narrow(1, 1, t);
  const auto step = [&] {
    torch::Tensor loss;
    {
      models::Bf16Scope scope(torch::kCPU, bf16);
      loss = model->Loss(x, y);
    }
    loss.backward();
  };
  step();  // allocates the gradients
  int64_t activation = 0;
  for (auto _ : state) {
    for (auto& p : model->parameters()) p.mutable_grad().zero_();
    const int64_t before = models::tensor_memory::Current();
    models::tensor_memory::ResetPeak();
    step();
    activation = std::max(activation, models::tensor_memory::Peak() - before);
  }
  state.counters["activation_MiB"] = static_cast<double>(activation) / (1 << 20);
  state.counters["params_MiB"] = static_cast<double>(model->ParameterCount()) * 4 / (1 << 20);
  state.SetBytesProcessed(state.iterations() * b * t);
}

}  // namespace

BENCHMARK_CAPTURE(ForwardBackward, reversible_fp32, true, false)
    ->Arg(2)
    ->Arg(4)
    ->Arg(8)
    ->Arg(12)
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(ForwardBackward, stored_fp32, false, false)
    ->Arg(2)
    ->Arg(4)
    ->Arg(8)
    ->Arg(12)
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(ForwardBackward, reversible_bf16, true, true)
    ->Arg(2)
    ->Arg(12)
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(ForwardBackward, stored_bf16, false, true)
    ->Arg(2)
    ->Arg(12)
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) { return bitbyte::testing::BenchMain(argc, argv); }
