// The training config: text-format errors with line and column, --set overrides, defaults,
// printing round trips, range checks naming the field, and what a resume may change.
#include <gtest/gtest.h>

#include <random>

#include "nodes/config.h"

namespace bitbyte::train {
namespace {

std::string ErrorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Config, TextErrorsNameLineAndColumn) {
  const std::string typo = ErrorOf([] { ParseConfigText("steps: 10\noptim {\n  lrr: 0.1\n}\n", "cfg.txtpb"); });
  EXPECT_NE(typo.find("cfg.txtpb:3:"), std::string::npos) << typo;
  EXPECT_NE(typo.find("lrr"), std::string::npos) << typo;
  const std::string wrong_type = ErrorOf([] { ParseConfigText("data {\n  seq_len: \"abc\"\n}\n", "c"); });
  EXPECT_NE(wrong_type.find("c:2:"), std::string::npos) << wrong_type;
  EXPECT_NE(wrong_type.find("seq_len"), std::string::npos) << wrong_type;
  EXPECT_NE(ErrorOf([] { ParseConfigText("steps: -1.5\n", "c"); }).find("c:1:"), std::string::npos);
  EXPECT_NE(ErrorOf([] { LoadConfigFile("/nonexistent/cfg.txtpb"); }).find("/nonexistent/cfg.txtpb"), std::string::npos);
}

TEST(Config, OverridesSetScalarsAndNameBadPaths) {
  pb::TrainConfig c;
  ApplyOverride(c, "optim.lr=3e-4");
  ApplyOverride(c, "model.name=bitbyte_lm");
  ApplyOverride(c, "model.bitbyte_lm.d_model=512");
  ApplyOverride(c, "steps=77");
  EXPECT_DOUBLE_EQ(c.optim().lr(), 3e-4);
  EXPECT_EQ(c.model().bitbyte_lm().d_model(), 512);
  EXPECT_EQ(c.steps(), 77);
  EXPECT_NE(ErrorOf([&] { ApplyOverride(c, "optim.lrr=1"); }).find("'lrr'"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { ApplyOverride(c, "optim=1"); }).find("is a message"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { ApplyOverride(c, "steps.x=1"); }).find("not a message"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { ApplyOverride(c, "steps=abc"); }).find("--set steps=abc"), std::string::npos);
  EXPECT_NE(ErrorOf([&] { ApplyOverride(c, "steps"); }).find("FIELD=VALUE"), std::string::npos);
  // A string value may hold characters that are special in text format.
  ApplyOverride(c, "model.name=a\"b\\c");
  EXPECT_EQ(c.model().name(), "a\"b\\c");
}

TEST(Config, PrintedConfigShowsEveryFieldAndParsesBack) {
  std::mt19937_64 rng(5);
  const char* sets[] = {"optim.lr=0.002", "data.seq_len=64", "model.bitbyte_lm.context=64", "eval.every=7",
                        "checkpoint.keep=9", "seed=123", "data.grad_accum=2", "optim.grad_clip=0"};
  for (int i = 0; i < 20; ++i) {
    pb::TrainConfig c;
    for (const char* s : sets)
      if (rng() % 2) ApplyOverride(c, s);
    const std::string text = ConfigToText(c);
    for (const char* field : {"warmup_steps:", "d_model:", "prefetch:", "keep:", "max_bytes:", "init_std:"})
      EXPECT_NE(text.find(field), std::string::npos) << field;
    pb::TrainConfig back = ParseConfigText(text, "printed");
    pb::TrainConfig filled = c;
    FillDefaults(filled);
    EXPECT_EQ(back.SerializeAsString(), filled.SerializeAsString());
    EXPECT_EQ(ConfigToText(back), text);
  }
}

TEST(Config, RangeChecksNameTheField) {
  auto check = [](const std::string& set) {
    pb::TrainConfig c;
    ApplyOverride(c, set);
    FillDefaults(c);
    return ErrorOf([&] { ValidateConfig(c); });
  };
  EXPECT_NE(check("data.seq_len=512").find("data.seq_len"), std::string::npos);  // > context 256
  EXPECT_NE(check("data.batch_size=0").find("data.batch_size"), std::string::npos);
  EXPECT_NE(check("optim.min_lr=1").find("optim.min_lr"), std::string::npos);
  EXPECT_NE(check("optim.beta2=1").find("optim.beta2"), std::string::npos);
  EXPECT_NE(check("checkpoint.keep=0").find("checkpoint.keep"), std::string::npos);
  EXPECT_NE(check("model.name=nosuch").find("model.name"), std::string::npos);
  EXPECT_NE(check("model.bitbyte_lm.n_head=3").find("model.bitbyte_lm.n_head"), std::string::npos);
  EXPECT_EQ(check("optim.lr=0.01"), "(no error)");
}

TEST(Config, ResumeMayChangeOnlyScheduleFields) {
  pb::TrainConfig saved;
  FillDefaults(saved);
  for (const char* ok : {"steps=5000", "log_every=1", "eval.every=3", "checkpoint.every=9", "checkpoint.keep=5"}) {
    pb::TrainConfig r = saved;
    ApplyOverride(r, ok);
    EXPECT_EQ(IncompatibleField(saved, r), "") << ok;
  }
  for (const char* bad : {"seed=2", "optim.lr=0.5", "model.bitbyte_lm.d_model=64", "data.batch_size=3", "eval.max_bytes=5"}) {
    pb::TrainConfig r = saved;
    ApplyOverride(r, bad);
    const std::string field = std::string(bad).substr(0, std::string(bad).find('='));
    EXPECT_EQ(IncompatibleField(saved, r).rfind(field, 0), 0u) << bad << ": " << IncompatibleField(saved, r);
  }
  // An unset field and the same value written out are the same config.
  pb::TrainConfig sparse;
  EXPECT_EQ(IncompatibleField(saved, sparse), "");
}

}  // namespace
}  // namespace bitbyte::train
