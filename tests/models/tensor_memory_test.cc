// The counting CPU allocator: storages are counted while alive, the peak holds the highest.
#include "models/tensor_memory.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

namespace bitbyte::models {
namespace {

TEST(TensorMemory, CountsLiveStoragesAndThePeak) {
  tensor_memory::Install();
  tensor_memory::Install();  // idempotent
  ASSERT_TRUE(tensor_memory::Installed());
  std::mt19937_64 rng(1);
  for (int i = 0; i < 10; ++i) {
    const int64_t base = tensor_memory::Current();
    tensor_memory::ResetPeak();
    const int64_t n = 1 + static_cast<int64_t>(rng() % 100000), m = 1 + static_cast<int64_t>(rng() % 100000);
    {
      torch::Tensor a = torch::empty({n}, torch::kFloat);
      EXPECT_EQ(tensor_memory::Current() - base, 4 * n);
      {
        torch::Tensor b = torch::ones({m}, torch::kDouble);
        EXPECT_EQ(tensor_memory::Current() - base, 4 * n + 8 * m);
        EXPECT_EQ(b.data_ptr<double>()[m - 1], 1.0);  // the memory is usable (and nothing more allocated)
      }
      EXPECT_EQ(tensor_memory::Current() - base, 4 * n);
      torch::Tensor view = a.narrow(0, 0, 1);  // a view allocates no storage
      EXPECT_EQ(tensor_memory::Current() - base, 4 * n);
    }
    EXPECT_EQ(tensor_memory::Current(), base);
    EXPECT_EQ(tensor_memory::Peak() - base, 4 * n + 8 * m);
  }
}

}  // namespace
}  // namespace bitbyte::models
