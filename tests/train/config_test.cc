// The training config: text-format errors with line and column, --set overrides, defaults,
// printing round trips, range checks naming the field, and what a resume may change.
#include "train/config.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <set>

#include "base/error.h"
#include "tests/test_util.h"

namespace bitbyte::train {
namespace {

std::string ErrorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const UsageError& e) {
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
  EXPECT_NE(ErrorOf([] { LoadConfigFile("/nonexistent/cfg.txtpb"); }).find("/nonexistent/cfg.txtpb"),
            std::string::npos);
}

// D10: a directory is not an (empty) config file; a file is read whole.
TEST(Config, LoadConfigFileRefusesADirectoryNamingIt) {
  testing::TempDir t;
  const std::string dir_error = ErrorOf([&] { LoadConfigFile(t.path()); });
  EXPECT_NE(dir_error.find(t.path()), std::string::npos) << dir_error;
  EXPECT_NE(dir_error.find("directory"), std::string::npos) << dir_error;
  const std::string path = t / "c.txtpb";
  std::ofstream(path) << "steps: 42\noptim { lr: 0.002 }\n";
  const pb::TrainConfig c = LoadConfigFile(path);
  EXPECT_EQ(c.steps(), 42);
  EXPECT_DOUBLE_EQ(c.optim().lr(), 0.002);
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

// The value of --set is one value of the field's type, never more text format (issue 14, the
// unclear item: "optim.lr=0.001 } data { batch_size: 2" set data.batch_size too).
TEST(Config, OverrideValueIsExactlyOneScalar) {
  for (const char* bad : {"optim.lr=0.001 } data { batch_size: 2", "optim.lr=0.001 optim { lr: 2 }", "steps=5 6",
                          "steps=5}", "steps=0x10", "steps=1e3", "steps=", "steps=5 # x", "optim.lr=", "optim.lr=1,5",
                          "data.seq_len=2147483648", "data.seq_len=-2147483649", "seed=-1", "seed=18446744073709551616",
                          "steps=9223372036854775808", "optim.lr=1 2"}) {
    pb::TrainConfig c;
    const std::string error = ErrorOf([&] { ApplyOverride(c, bad); });
    const std::string field = std::string(bad).substr(0, std::string(bad).find('='));
    EXPECT_NE(error.find("config field " + field), std::string::npos) << bad << ": " << error;
    EXPECT_FALSE(c.has_data()) << bad << " set a data field";
    EXPECT_FALSE(c.has_steps()) << bad;
    EXPECT_FALSE(c.optim().has_lr()) << bad;
  }
  pb::TrainConfig c;
  ApplyOverride(c, "steps= 7 ");
  ApplyOverride(c, "seed=18446744073709551615");
  ApplyOverride(c, "optim.lr=+2.5e-3");
  ApplyOverride(c, "data.seq_len=-5");           // parses; ValidateConfig refuses it
  ApplyOverride(c, "model.name= spaced name ");  // strings are taken as they are
  EXPECT_EQ(c.steps(), 7);
  EXPECT_EQ(c.seed(), UINT64_MAX);
  EXPECT_DOUBLE_EQ(c.optim().lr(), 2.5e-3);
  EXPECT_EQ(c.data().seq_len(), -5);
  EXPECT_EQ(c.model().name(), " spaced name ");
  EXPECT_FALSE(c.data().has_batch_size());
}

TEST(Config, PrintedConfigShowsEveryFieldAndParsesBack) {
  std::mt19937_64 rng(5);
  const char* sets[] = {"optim.lr=0.002",    "data.seq_len=64", "model.bitbyte_lm.context=64", "eval.every=7",
                        "checkpoint.keep=9", "seed=123",        "data.grad_accum=2",           "optim.grad_clip=0"};
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

// ModelConfig's track is a oneof: a printed config holds only its own track's block, and
// switching tracks (--model, --set model.name=...) drops the other block.
TEST(Config, OnlyTheTracksOwnBlockIsPrinted) {
  for (const char* name : {"bitbyte_lm", "mamba_mlm"}) {
    pb::TrainConfig c;
    ApplyOverride(c, "model.bitbyte_lm.d_model=48");  // a block of the default track first
    ApplyOverride(c, std::string("model.name=") + name);
    FillDefaults(c);
    ValidateConfig(c);
    const std::string text = ConfigToText(c);
    const std::string other = std::string(name) == "bitbyte_lm" ? "mamba_mlm" : "bitbyte_lm";
    EXPECT_NE(text.find(std::string(name) + " {"), std::string::npos) << text;
    EXPECT_EQ(text.find(other + " {"), std::string::npos) << text;
    EXPECT_EQ(text.find("d_model: 48") != std::string::npos, std::string(name) == "bitbyte_lm") << text;
  }
  // A config that gives another track's block than the one it names is refused naming the block.
  pb::TrainConfig c = ParseConfigText("model { name: \"bitbyte_lm\" mamba_mlm { d_state: 8 } }", "t");
  FillDefaults(c);
  const std::string error = ErrorOf([&] { ValidateConfig(c); });
  EXPECT_NE(error.find("config field model.mamba_mlm"), std::string::npos) << error;
}

// Configs written before the oneof (bitbyte 0.1.0: every run's config.txtpb and every
// checkpoint's config) hold every track's block: they still parse, to the named track's values.
TEST(Config, ConfigsWithEveryTracksBlockStillParse) {
  const std::string old_text =
      "model {\n  name: \"NAME\"\n  bitbyte_lm {\n    d_model: 96\n    n_layer: 3\n    n_head: 4\n  }\n"
      "  mamba_mlm {\n    d_model: 80\n    d_state: 12\n  }\n}\ndata {\n  seq_len: 64\n}\nsteps: 77\n";
  for (const char* name : {"bitbyte_lm", "mamba_mlm"}) {
    std::string text = old_text;
    text.replace(text.find("NAME"), 4, name);
    const pb::TrainConfig c = ParseConfigText(text, "old/config.txtpb");
    EXPECT_EQ(c.model().name(), name);
    EXPECT_EQ(c.steps(), 77);
    EXPECT_EQ(c.data().seq_len(), 64);
    if (std::string(name) == "bitbyte_lm") {
      ASSERT_EQ(c.model().track_case(), models::pb::ModelConfig::kBitbyteLm);
      EXPECT_EQ(c.model().bitbyte_lm().d_model(), 96);
      EXPECT_EQ(c.model().bitbyte_lm().n_layer(), 3);
    } else {
      ASSERT_EQ(c.model().track_case(), models::pb::ModelConfig::kMambaMlm);
      EXPECT_EQ(c.model().mamba_mlm().d_model(), 80);
      EXPECT_EQ(c.model().mamba_mlm().d_state(), 12);
    }
  }
  // Errors in such a text are still reported as the text's own, with line and column.
  const std::string error = ErrorOf([&] { ParseConfigText(old_text + "stepz: 1\n", "old/config.txtpb"); });
  EXPECT_NE(error.find("old/config.txtpb:"), std::string::npos) << error;
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

// ---- D7: every field bounded, checked by a table ----
//
// For each scalar field of TrainConfig (and the model configs inside it): values just inside
// each limit are accepted, values just outside (and nan/inf for doubles) are refused naming the
// field. `context` is applied first (the track, or a shorter data.seq_len so that a bound can be
// reached alone). FieldsOfTheConfigAllHaveRows makes a new field without a row fail.
struct Limit {
  std::string field;
  std::vector<std::string> context, inside, outside;
};

std::vector<std::string> Plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<Limit>& Limits() {
  const std::vector<std::string> non_finite = {"nan", "inf", "-inf"};
  const std::string mamba = "model.name=mamba_mlm";
  const std::string bits = "model.name=bit_transformer_lm";
  static const std::vector<Limit> table = {
      {"steps", {}, {"1", "999999999"}, {"0", "-1", "1000000000"}},
      {"seed", {}, {"0", "18446744073709551615"}, {"-1", "18446744073709551616"}},
      {"log_every", {}, {"0", "999999999"}, {"-1", "1000000000"}},
      {"precision", {}, {"fp32", "bf16", "auto"}, {"fp16", "", "FP32", "bf16 "}},
      {"qat_precision", {}, {"fp32", "bf16", "auto"}, {"fp16", "", "FP32", "bf16 "}},
      {"data.seq_len",
       {mamba, "model.mamba_mlm.context=1048576", "data.batch_size=1", "eval.batch_size=1"},
       {"2", "1048576"},
       {"1", "0", "1048577", "2147483648"}},
      {"data.batch_size", {"data.seq_len=2"}, {"1", "65536"}, {"0", "-1", "65537"}},
      {"data.grad_accum", {"data.seq_len=2", "data.batch_size=1"}, {"1", "65536"}, {"0", "65537"}},
      {"data.prefetch", {}, {"1", "64"}, {"0", "65"}},
      {"optim.lr", {"optim.min_lr=0"}, {"4.9e-324", "10"}, Plus({"0", "-1e-9", "10.000001"}, non_finite)},
      {"optim.min_lr", {"optim.lr=0.001"}, {"0", "0.001"}, Plus({"-1e-12", "0.0010001"}, non_finite)},
      {"optim.warmup_steps", {}, {"0", "999999999"}, {"-1", "1000000000"}},
      {"optim.beta1", {}, {"0", "0.999999"}, Plus({"-1e-9", "1"}, non_finite)},
      {"optim.beta2", {}, {"0", "0.999999"}, Plus({"-1e-9", "1"}, non_finite)},
      {"optim.eps", {}, {"4.9e-324", "1"}, Plus({"0", "1.0000001"}, non_finite)},
      {"optim.weight_decay", {}, {"0", "100"}, Plus({"-1e-9", "100.00001"}, non_finite)},
      {"optim.grad_clip", {}, {"0", "1000000"}, Plus({"-1e-9", "1000000.1"}, non_finite)},
      {"optim.state_bits", {}, {"32", "8"}, {"0", "4", "16", "7", "-8"}},
      {"eval.every", {}, {"0", "999999999"}, {"-1", "1000000000"}},
      // D8: 1 byte predicts nothing (the first byte of a stream never is).
      {"eval.max_bytes", {}, {"0", "2", "1099511627776"}, {"-1", "1", "1099511627777"}},
      {"eval.batch_size", {}, {"1", "65536"}, {"0", "65537"}},
      {"quant_eval.every", {}, {"0", "999999999"}, {"-1", "1000000000"}},
      {"quant_eval.schemes",
       {},
       {"int8", "int4", "int8,int4", "int4,int8"},
       {"", "int3", "int8,int8", "int8,", " int8"}},
      {"quant_eval.group", {}, {"2", "4096"}, {"0", "1", "3", "4097"}},
      {"quant_eval.calib_bytes", {}, {"1", "1099511627776"}, {"0", "1099511627777"}},
      {"checkpoint.every", {}, {"0", "999999999"}, {"-1", "1000000000"}},
      {"checkpoint.keep", {}, {"1", "1000"}, {"0", "1001"}},
      {"model.name", {}, {"bitbyte_lm", "mamba_mlm", "bit_transformer_lm"}, {"nosuch", ""}},
      {"model.qat.scheme", {}, {"none", "ternary", "int4"}, {"", "int8", "Ternary"}},
      {"model.qat.group", {}, {"2", "4096"}, {"0", "1", "3", "4097"}},
      {"model.qat.start_step", {}, {"0", "999999999"}, {"-1", "1000000000"}},
      {"model.qat.ternary_scale", {}, {"tensor", "channel"}, {"", "row", "Tensor"}},
      {"model.bitbyte_lm.d_model",
       {"model.bitbyte_lm.n_head=1", "model.bitbyte_lm.n_layer=1"},
       {"1", "65536"},
       {"0", "65537"}},
      {"model.bitbyte_lm.n_layer", {}, {"1", "1024"}, {"0", "1025"}},
      {"model.bitbyte_lm.n_head", {}, {"1", "256"}, {"0", "257", "3"}},  // d_model 256; 3 does not divide it
      {"model.bitbyte_lm.d_ff", {}, {"0", "1", "262144"}, {"-1", "262145"}},
      {"model.bitbyte_lm.context", {"data.seq_len=2"}, {"2", "1048576"}, {"1", "0", "1048577"}},
      {"model.bitbyte_lm.dropout", {}, {"0", "0.999999"}, Plus({"-1e-9", "1"}, non_finite)},
      {"model.bitbyte_lm.init_std", {}, {"1e-300", "1"}, Plus({"0", "1.0000001"}, non_finite)},
      {"model.mamba_mlm.d_model", {mamba}, {"1", "65536"}, {"0", "65537"}},
      {"model.mamba_mlm.n_layer", {mamba}, {"1", "1024"}, {"0", "1025"}},
      {"model.mamba_mlm.d_state", {mamba}, {"1", "1024"}, {"0", "1025"}},
      {"model.mamba_mlm.d_conv", {mamba}, {"1", "256"}, {"0", "257"}},
      {"model.mamba_mlm.expand", {mamba}, {"1", "64"}, {"0", "65"}},
      {"model.mamba_mlm.dt_rank", {mamba}, {"0", "1", "65536"}, {"-1", "65537"}},
      {"model.mamba_mlm.dt_min",
       {mamba, "model.mamba_mlm.dt_max=10"},
       {"1e-300", "10"},
       Plus({"0", "10.000001"}, non_finite)},
      {"model.mamba_mlm.dt_max", {mamba}, {"0.001", "10"}, Plus({"0.000999", "10.000001"}, non_finite)},
      {"model.mamba_mlm.context", {mamba, "data.seq_len=2"}, {"2", "1048576"}, {"1", "1048577"}},
      {"model.mamba_mlm.init_std", {mamba}, {"1e-300", "1"}, Plus({"0", "1.0000001"}, non_finite)},
      {"model.bit_transformer_lm.d_model",
       {bits, "model.bit_transformer_lm.n_head=1", "model.bit_transformer_lm.n_layer=1"},
       {"1", "65536"},
       {"0", "65537"}},
      {"model.bit_transformer_lm.n_layer", {bits}, {"1", "1024"}, {"0", "1025"}},
      {"model.bit_transformer_lm.n_head", {bits}, {"1", "256"}, {"0", "257", "3"}},
      {"model.bit_transformer_lm.d_ff", {bits}, {"0", "1", "262144"}, {"-1", "262145"}},
      // In bits, whole bytes: data.seq_len 2 needs 16.
      {"model.bit_transformer_lm.context",
       {bits, "data.seq_len=2"},
       {"16", "1048568"},
       {"0", "8", "15", "17", "1048576"}},
      {"model.bit_transformer_lm.reversible", {bits}, {"true", "false"}, {}},
      {"model.bit_transformer_lm.mode", {bits}, {"causal", "diffusion"}, {"", "Causal", "masked"}},
      {"model.bit_transformer_lm.diffusion_steps", {bits}, {"1", "4096"}, {"0", "4097"}},
      {"model.bit_transformer_lm.diffusion_eval_samples", {bits}, {"1", "1024"}, {"0", "1025"}},
      {"model.bit_transformer_lm.attention_window", {bits}, {"0", "1", "1048576"}, {"-1", "1048577"}},
      {"model.bit_transformer_lm.init_std", {bits}, {"1e-300", "1"}, Plus({"0", "1.0000001"}, non_finite)},
      // n_layer 4 and data.seq_len 256 by default.
      {"growth.depth",
       {},
       {"", "0:4", "0:1,10:2,20:4"},
       {"1:4", "0:2", "0:2,0:4", "0:3,10:2,20:4", "0:5", "x", "0:2;9:4", "0:2,10:4,"}},
      {"growth.seq_len", {}, {"", "0:2", "0:64,100:256,200:32"}, {"0:1", "0:257", "5:16", "0:16,3", "0:16,2:x"}},
      {"telemetry.every", {}, {"0", "999999999"}, {"-1", "1000000000"}},
      {"telemetry.probe_bytes", {}, {"2", "65536"}, {"0", "1", "65537"}},
      {"telemetry.k_min", {}, {"0", "1"}, Plus({"-1e-9", "1.0000001"}, non_finite)},
      {"telemetry.k_max", {}, {"0", "1"}, Plus({"-1e-9", "1.0000001"}, non_finite)},
      {"telemetry.c_min", {}, {"0", "1000"}, Plus({"-1e-9", "1000.1"}, non_finite)},
      {"telemetry.c_max", {}, {"0", "1000"}, Plus({"-1e-9", "1000.1"}, non_finite)},
      {"telemetry.s_min", {}, {"0", "1"}, Plus({"-1e-9", "1.0000001"}, non_finite)},
      {"telemetry.s_max", {}, {"0", "1"}, Plus({"-1e-9", "1.0000001"}, non_finite)},
      {"telemetry.generation_gate", {}, {"off", "flag", "refuse"}, {"", "warn", "Flag"}},
  };
  return table;
}

constexpr uint64_t kNoMemoryLimit = uint64_t{1} << 60;

// ValidateConfig's error for the config made of `sets` ("(no error)" when it passes).
std::string Validate(const std::vector<std::string>& sets, uint64_t memory = kNoMemoryLimit) {
  return ErrorOf([&] {
    pb::TrainConfig c;
    for (const std::string& s : sets) ApplyOverride(c, s);
    FillDefaults(c);
    ValidateConfig(c, memory);
  });
}

// int4's calibration in quant_eval needs one window of the train split; int8 none.
TEST(ConfigLimits, QuantEvalCalibrationNeedsOneWindowWhenInt4IsEvaluated) {
  const std::vector<std::string> base = {"quant_eval.every=5", "data.seq_len=16"};
  EXPECT_EQ(Validate(Plus(base, {"quant_eval.calib_bytes=16"})), "(no error)");
  EXPECT_NE(Validate(Plus(base, {"quant_eval.calib_bytes=15"})).find("config field quant_eval.calib_bytes"),
            std::string::npos);
  EXPECT_EQ(Validate(Plus(base, {"quant_eval.calib_bytes=15", "quant_eval.schemes=int8"})), "(no error)");
  EXPECT_EQ(Validate({"data.seq_len=16", "quant_eval.calib_bytes=15"}), "(no error)");  // quant_eval off
}

TEST(ConfigLimits, EachFieldAcceptsJustInsideAndRefusesJustOutsideNamingIt) {
  for (const Limit& l : Limits()) {
    for (const std::string& v : l.inside)
      EXPECT_EQ(Validate(Plus(l.context, {l.field + "=" + v})), "(no error)") << l.field << "=" << v;
    for (const std::string& v : l.outside) {
      const std::string error = Validate(Plus(l.context, {l.field + "=" + v}));
      EXPECT_NE(error.find("config field " + l.field), std::string::npos) << l.field << "=" << v << ": " << error;
    }
  }
}

void ScalarFields(const google::protobuf::Descriptor* d, const std::string& prefix, std::vector<std::string>& out) {
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE)
      ScalarFields(f->message_type(), prefix + f->name() + ".", out);
    else
      out.push_back(prefix + f->name());
  }
}

TEST(ConfigLimits, FieldsOfTheConfigAllHaveRows) {
  std::vector<std::string> fields;
  ScalarFields(pb::TrainConfig::descriptor(), "", fields);
  std::set<std::string> rows;
  for (const Limit& l : Limits()) {
    EXPECT_TRUE(rows.insert(l.field).second) << l.field << " has two rows";
    EXPECT_FALSE(l.inside.empty()) << l.field;
  }
  for (const std::string& f : fields)
    EXPECT_TRUE(rows.count(f)) << "config field " << f << " has no row in the limits table: give it bounds in "
                               << "ValidateConfig or ValidateModelConfig, and a row here";
  for (const std::string& r : rows)
    EXPECT_NE(std::find(fields.begin(), fields.end(), r), fields.end()) << r << " is not a config field";
}

// Products of fields, each refused naming a field; D7's reproducer first.
TEST(ConfigLimits, ProductsAreBounded) {
  // batch x accumulation overflowed int32 in train_job.cc ("loss is nan", vector::_M_default_append).
  EXPECT_NE(Validate({"data.batch_size=65536", "data.grad_accum=65536"}).find("config field data."), std::string::npos);
  // windows a step: batch_size x grad_accum <= 2^20
  EXPECT_EQ(Validate({"data.seq_len=2", "data.batch_size=1024", "data.grad_accum=1024"}), "(no error)");
  EXPECT_NE(
      Validate({"data.seq_len=2", "data.batch_size=1024", "data.grad_accum=1025"}).find("config field data.grad_accum"),
      std::string::npos);
  // a step's batch: rows x (seq_len + 1) <= 2^30 bytes
  const std::vector<std::string> long_windows = {"model.bitbyte_lm.context=2048", "data.seq_len=2047",
                                                 "eval.batch_size=1", "data.grad_accum=65536"};
  EXPECT_EQ(Validate(Plus(long_windows, {"data.batch_size=8"})), "(no error)");
  EXPECT_NE(Validate(Plus(long_windows, {"data.batch_size=9"})).find("config field data.batch_size"),
            std::string::npos);
  // a forward pass: batch_size x seq_len <= 2^24 bytes (train and eval)
  EXPECT_EQ(Validate({"data.batch_size=65536", "eval.batch_size=65536"}), "(no error)");  // x 256
  const std::vector<std::string> w257 = {"model.bitbyte_lm.context=512", "data.seq_len=257"};
  EXPECT_NE(Validate(Plus(w257, {"data.batch_size=65536"})).find("config field data.batch_size"), std::string::npos);
  EXPECT_NE(Validate(Plus(w257, {"eval.batch_size=65536"})).find("config field eval.batch_size"), std::string::npos);
  // data.seq_len within the model's context; min_lr within lr
  EXPECT_NE(Validate({"data.seq_len=257"}).find("config field data.seq_len"), std::string::npos);
  EXPECT_NE(Validate({"optim.lr=0.01", "optim.min_lr=0.02"}).find("config field optim.min_lr"), std::string::npos);
}

// Weights, gradients and AdamW state must fit in memory: refused naming the model and the GiB.
TEST(ConfigLimits, ModelLargerThanMemoryIsRefusedWithTheGiBNeeded) {
  const uint64_t gib = uint64_t{1} << 30;
  EXPECT_EQ(Validate({}, gib), "(no error)");  // the default model: a few million parameters
  const std::vector<std::string> big = {"model.bitbyte_lm.d_model=4096", "model.bitbyte_lm.n_layer=8"};
  const std::string error = Validate(big, gib);
  EXPECT_NE(error.find("config field model.bitbyte_lm"), std::string::npos) << error;
  EXPECT_NE(error.find("GiB"), std::string::npos) << error;
  EXPECT_EQ(Validate(big, 64 * gib), "(no error)");
  // The largest sizes the field bounds allow still count without overflow, and are refused.
  const std::string huge =
      Validate({"model.name=mamba_mlm", "model.mamba_mlm.d_model=65536", "model.mamba_mlm.n_layer=1024",
                "model.mamba_mlm.expand=64", "model.mamba_mlm.d_state=1024"},
               uint64_t{1} << 40);
  EXPECT_NE(huge.find("config field model.mamba_mlm"), std::string::npos) << huge;
  EXPECT_GT(PhysicalMemoryBytes(), 0u);
}

TEST(Config, ResumeMayChangeOnlyScheduleFields) {
  pb::TrainConfig saved;
  FillDefaults(saved);
  for (const char* ok : {"steps=5000", "log_every=1", "eval.every=3", "checkpoint.every=9", "checkpoint.keep=5"}) {
    pb::TrainConfig r = saved;
    ApplyOverride(r, ok);
    EXPECT_EQ(IncompatibleField(saved, r), "") << ok;
  }
  for (const char* bad : {"seed=2", "optim.lr=0.5", "model.bitbyte_lm.d_model=64", "data.batch_size=3",
                          "eval.max_bytes=5", "optim.state_bits=8", "model.qat.scheme=ternary"}) {
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
