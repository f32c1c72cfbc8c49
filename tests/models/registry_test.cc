// The registry's matching of tracks by parameter count (bench tracks): the chosen depth is the
// closest reachable, only the depth changes, and ParameterCount agrees with the built models.
#include "models/registry.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <random>

#include "base/error.h"
#include "models/model.h"
#include "models/tracks.h"

namespace bitbyte::models {
namespace {

int32_t Depth(const pb::ModelConfig& c) { return FindTrack(c.name())->depth(c); }

pb::ModelConfig WithDepth(pb::ModelConfig c, int32_t n) {
  FindTrack(c.name())->set_depth(c, n);
  return c;
}

// The config's track block, made if absent.
google::protobuf::Message& Block(pb::ModelConfig& c) {
  SelectTrackBlock(c);
  return *c.GetReflection()->MutableMessage(&c, c.GetDescriptor()->FindFieldByNumber(c.track_case()));
}
void SetInt(pb::ModelConfig& c, const std::string& field, int32_t v) {
  google::protobuf::Message& b = Block(c);
  b.GetReflection()->SetInt32(&b, b.GetDescriptor()->FindFieldByName(field), v);
}

// The table and the config agree: every track's block is named like the track, every block of
// the oneof belongs to a track, and names are unique.
TEST(Registry, EveryTrackHasItsOwnBlock) {
  const auto* oneof = pb::ModelConfig::descriptor()->FindOneofByName("track");
  ASSERT_NE(oneof, nullptr);
  EXPECT_EQ(static_cast<size_t>(oneof->field_count()), Tracks().size());
  for (const Track& t : Tracks()) {
    const auto* f = pb::ModelConfig::descriptor()->FindFieldByNumber(t.block);
    ASSERT_NE(f, nullptr) << t.name;
    EXPECT_EQ(f->containing_oneof(), oneof) << t.name;
    EXPECT_EQ(f->name(), t.name);
    EXPECT_EQ(FindTrack(t.name), &t);
  }
  EXPECT_EQ(FindTrack("no_such_track"), nullptr);
}

// A block of another track than model.name is refused naming it; --model (SetTrack) drops it.
TEST(Registry, AnotherTracksBlockIsRefusedAndSetTrackDropsIt) {
  for (const Track& t : Tracks()) {
    for (const Track& other : Tracks()) {
      if (&t == &other) continue;
      pb::ModelConfig c;
      c.set_name(other.name);
      SetInt(c, "d_model", 64);
      c.set_name(t.name);
      try {
        ValidateModelConfig(c);
        ADD_FAILURE() << t.name << " accepted the block of " << other.name;
      } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("model." + other.name), std::string::npos) << e.what();
      }
      SetTrack(c, t.name);
      EXPECT_EQ(c.track_case(), pb::ModelConfig::TRACK_NOT_SET);
      EXPECT_NO_THROW(ValidateModelConfig(c));
    }
  }
}

TEST(Registry, EveryTrackHasParameterCountAndDepthRule) {
  for (const Track& t : Tracks()) {
    pb::ModelConfig c;
    c.set_name(t.name);
    SetInt(c, "d_model", 32);
    torch::manual_seed(0);
    EXPECT_EQ(ParameterCount(c), CreateModel(c)->ParameterCount()) << t.name;
    EXPECT_NO_THROW(MatchParameterCount(c, 100000)) << t.name;
  }
}

TEST(Registry, MatchParameterCountPicksTheClosestDepth) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) {
    pb::ModelConfig c;
    c.set_name(Tracks()[rng() % Tracks().size()].name);
    if (c.name() == "bitbyte_lm") {
      c.mutable_bitbyte_lm()->set_d_model(16 * (1 + static_cast<int>(rng() % 8)));
      c.mutable_bitbyte_lm()->set_n_head(1 << (rng() % 3));
    } else {
      SetInt(c, "d_model", 8 * (1 + static_cast<int>(rng() % 16)));
      if (c.name() == "mamba_mlm") c.mutable_mamba_mlm()->set_d_state(1 + static_cast<int>(rng() % 32));
    }
    c = WithDepth(c, 1 + static_cast<int32_t>(rng() % 6));
    const int64_t target = 1000 + static_cast<int64_t>(rng() % 20000000);
    const pb::ModelConfig m = MatchParameterCount(c, target);
    const int32_t n = Depth(m);
    ASSERT_GE(n, 1);
    // Nothing but the depth changed.
    EXPECT_EQ(WithDepth(m, Depth(c)).SerializeAsString(), c.SerializeAsString());
    const int64_t err = std::llabs(ParameterCount(m) - target);
    ASSERT_LE(n, kMaxLayers);
    if (n < kMaxLayers) {
      EXPECT_LE(err, std::llabs(ParameterCount(WithDepth(c, n + 1)) - target)) << c.ShortDebugString() << " " << target;
    }
    if (n > 1) {
      EXPECT_LT(err, std::llabs(ParameterCount(WithDepth(c, n - 1)) - target)) << c.ShortDebugString();
    }
  }
}

// A target beyond the deepest allowed model gets that model, never an n_layer out of bounds.
TEST(Registry, MatchParameterCountStaysWithinTheDepthBound) {
  for (const Track& t : Tracks()) {
    pb::ModelConfig c;
    c.set_name(t.name);
    const pb::ModelConfig m = MatchParameterCount(c, int64_t{1} << 50);
    EXPECT_EQ(Depth(m), kMaxLayers) << t.name;
    EXPECT_NO_THROW(ValidateModelConfig(m)) << t.name;
  }
}

TEST(Registry, DefaultTracksMatchAtSevenMambaLayers) {
  pb::ModelConfig transformer;  // bitbyte_lm defaults: 3,356,160 parameters
  pb::ModelConfig mamba;
  mamba.set_name("mamba_mlm");
  const pb::ModelConfig m = MatchParameterCount(mamba, ParameterCount(transformer));
  EXPECT_EQ(m.mamba_mlm().n_layer(), 7);
  EXPECT_EQ(ParameterCount(m), 3197440);
}

}  // namespace
}  // namespace bitbyte::models

namespace bitbyte::models {
namespace {

// The FLOP count (for MFU) against the built module: 6 FLOPs a byte per weight of every Linear
// (2 forward, 4 backward), plus the track's terms that are not matmuls with weights: BitByteLM's
// attention (q.k and p.v over (T+1)/2 keys a query on average), MambaMLM's depthwise convolution
// and scan. Random configs of each track.
TEST(Registry, TrainFlopsCountEveryLinearWeightOnRandomConfigs) {
  std::mt19937 rng(11);
  for (int i = 0; i < 12; ++i) {
    for (const Track& t : Tracks()) {
      pb::ModelConfig c;
      c.set_name(t.name);
      const int32_t heads = 1 + rng() % 4;
      SetInt(c, "d_model", heads * (4 + rng() % 12));
      SetInt(c, "n_layer", 1 + rng() % 3);
      if (t.name == "bitbyte_lm" || t.name == "bit_transformer_lm") {
        SetInt(c, "n_head", heads);
        SetInt(c, "d_ff", rng() % 2 ? 0 : 8 + rng() % 40);
      } else {
        SetInt(c, "d_state", 1 + rng() % 16);
        SetInt(c, "expand", 1 + rng() % 3);
        SetInt(c, "d_conv", 1 + rng() % 4);
      }
      ValidateModelConfig(c);
      const auto model = CreateModel(c);
      double linear = 0;
      for (const auto& m : model->modules(/*include_self=*/false))
        if (const auto* l = m->as<torch::nn::Linear>()) linear += static_cast<double>(l->weight.numel());
      const int64_t seq = 2 + rng() % 300;
      double other = 0;
      double per_weight = 6;  // FLOPs per weight and predicted byte: forward 2, backward 4
      if (t.name == "bitbyte_lm") {
        const auto& b = c.bitbyte_lm();
        other = 3.0 * b.n_layer() * 2 * b.d_model() * (seq + 1);
      } else if (t.name == "bit_transformer_lm") {  // 8 positions a byte, attention over 8 (seq + 1)
        const auto& b = c.bit_transformer_lm();
        per_weight = 48;
        other = 8 * 3.0 * b.n_layer() * 2 * b.d_model() * (8.0 * (seq + 1) + 1);
      } else {
        const auto& m = c.mamba_mlm();
        const double e = static_cast<double>(m.expand()) * m.d_model();
        other = 3.0 * m.n_layer() * (2 * e * m.d_conv() + 7 * e * m.d_state());
      }
      EXPECT_NEAR(t.train_flops_per_byte(c, seq), per_weight * linear + other, 1e-6 * (per_weight * linear + other))
          << t.name << " " << c.ShortDebugString() << " seq " << seq;
    }
  }
}

}  // namespace
}  // namespace bitbyte::models
