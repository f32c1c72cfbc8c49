// BitTransformerLM: bit packing, the byte-scale bpb (a uniform model scores 8), causality, the
// cached byte distributions against the one-pass training loss, reversible gradients against the
// store-everything stack, parameter count and config checks.
#include "models/bit_transformer_lm.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

#include "base/error.h"
#include "models/registry.h"
#include "models/reversible.h"

namespace bitbyte::models {
namespace {

pb::ModelConfig RandomConfig(std::mt19937_64& rng, bool reversible = true, bool diffusion = false) {
  pb::ModelConfig c;
  c.set_name("bit_transformer_lm");
  auto* m = c.mutable_bit_transformer_lm();
  const int heads = 1 + static_cast<int>(rng() % 3);
  m->set_n_head(heads);
  m->set_d_model(heads * (4 + static_cast<int>(rng() % 3) * 4));
  m->set_n_layer(1 + static_cast<int>(rng() % 3));
  m->set_d_ff(rng() % 2 ? 0 : 8 + static_cast<int>(rng() % 24));
  m->set_context(8 * (2 + static_cast<int>(rng() % 10)));
  m->set_reversible(reversible);
  m->set_init_std(0.2);  // far from uniform, so that the comparisons below see real distributions
  if (diffusion) {
    m->set_mode("diffusion");
    m->set_diffusion_eval_samples(4);
  } else if (rng() % 3 == 0) {
    m->set_attention_window(1 + static_cast<int>(rng() % 40));  // local attention, whole bytes or not
  }
  return c;
}

std::shared_ptr<BitTransformerLM> Make(const pb::ModelConfig& c, int seed, torch::Dtype dtype = torch::kFloat) {
  torch::manual_seed(seed);
  auto model = std::dynamic_pointer_cast<BitTransformerLM>(CreateModel(c));
  model->to(dtype);
  return model;
}

TEST(BitTransformerLM, BitsRoundTripMostSignificantFirst) {
  for (int i = 0; i < 20; ++i) {
    const int64_t b = 1 + i % 3, l = 1 + i % 7;
    const torch::Tensor bytes = torch::randint(256, {b, l}, torch::kLong);
    const torch::Tensor bits = BitTransformerLM::Bits(bytes);
    ASSERT_EQ(bits.sizes(), (std::vector<int64_t>{b, 8 * l}));
    EXPECT_TRUE(((bits == 0) | (bits == 1)).all().item<bool>());
    const torch::Tensor weights = torch::tensor({128, 64, 32, 16, 8, 4, 2, 1}, torch::kLong);
    EXPECT_TRUE(torch::equal((bits.view({b, l, 8}) * weights).sum(2), bytes));
    const torch::Tensor tokens = BitTransformerLM::Tokens(bytes);
    EXPECT_TRUE((tokens.select(1, 0) == BitTransformerLM::kStart).all().item<bool>());
    EXPECT_TRUE(torch::equal(tokens.narrow(1, 1, 8 * l - 1), bits.narrow(1, 0, 8 * l - 1)));
  }
  EXPECT_TRUE(torch::equal(BitTransformerLM::Bits(torch::tensor({{0x81}}, torch::kLong)),
                           torch::tensor({{1, 0, 0, 0, 0, 0, 0, 1}}, torch::kLong)));
}

TEST(BitTransformerLM, UniformModelScoresExactlyEightBitsAByte) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 6; ++i) {
    auto model = Make(RandomConfig(rng), i);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->named_parameters())
        if (p.key().rfind("head.", 0) == 0) p.value().zero_();
    }
    const int64_t t = 2 + rng() % (model->context() - 1);
    const torch::Tensor w = torch::randint(256, {3, t + 1}, torch::kLong);
    const torch::Tensor x = w.narrow(1, 0, t), y = w.narrow(1, 1, t);
    const double bpb = model->Nats(x, y) / std::log(2.0) / static_cast<double>(3 * t);
    EXPECT_NEAR(bpb, 8.0, 1e-12);
    EXPECT_NEAR(model->Loss(x, y).item<double>(), 8 * std::log(2.0), 1e-5);
    // Every byte equally likely under the cached distribution too.
    const torch::Tensor logp = model->NextLogits(x);
    EXPECT_NEAR(logp.max().item<double>(), -8 * std::log(2.0), 1e-5);
    EXPECT_NEAR(logp.min().item<double>(), -8 * std::log(2.0), 1e-5);
  }
}

TEST(BitTransformerLM, ChangingLaterBitsNeverChangesEarlierPredictions) {
  std::mt19937_64 rng(4);
  for (int i = 0; i < 8; ++i) {
    pb::ModelConfig c = RandomConfig(rng);
    c.mutable_bit_transformer_lm()->set_attention_window(i % 2 == 0 ? 1 + 4 * i : 0);  // local attention too
    auto model = Make(c, 10 + i, torch::kDouble);
    model->eval();
    const int64_t n = 8 + 8 * (rng() % (model->context()));  // tokens of whole bytes
    torch::Tensor tokens = torch::randint(2, {2, n}, torch::kLong);
    tokens.select(1, 0).fill_(BitTransformerLM::kStart);
    const torch::Tensor z = model->BitLogits(tokens);
    const int64_t cut = 1 + rng() % (n - 1);
    torch::Tensor changed = tokens.clone();
    changed.narrow(1, cut, n - cut).copy_(1 - changed.narrow(1, cut, n - cut));
    const torch::Tensor z2 = model->BitLogits(changed);
    EXPECT_TRUE(torch::equal(z.narrow(1, 0, cut), z2.narrow(1, 0, cut))) << "cut " << cut;
    EXPECT_FALSE(torch::allclose(z.narrow(1, cut, n - cut), z2.narrow(1, cut, n - cut)));
  }
}

// The byte distributions generation uses (cache, 128 continuations) give each true next byte the
// probability the one-pass loss gives it, at every position; each is a distribution.
TEST(BitTransformerLM, CachedByteDistributionsMatchTheTrainingLoss) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 6; ++i) {
    pb::ModelConfig c = RandomConfig(rng);
    c.mutable_bit_transformer_lm()->set_attention_window(i % 2 == 0 ? 3 + 5 * i : 0);  // local attention too
    auto model = Make(c, 20 + i, torch::kDouble);
    model->eval();
    torch::NoGradGuard no_grad;
    const int64_t t = 2 + rng() % (model->context() - 1), b = 1 + rng() % 2;
    const torch::Tensor w = torch::randint(256, {b, t + 1}, torch::kLong);
    const torch::Tensor x = w.narrow(1, 0, t), y = w.narrow(1, 1, t);
    const torch::Tensor nats = model->ByteNats(x, y);  // [b, t]
    const torch::Tensor logits = model->forward(x);    // [b, t, 256], through the stepper
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{b, t, 256}));
    EXPECT_TRUE(torch::allclose(logits.logsumexp(-1), torch::zeros({b, t}, torch::kDouble), 0, 1e-12));
    EXPECT_TRUE(torch::allclose(-logits.gather(-1, y.unsqueeze(-1)).squeeze(-1), nats, 1e-9, 1e-9))
        << (-logits.gather(-1, y.unsqueeze(-1)).squeeze(-1) - nats).abs().max();
    EXPECT_TRUE(torch::allclose(model->NextLogits(x), logits.select(1, t - 1), 1e-9, 1e-9));
    EXPECT_NEAR(model->Nats(x, y), nats.sum().item<double>(), 1e-9);
  }
}

TEST(BitTransformerLM, StepperKeepsGivingDistributionsPastItsWindow) {
  pb::ModelConfig c;
  std::mt19937_64 rng(6);
  c = RandomConfig(rng);
  auto model = Make(c, 7);
  torch::NoGradGuard no_grad;
  auto stepper = model->MakeStepper(2, 3);
  for (int i = 0; i < 12; ++i) {
    const torch::Tensor logp = stepper->Step(torch::randint(256, {2}, torch::kLong));
    ASSERT_EQ(logp.sizes(), (std::vector<int64_t>{2, 256}));
    EXPECT_TRUE(torch::allclose(logp.logsumexp(-1), torch::zeros({2}), 0, 1e-5));
  }
}

// Reversible blocks recompute their activations in the backward pass; the gradients of every
// parameter and of the input equal those of the same blocks with every activation kept.
TEST(BitTransformerLM, ReversibleGradientsEqualStoreEverything) {
  std::mt19937_64 rng(8);
  for (int i = 0; i < 6; ++i) {
    const uint64_t state = rng();
    std::mt19937_64 r1(state), r2(state);
    const bool diffusion = i % 3 == 2;  // the diffusion ELBO too (its masks from the same seed)
    auto rev = Make(RandomConfig(r1, true, diffusion), 30 + i, torch::kDouble);
    auto kept = Make(RandomConfig(r2, false, diffusion), 30 + i, torch::kDouble);
    const int64_t t = 2 + rng() % (rev->context() - 1);
    const torch::Tensor w = torch::randint(256, {2, t + 1}, torch::kLong);
    torch::manual_seed(99);
    rev->Loss(w.narrow(1, 0, t), w.narrow(1, 1, t)).backward();
    torch::manual_seed(99);
    kept->Loss(w.narrow(1, 0, t), w.narrow(1, 1, t)).backward();
    const auto a = rev->named_parameters(), b = kept->named_parameters();
    for (const auto& p : a) {
      const torch::Tensor& ga = p.value().grad();
      const torch::Tensor& gb = b[p.key()].grad();
      ASSERT_TRUE(ga.defined() && gb.defined()) << p.key();
      EXPECT_TRUE(torch::allclose(ga, gb, 1e-8, 1e-10)) << p.key() << " " << (ga - gb).abs().max();
    }
  }
}

// The stack alone, with inputs that need gradients as two separate streams.
TEST(Reversible, StackGradientsOfBothInputs) {
  pb::BitTransformerLMConfig c;
  c.set_d_model(8);
  c.set_n_head(2);
  c.set_n_layer(3);
  torch::manual_seed(9);
  std::vector<BitBlock> blocks;
  std::vector<RevBlock*> list;
  for (int i = 0; i < 3; ++i) {
    blocks.emplace_back(c);
    blocks.back()->to(torch::kDouble);
    list.push_back(blocks.back().get());
  }
  const torch::Tensor x1 = torch::randn({2, 5, 8}, torch::kDouble), x2 = torch::randn({2, 5, 8}, torch::kDouble);
  const torch::Tensor probe1 = torch::randn({2, 5, 8}, torch::kDouble),
                      probe2 = torch::randn({2, 5, 8}, torch::kDouble);
  std::vector<torch::Tensor> grads[2];
  for (int rev = 0; rev < 2; ++rev) {
    const torch::Tensor a = x1.clone().requires_grad_(true), b = x2.clone().requires_grad_(true);
    const std::vector<torch::Tensor> y = RunRevStack(list, a, b, rev == 1);
    ((y[0] * probe1).sum() + (y[1] * probe2).sum()).backward();
    grads[rev] = {a.grad(), b.grad()};
    for (auto& blk : blocks)
      for (auto& p : blk->parameters()) {
        grads[rev].push_back(p.grad().clone());
        p.mutable_grad() = torch::Tensor();
      }
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t k = 0; k < grads[0].size(); ++k) EXPECT_TRUE(torch::allclose(grads[0][k], grads[1][k], 1e-9, 1e-11)) << k;
}

// The bit conditionals of any byte distribution multiply back to it along each byte's bits.
TEST(ByteModel, BitConditionalsMultiplyBackToTheByteDistribution) {
  torch::manual_seed(11);
  const torch::Tensor p = torch::softmax(3 * torch::randn({50, 256}, torch::kDouble), -1);
  for (int64_t c : {0, 1, 127, 128, 200, 255}) {
    const torch::Tensor bytes = torch::full({50}, c, torch::kLong);
    const torch::Tensor q = ByteModel::BitConditionals(p, bytes);  // [50, 8]
    const torch::Tensor bits = BitTransformerLM::Bits(bytes.view({50, 1})).to(torch::kDouble);
    const torch::Tensor prod = torch::where(bits == 1, q, 1 - q).prod(1);
    EXPECT_TRUE(torch::allclose(prod, p.select(1, c), 1e-12, 1e-15)) << c;
  }
}

// The bit track's own bit predictions equal the conditionals of its cached byte distributions.
TEST(BitTransformerLM, BitProbabilitiesMatchItsByteDistributions) {
  std::mt19937_64 rng(12);
  auto model = Make(RandomConfig(rng), 40, torch::kDouble);
  model->eval();
  torch::NoGradGuard no_grad;
  const int64_t t = model->context();
  const torch::Tensor w = torch::randint(256, {2, t + 1}, torch::kLong);
  const torch::Tensor x = w.narrow(1, 0, t), y = w.narrow(1, 1, t);
  const torch::Tensor direct = model->BitProbabilities(x, y);
  const torch::Tensor via = ByteModel::BitConditionals(torch::softmax(model->forward(x), -1), y);
  EXPECT_TRUE(torch::allclose(direct, via, 1e-9, 1e-12)) << (direct - via).abs().max();
}

// Diffusion mode: a uniform model's ELBO estimate averages 8 bits a byte (each masked bit costs
// ln 2, and E[masked / t] = the bits); the estimate of a window is the same however the windows are
// batched and however often it is asked for.
TEST(BitTransformerLM, DiffusionUniformModelAveragesEightBitsAndEvaluationIsReproducible) {
  std::mt19937_64 rng(13);
  pb::ModelConfig c = RandomConfig(rng, true, true);
  c.mutable_bit_transformer_lm()->set_context(128);
  c.mutable_bit_transformer_lm()->set_diffusion_eval_samples(8);
  auto model = Make(c, 50);
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor w = torch::randint(256, {64, 17}, torch::kLong);
  const torch::Tensor x = w.narrow(1, 0, 16), y = w.narrow(1, 1, 16);
  const double all = model->Nats(x, y);
  EXPECT_EQ(model->Nats(x, y), all);  // asked again
  double by_halves =
      model->Nats(x.narrow(0, 0, 32), y.narrow(0, 0, 32)) + model->Nats(x.narrow(0, 32, 32), y.narrow(0, 32, 32));
  EXPECT_NEAR(by_halves, all, 1e-9 * std::abs(all));
  for (auto& p : model->named_parameters())
    if (p.key().rfind("head.", 0) == 0) p.value().zero_();
  const double bpb = model->Nats(x, y) / std::log(2.0) / (64 * 16);
  EXPECT_NEAR(bpb, 8.0, 0.25) << "an unbiased estimate of 8 over 64 windows x 8 levels";
}

TEST(BitTransformerLM, DiffusionAttendsBothWaysAndRefusesByteDistributions) {
  std::mt19937_64 rng(14);
  auto model = Make(RandomConfig(rng, true, true), 60, torch::kDouble);
  model->eval();
  EXPECT_TRUE(model->Denoises());
  const int64_t n = 8 * model->context();
  torch::Tensor tokens = torch::randint(3, {1, n}, torch::kLong);
  const torch::Tensor z = model->BitLogits(tokens);
  tokens[0][n - 1] = (tokens[0][n - 1].item<int64_t>() + 1) % 3;  // the last token changes the first prediction
  EXPECT_FALSE(torch::allclose(z.narrow(1, 0, 1), model->BitLogits(tokens).narrow(1, 0, 1)));
  const torch::Tensor x = torch::randint(256, {1, 4}, torch::kLong);
  EXPECT_THROW(model->forward(x), UsageError);
  EXPECT_THROW(model->NextLogits(x), UsageError);
  EXPECT_EQ(model->MakeStepper(1, 4), nullptr);
}

TEST(BitTransformerLM, DenoiseDrawsTheBytesItReportsReproducibly) {
  std::mt19937_64 rng(15);
  auto model = Make(RandomConfig(rng, true, true), 70);
  model->eval();
  const torch::Tensor context = torch::randint(256, {1, 3}, torch::kLong);
  const int64_t n = std::min<int64_t>(5, model->context() - 2);
  for (int64_t steps : {1, 7}) {
    at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(5), g2 = at::make_generator<at::CPUGeneratorImpl>(5);
    const ByteModel::Denoised a = model->Denoise(context, n, steps, 1.0, g1),
                              b = model->Denoise(context, n, steps, 1.0, g2);
    ASSERT_EQ(a.bytes.sizes(), (std::vector<int64_t>{n}));
    ASSERT_EQ(a.q.sizes(), (std::vector<int64_t>{n, 8}));
    EXPECT_TRUE(torch::equal(a.bytes, b.bytes));
    EXPECT_TRUE(((a.bytes >= 0) & (a.bytes < 256)).all().item<bool>());
    EXPECT_TRUE(((a.q > 0) & (a.q < 1)).all().item<bool>());
  }
  // Greedy: every bit the likelier one under the probability reported for it.
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(6);
  const ByteModel::Denoised d = model->Denoise(context, n, 4, 0.0, g);
  const torch::Tensor bits = BitTransformerLM::Bits(d.bytes.view({n, 1})).view({n, 8});
  EXPECT_TRUE(torch::equal(bits, (d.q > 0.5).to(torch::kLong)));
}

// Progressive depth: blocks made the identity leave every track's function as it was when they are
// switched on, and the blocks above the active depth are not run (no gradient reaches them).
TEST(ByteModel, IdentityBlocksKeepTheFunctionWhenSwitchedOn) {
  for (const std::string track : {"bitbyte_lm", "mamba_mlm", "bit_transformer_lm"}) {
    pb::ModelConfig c;
    SetTrack(c, track);
    SelectTrackBlock(c);
    auto* block = c.GetReflection()->MutableMessage(&c, c.GetDescriptor()->FindFieldByName(track));
    const auto* d = block->GetDescriptor();
    block->GetReflection()->SetInt32(block, d->FindFieldByName("d_model"), 16);
    block->GetReflection()->SetInt32(block, d->FindFieldByName("n_layer"), 3);
    if (track != "mamba_mlm") block->GetReflection()->SetInt32(block, d->FindFieldByName("n_head"), 2);
    block->GetReflection()->SetInt32(block, d->FindFieldByName("context"), track == "bit_transformer_lm" ? 128 : 16);
    torch::manual_seed(3);
    auto model = CreateModel(c);
    model->to(torch::kDouble);
    model->IdentityBlocksFrom(1);
    const torch::Tensor w = torch::randint(256, {2, 13}, torch::kLong);
    const torch::Tensor x = w.narrow(1, 0, 12), y = w.narrow(1, 1, 12);
    model->SetActiveDepth(1);
    const torch::Tensor one = model->Loss(x, y);
    one.backward();
    for (const auto& p : model->named_parameters()) {
      bool above = false;  // blocks 1 and 2, and MambaMLM's norms before them
      for (const char* prefix : {"blocks.1.", "blocks.2.", "norms.1.", "norms.2."})
        above = above || p.key().rfind(prefix, 0) == 0;
      EXPECT_EQ(p.value().grad().defined(), !above) << track << " " << p.key();
    }
    model->eval();
    const double nats = model->Nats(x, y);  // float64 where the loss may be float32
    for (int64_t depth : {2, 3, -1}) {
      model->SetActiveDepth(depth);
      EXPECT_EQ(model->Nats(x, y), nats) << track << " depth " << depth;
    }
    // Not the identity any more: a block that learned changes the function.
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->named_parameters())
        if (p.key().rfind("blocks.2.", 0) == 0) p.value().add_(0.5);
    }
    EXPECT_NE(model->Nats(x, y), nats) << track;
  }
}

TEST(BitTransformerLM, ParameterCountAndConfigChecks) {
  std::mt19937_64 rng(10);
  for (int i = 0; i < 8; ++i) {
    const pb::ModelConfig c = RandomConfig(rng);
    EXPECT_EQ(Make(c, i)->ParameterCount(), ParameterCount(c));
    EXPECT_EQ(ModelContext(c), c.bit_transformer_lm().context() / 8);
  }
  pb::ModelConfig c;
  c.set_name("bit_transformer_lm");
  c.mutable_bit_transformer_lm()->set_context(1001);
  EXPECT_THROW(ValidateModelConfig(c), UsageError);
  c.mutable_bit_transformer_lm()->set_context(1000);
  c.mutable_bit_transformer_lm()->set_n_head(3);
  EXPECT_THROW(ValidateModelConfig(c), UsageError);
}

}  // namespace
}  // namespace bitbyte::models
