// Generation's next-byte logits: the recurrent form (MambaMLM's stepper) gives the windowed
// forward's logits at every step while the text fits in a window, starts from the last window
// of a longer prompt, and a model without a recurrent form always uses the window.
#include "train/generation.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "base/error.h"
#include "models/model.h"
#include "models/registry.h"

namespace bitbyte::train {
namespace {

std::shared_ptr<models::ByteModel> TinyMamba(int seed) {
  models::pb::ModelConfig c;
  c.set_name("mamba_mlm");
  auto* m = c.mutable_mamba_mlm();
  m->set_d_model(16);
  m->set_n_layer(2);
  m->set_d_state(4);
  m->set_init_std(0.5);  // large weights: logits that depend strongly on every byte
  torch::manual_seed(seed);
  return models::CreateModel(c);
}

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& ch : s) ch = static_cast<char>(rng() % 256);
  return s;
}

TEST(Generation, RecurrentLogitsEqualWindowedWhileTheTextFitsAWindow) {
  std::mt19937_64 rng(1);
  for (int round = 0; round < 5; ++round) {
    auto model = TinyMamba(round);
    const int64_t window = 40;
    NextByte recurrent(*model, window, torch::kCPU, true), windowed(*model, window, torch::kCPU, false);
    ASSERT_TRUE(recurrent.recurrent());
    ASSERT_FALSE(windowed.recurrent());
    std::string text = RandomBytes(rng, 1 + rng() % 10);
    while (text.size() <= static_cast<size_t>(window)) {
      const torch::Tensor a = recurrent.Logits(text), b = windowed.Logits(text);
      ASSERT_EQ(a.sizes(), (std::vector<int64_t>{256}));
      EXPECT_TRUE(torch::allclose(a, b, 1e-4, 1e-4))
          << "length " << text.size() << ", max diff " << (a - b).abs().max().item<double>();
      text += RandomBytes(rng, 1 + rng() % 3);  // generation appends one byte; any growth works
    }
  }
}

TEST(Generation, TheLogitsDependOnTheLastByte) {
  // Guards the test above: with these weights, a different last byte changes the logits, so a
  // stepper that skipped or repeated a byte could not pass it.
  auto model = TinyMamba(7);
  NextByte a(*model, 32, torch::kCPU, false), b(*model, 32, torch::kCPU, false);
  EXPECT_GT((a.Logits("Call me") - b.Logits("Call mf")).abs().max().item<double>(), 1e-2);
}

TEST(Generation, ALongPromptStartsFromItsLastWindow) {
  std::mt19937_64 rng(2);
  auto model = TinyMamba(3);
  const std::string prompt = RandomBytes(rng, 100);
  NextByte recurrent(*model, 24, torch::kCPU, true), windowed(*model, 24, torch::kCPU, false);
  EXPECT_TRUE(torch::allclose(recurrent.Logits(prompt), windowed.Logits(prompt), 1e-4, 1e-4));
  EXPECT_THROW(recurrent.Logits(prompt.substr(0, 50)), InternalError);  // the text only grows
  EXPECT_THROW(windowed.Logits(""), InternalError);
}

}  // namespace
}  // namespace bitbyte::train
