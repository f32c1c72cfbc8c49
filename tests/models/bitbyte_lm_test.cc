// BitByteLM and the attention function: shapes, causality, parameter count, initialisation,
// config checks, and the 1.13 attention path against a plain reference.
#include "models/bitbyte_lm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

#include "base/error.h"
#include "models/attention.h"
#include "models/registry.h"

namespace bitbyte::models {
namespace {

pb::ModelConfig RandomConfig(std::mt19937_64& rng) {
  pb::ModelConfig c;
  auto* m = c.mutable_bitbyte_lm();
  const int heads = 1 + static_cast<int>(rng() % 3);
  m->set_n_head(heads);
  m->set_d_model(heads * (4 + static_cast<int>(rng() % 3) * 4));
  m->set_n_layer(1 + static_cast<int>(rng() % 3));
  m->set_d_ff(rng() % 2 ? 0 : 8 + static_cast<int>(rng() % 24));
  m->set_context(4 + static_cast<int>(rng() % 28));
  return c;
}

int64_t ExpectedParameters(const pb::BitByteLMConfig& m) {
  const int64_t d = m.d_model(), f = m.d_ff() > 0 ? m.d_ff() : 4 * d;
  const int64_t block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d);
  return 256 * d + int64_t{m.context()} * d + m.n_layer() * block + 2 * d + 256 * d;
}

TEST(BitByteLM, ShapesAndParameterCount) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 12; ++i) {
    const pb::ModelConfig c = RandomConfig(rng);
    torch::manual_seed(i);
    auto model = CreateModel(c);
    EXPECT_EQ(model->ParameterCount(), ExpectedParameters(c.bitbyte_lm()));
    EXPECT_EQ(model->ParameterCount(), ParameterCount(c));  // the registry's count
    const int64_t b = 1 + rng() % 3, t = 1 + rng() % c.bitbyte_lm().context();
    const torch::Tensor logits = model->forward(torch::randint(256, {b, t}, torch::kLong));
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{b, t, 256}));
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  }
  // The default config is the benchmark model; its Python twin (scripts/bench_train.py) has
  // 3,356,160 parameters.
  pb::ModelConfig def;
  def.set_name("bitbyte_lm");
  EXPECT_EQ(CreateModel(def)->ParameterCount(), 3356160);
}

TEST(BitByteLM, ChangingLaterBytesNeverChangesEarlierOutputs) {
  std::mt19937_64 rng(2);
  for (int i = 0; i < 10; ++i) {
    const pb::ModelConfig c = RandomConfig(rng);
    torch::manual_seed(100 + i);
    auto model = CreateModel(c);
    model->eval();
    torch::NoGradGuard no_grad;
    const int64_t t = 2 + rng() % (c.bitbyte_lm().context() - 1);
    const torch::Tensor x = torch::randint(256, {2, t}, torch::kLong);
    const int64_t cut = rng() % (t - 1);  // positions <= cut must not move
    torch::Tensor y = x.clone();
    y.narrow(1, cut + 1, t - cut - 1).copy_(torch::randint(256, {2, t - cut - 1}, torch::kLong));
    const torch::Tensor a = model->forward(x), b = model->forward(y);
    const double before = (a.narrow(1, 0, cut + 1) - b.narrow(1, 0, cut + 1)).abs().max().item<double>();
    EXPECT_LE(before, 1e-5) << "future bytes leaked into position <= " << cut;
    if (!torch::equal(x, y)) {
      EXPECT_GT((a - b).abs().max().item<double>(), 1e-4) << "changed bytes changed nothing at all";
    }
  }
}

// Generation with the key/value cache: every step's logits equal forward() over the bytes of
// the current window (all of them until `window` positions are used, then the last half of the
// window and what came after), for random sizes, batches and windows shorter than the context.
TEST(BitByteLM, KvCacheStepsEqualForwardOverTheWindow) {
  std::mt19937_64 rng(21);
  for (int round = 0; round < 8; ++round) {
    pb::ModelConfig c = RandomConfig(rng);
    c.mutable_bitbyte_lm()->set_init_std(0.3);  // large weights: logits depend on every byte
    torch::manual_seed(round);
    auto model = CreateModel(c);
    model->eval();
    // float32 steps in the decode kernels (decode.h); float64 ones in LibTorch ops, as on other
    // devices.
    const bool in_double = round % 2 == 1;
    if (in_double) model->to(torch::kDouble);
    const double tol = in_double ? 1e-10 : 1e-4;
    torch::NoGradGuard no_grad;
    const int64_t b = 1 + static_cast<int64_t>(rng() % 3);
    const int64_t window = 2 + static_cast<int64_t>(rng() % (c.bitbyte_lm().context() - 1));
    auto stepper = model->MakeStepper(b, window);
    ASSERT_NE(stepper, nullptr);
    std::vector<torch::Tensor> hist;  // the window's bytes, [b] each
    for (int64_t i = 0; i < 3 * window + 1; ++i) {
      const torch::Tensor byte = torch::randint(256, {b}, torch::kLong);
      if (static_cast<int64_t>(hist.size()) == window) hist.erase(hist.begin(), hist.end() - window / 2);
      hist.push_back(byte);
      const torch::Tensor got = stepper->Step(byte);
      const torch::Tensor want = model->forward(torch::stack(hist, 1)).select(1, -1);
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(torch::allclose(got, want, tol, tol)) << "round " << round << " step " << i << " window " << window
                                                        << ": max diff " << (got - want).abs().max().item<double>();
    }
  }
}

// A prompt fed at once (one forward pass fills the cache) gives the logits of stepping it byte by
// byte, and the steps after it go on alike, through the window's restarts.
TEST(BitByteLM, KvCacheFeedEqualsSteppingByteByByte) {
  std::mt19937_64 rng(22);
  for (int round = 0; round < 6; ++round) {
    pb::ModelConfig c = RandomConfig(rng);
    c.mutable_bitbyte_lm()->set_init_std(0.3);
    torch::manual_seed(100 + round);
    auto model = CreateModel(c);
    model->eval();
    torch::NoGradGuard no_grad;
    const int64_t b = 1 + static_cast<int64_t>(rng() % 3);
    const int64_t window = 2 + static_cast<int64_t>(rng() % (c.bitbyte_lm().context() - 1));
    const int64_t prompt = 1 + static_cast<int64_t>(rng() % window);
    auto fed = model->MakeStepper(b, window), stepped = model->MakeStepper(b, window);
    const torch::Tensor bytes = torch::randint(256, {b, prompt}, torch::kLong);
    torch::Tensor want;
    for (int64_t t = 0; t < prompt; ++t) want = stepped->Step(bytes.select(1, t));
    torch::Tensor got = fed->Feed(bytes);
    EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4)) << "round " << round << " prompt " << prompt;
    for (int64_t i = 0; i < 2 * window; ++i) {
      const torch::Tensor byte = torch::randint(256, {b}, torch::kLong);
      got = fed->Step(byte);
      want = stepped->Step(byte);
      ASSERT_TRUE(torch::allclose(got, want, 1e-4, 1e-4))
          << "round " << round << " step " << i << ": max diff " << (got - want).abs().max().item<double>();
    }
  }
}

TEST(CausalAttention, MatchesPlainSoftmaxReference) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 8; ++i) {
    const int64_t b = 1 + rng() % 3, h = 1 + rng() % 3, t = 1 + rng() % 20, d = 1 + rng() % 16;
    torch::manual_seed(i);
    const auto q = torch::randn({b, h, t, d}, torch::kDouble), k = torch::randn({b, h, t, d}, torch::kDouble),
               v = torch::randn({b, h, t, d}, torch::kDouble);
    torch::Tensor ref = torch::zeros({b, h, t, d}, torch::kDouble);
    for (int64_t s = 0; s < t; ++s) {  // query s attends to keys 0..s
      const auto keys = k.narrow(2, 0, s + 1), vals = v.narrow(2, 0, s + 1);
      const auto w = torch::softmax(torch::matmul(q.narrow(2, s, 1), keys.transpose(2, 3)) / std::sqrt(double(d)), -1);
      ref.narrow(2, s, 1).copy_(torch::matmul(w, vals));
    }
    EXPECT_TRUE(torch::allclose(CausalAttention(q, k, v), ref, 1e-10, 1e-10));
  }
}

TEST(BitByteLM, InitialisationFollowsTheDocumentedScheme) {
  pb::ModelConfig c;
  c.mutable_bitbyte_lm()->set_d_model(128);
  c.mutable_bitbyte_lm()->set_n_layer(8);
  torch::manual_seed(7);
  auto model = CreateModel(c);
  for (const auto& p : model->named_parameters()) {
    const std::string& n = p.key();
    const double std = p.value().std().item<double>(), mean = p.value().mean().item<double>();
    if (n.find("bias") != std::string::npos && n.find("ln") == std::string::npos) {
      EXPECT_EQ(p.value().abs().max().item<double>(), 0.0) << n;
    } else if (n.find("ln") != std::string::npos) {
      EXPECT_EQ(mean, n.find("weight") != std::string::npos ? 1.0 : 0.0) << n;
    } else if (n.find("proj.weight") != std::string::npos || n.find("fc2.weight") != std::string::npos) {
      EXPECT_NEAR(std, 0.02 / std::sqrt(16.0), 0.1 * 0.02 / std::sqrt(16.0)) << n;
    } else {
      EXPECT_NEAR(std, 0.02, 0.002) << n;
    }
  }
}

TEST(Registry, BadConfigsNameTheField) {
  auto message = [](const pb::ModelConfig& c) {
    try {
      ValidateModelConfig(c);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  pb::ModelConfig c;
  c.set_name("nosuch");
  EXPECT_NE(message(c).find("unknown model 'nosuch'"), std::string::npos);
  EXPECT_NE(message(c).find("bitbyte_lm"), std::string::npos);
  c.set_name("bitbyte_lm");
  c.mutable_bitbyte_lm()->set_n_head(3);
  EXPECT_NE(message(c).find("model.bitbyte_lm.n_head"), std::string::npos);
  c.mutable_bitbyte_lm()->set_n_head(4);
  c.mutable_bitbyte_lm()->set_d_model(0);
  EXPECT_NE(message(c).find("model.bitbyte_lm.d_model"), std::string::npos);
  c.mutable_bitbyte_lm()->set_d_model(64);
  c.mutable_bitbyte_lm()->set_dropout(1.5);
  EXPECT_NE(message(c).find("model.bitbyte_lm.dropout"), std::string::npos);
  c.mutable_bitbyte_lm()->set_dropout(0);
  EXPECT_EQ(message(c), "(accepted)");
}

}  // namespace
}  // namespace bitbyte::models
