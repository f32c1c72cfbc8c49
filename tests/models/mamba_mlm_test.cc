// MambaMLM: shapes, parameter count against a formula, causality, initialisation, weight-decay
// exclusions, config checks naming the field, and that its gradients reach every parameter.
#include "models/mamba_mlm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <random>
#include <stdexcept>

#include "base/error.h"
#include "models/registry.h"

namespace bitbyte::models {
namespace {

pb::ModelConfig RandomMamba(std::mt19937_64& rng) {
  pb::ModelConfig c;
  c.set_name("mamba_mlm");
  auto* m = c.mutable_mamba_mlm();
  m->set_d_model(8 + static_cast<int>(rng() % 4) * 8);
  m->set_n_layer(1 + static_cast<int>(rng() % 3));
  m->set_d_state(1 + static_cast<int>(rng() % 8));
  m->set_d_conv(1 + static_cast<int>(rng() % 4));
  m->set_expand(1 + static_cast<int>(rng() % 2));
  m->set_dt_rank(static_cast<int>(rng() % 3));  // 0: ceil(d / 16)
  return c;
}

int64_t ExpectedParameters(const pb::MambaMLMConfig& m) {
  const int64_t d = m.d_model(), e = int64_t{m.expand()} * d, n = m.d_state(), k = m.d_conv(), r = MambaDtRank(m);
  const int64_t block =
      d /* norm */ + d * 2 * e + (e * k + e) /* conv */ + e * (r + 2 * n) + (r * e + e) + e * n + e + e * d;
  return 256 * d + m.n_layer() * block + d + d * 256;
}

TEST(MambaMLM, ShapesAndParameterCount) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 10; ++i) {
    const pb::ModelConfig c = RandomMamba(rng);
    torch::manual_seed(i);
    auto model = CreateModel(c);
    EXPECT_EQ(model->ParameterCount(), ExpectedParameters(c.mamba_mlm())) << model->Describe();
    EXPECT_EQ(model->ParameterCount(), ParameterCount(c)) << model->Describe();  // the registry's count
    const int64_t b = 1 + rng() % 3, t = 1 + rng() % 40;
    const torch::Tensor logits = model->forward(torch::randint(256, {b, t}, torch::kLong));
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{b, t, 256}));
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  }
  EXPECT_EQ(MambaDtRank(pb::MambaMLMConfig()), 16);  // ceil(256 / 16)
}

TEST(MambaMLM, ChangingLaterBytesNeverChangesEarlierOutputs) {
  std::mt19937_64 rng(2);
  for (int i = 0; i < 8; ++i) {
    const pb::ModelConfig c = RandomMamba(rng);
    torch::manual_seed(100 + i);
    auto model = CreateModel(c);
    torch::NoGradGuard no_grad;
    const int64_t t = 2 + rng() % 30, k = 1 + rng() % (t - 1);
    torch::Tensor x = torch::randint(256, {2, t}, torch::kLong);
    const torch::Tensor before = model->forward(x);
    x.narrow(1, k, t - k).random_(256);
    const torch::Tensor after = model->forward(x);
    EXPECT_TRUE(torch::equal(before.narrow(1, 0, k), after.narrow(1, 0, k))) << "t " << t << ", k " << k;
    EXPECT_FALSE(torch::equal(before.narrow(1, k, t - k), after.narrow(1, k, t - k)));
  }
}

TEST(MambaMLM, InitialisationAndWeightDecay) {
  pb::ModelConfig c;
  c.set_name("mamba_mlm");
  c.mutable_mamba_mlm()->set_d_model(32);
  c.mutable_mamba_mlm()->set_n_layer(2);
  torch::manual_seed(3);
  auto model = CreateModel(c);
  int decayed = 0, not_decayed = 0;
  for (const auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    const torch::Tensor& p = item.value();
    if (name.find("A_log") != std::string::npos) {
      // S4D-real: A = -(n + 1) for every channel.
      const torch::Tensor want = torch::log(torch::arange(1, p.size(1) + 1, torch::kFloat)).expand_as(p);
      EXPECT_TRUE(torch::allclose(p, want)) << name;
      EXPECT_FALSE(model->Decays(name, p)) << name;
    } else if (name.size() > 2 && name.substr(name.size() - 2) == ".D") {
      EXPECT_TRUE(torch::equal(p, torch::ones_like(p))) << name;
      EXPECT_FALSE(model->Decays(name, p)) << name;
    } else if (name.find("dt_proj.bias") != std::string::npos) {
      // softplus(bias) is the initial step: within [dt_min, dt_max].
      const torch::Tensor dt = torch::softplus(p);
      EXPECT_GE(dt.min().item<double>(), 1e-3 * 0.999) << name;
      EXPECT_LE(dt.max().item<double>(), 0.1 * 1.001) << name;
    }
    (model->Decays(name, p) ? decayed : not_decayed) += 1;
  }
  EXPECT_GT(decayed, 0);
  EXPECT_GT(not_decayed, 0);
}

TEST(MambaMLM, GradientsReachEveryParameter) {
  pb::ModelConfig c;
  c.set_name("mamba_mlm");
  auto* m = c.mutable_mamba_mlm();
  m->set_d_model(16);
  m->set_n_layer(2);
  m->set_d_state(4);
  torch::manual_seed(4);
  auto model = CreateModel(c);
  const torch::Tensor x = torch::randint(256, {2, 12}, torch::kLong);
  const torch::Tensor loss = torch::cross_entropy_loss(model->forward(x).reshape({-1, 256}), x.reshape({-1}));
  loss.backward();
  for (const auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    const torch::Tensor& p = item.value();
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>()) << name;
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0) << name;
  }
}

// Generation's recurrent form (O(1) state per byte) gives forward()'s logits at every position.
TEST(MambaMLM, RecurrentStepsEqualTheFullForward) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 6; ++i) {
    const pb::ModelConfig c = RandomMamba(rng);
    torch::manual_seed(200 + i);
    auto model = CreateModel(c);
    torch::NoGradGuard no_grad;
    const int64_t b = 1 + rng() % 3, t = 1 + rng() % 24;
    const torch::Tensor x = torch::randint(256, {b, t}, torch::kLong);
    const torch::Tensor full = model->forward(x);
    auto stepper = model->MakeStepper(b, model->context());
    ASSERT_NE(stepper, nullptr);
    for (int64_t s = 0; s < t; ++s) {
      const torch::Tensor step = stepper->Step(x.select(1, s));
      ASSERT_EQ(step.sizes(), (std::vector<int64_t>{b, 256}));
      EXPECT_TRUE(torch::allclose(step, full.select(1, s), 1e-4, 1e-4))
          << model->Describe() << ", position " << s << ", max diff "
          << (step - full.select(1, s)).abs().max().item<double>();
    }
  }
}

TEST(MambaMLM, BadConfigsNameTheField) {
  const std::vector<std::pair<std::function<void(pb::MambaMLMConfig*)>, std::string>> cases = {
      {[](pb::MambaMLMConfig* m) { m->set_d_state(0); }, "model.mamba_mlm.d_state"},
      {[](pb::MambaMLMConfig* m) { m->set_expand(0); }, "model.mamba_mlm.expand"},
      {[](pb::MambaMLMConfig* m) { m->set_d_model(-1); }, "model.mamba_mlm.d_model"},
      {[](pb::MambaMLMConfig* m) { m->set_d_conv(0); }, "model.mamba_mlm.d_conv"},
      {[](pb::MambaMLMConfig* m) { m->set_dt_rank(-2); }, "model.mamba_mlm.dt_rank"},
      {[](pb::MambaMLMConfig* m) { m->set_dt_max(1e-4); }, "model.mamba_mlm.dt_max"},
      {[](pb::MambaMLMConfig* m) { m->set_n_layer(0); }, "model.mamba_mlm.n_layer"},
  };
  for (const auto& [mutate, field] : cases) {
    pb::ModelConfig c;
    c.set_name("mamba_mlm");
    mutate(c.mutable_mamba_mlm());
    try {
      ValidateModelConfig(c);
      ADD_FAILURE() << "accepted a bad " << field;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace bitbyte::models
