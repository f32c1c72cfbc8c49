#include "train/config.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "base/error.h"
#include "base/file_io.h"
#include "models/registry.h"
#include "runs/layout.h"

namespace bitbyte::train {
namespace gp = google::protobuf;

namespace {

// Keeps the first error as "origin:line:column: message", followed by the offending line.
class CollectFirstError : public gp::io::ErrorCollector {
 public:
  CollectFirstError(std::string origin, const std::string& text) : origin_(std::move(origin)), text_(text) {}
  void AddError(int line, gp::io::ColumnNumber column, const std::string& message) override {
    if (!first_.empty()) return;
    first_ = origin_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
    std::istringstream in(text_);
    std::string content;
    for (int i = 0; i <= line && std::getline(in, content); ++i) {
    }
    if (!content.empty()) first_ += "\n  " + content;
  }
  const std::string& first() const { return first_; }

 private:
  std::string origin_;
  const std::string& text_;
  std::string first_;
};

// Config texts written before ModelConfig's track became a oneof (bitbyte 0.1.0's config.txtpb
// and checkpoint configs) hold the block of every track. They parse against a copy of the
// descriptors without the oneof; the blocks of the tracks other than model.name are dropped.
bool ParseWithEveryTrackBlock(const std::string& text, pb::TrainConfig& config) {
  struct Legacy {
    gp::DescriptorPool pool;
    const gp::Descriptor* train = nullptr;
    gp::DynamicMessageFactory factory;
  };
  static Legacy* legacy = [] {
    auto* l = new Legacy;
    gp::FileDescriptorProto model_file, train_file;
    models::pb::ModelConfig::descriptor()->file()->CopyTo(&model_file);
    pb::TrainConfig::descriptor()->file()->CopyTo(&train_file);
    for (gp::DescriptorProto& m : *model_file.mutable_message_type()) {
      if (m.name() != models::pb::ModelConfig::descriptor()->name()) continue;
      m.clear_oneof_decl();
      for (gp::FieldDescriptorProto& f : *m.mutable_field()) f.clear_oneof_index();
    }
    if (l->pool.BuildFile(model_file) && l->pool.BuildFile(train_file))
      l->train = l->pool.FindMessageTypeByName(pb::TrainConfig::descriptor()->full_name());
    return l;
  }();
  if (legacy->train == nullptr) return false;
  std::unique_ptr<gp::Message> m(legacy->factory.GetPrototype(legacy->train)->New());
  gp::TextFormat::Parser parser;
  struct Quiet : gp::io::ErrorCollector {
    void AddError(int, gp::io::ColumnNumber, const std::string&) override {}
  } quiet;
  parser.RecordErrorsTo(&quiet);
  if (!parser.ParseFromString(text, m.get())) return false;
  const gp::FieldDescriptor* model_field = legacy->train->FindFieldByName("model");
  gp::Message* model = m->GetReflection()->MutableMessage(m.get(), model_field);
  const gp::Descriptor* md = model->GetDescriptor();
  const std::string name = model->GetReflection()->GetString(*model, md->FindFieldByName("name"));
  for (int i = 0; i < md->field_count(); ++i) {
    const gp::FieldDescriptor* f = md->field(i);
    if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE && f->name() != name)
      model->GetReflection()->ClearField(model, f);
  }
  std::string bytes;
  return m->SerializeToString(&bytes) && config.MergeFromString(bytes);
}

void MergeText(const std::string& text, const std::string& origin, pb::TrainConfig& config) {
  CollectFirstError errors(origin, text);
  gp::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  pb::TrainConfig parsed;
  bool ok = parser.ParseFromString(text, &parsed);
  if (!ok) {
    parsed.Clear();
    ok = ParseWithEveryTrackBlock(text, parsed);
  }
  if (ok) {
    config.MergeFrom(parsed);
    return;
  }
  throw UsageError(errors.first().empty() ? origin + ": not a valid config" : errors.first());
}

void FillMessage(gp::Message& m) {
  const gp::Descriptor* d = m.GetDescriptor();
  const gp::Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const gp::FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
    if (f->containing_oneof() && !r->HasField(m, f)) continue;  // only the member that is set
    if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE) {
      FillMessage(*r->MutableMessage(&m, f));
      continue;
    }
    if (r->HasField(m, f)) continue;
    switch (f->cpp_type()) {
      case gp::FieldDescriptor::CPPTYPE_INT32: r->SetInt32(&m, f, f->default_value_int32()); break;
      case gp::FieldDescriptor::CPPTYPE_INT64: r->SetInt64(&m, f, f->default_value_int64()); break;
      case gp::FieldDescriptor::CPPTYPE_UINT32: r->SetUInt32(&m, f, f->default_value_uint32()); break;
      case gp::FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(&m, f, f->default_value_uint64()); break;
      case gp::FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(&m, f, f->default_value_double()); break;
      case gp::FieldDescriptor::CPPTYPE_FLOAT: r->SetFloat(&m, f, f->default_value_float()); break;
      case gp::FieldDescriptor::CPPTYPE_BOOL: r->SetBool(&m, f, f->default_value_bool()); break;
      case gp::FieldDescriptor::CPPTYPE_ENUM: r->SetEnum(&m, f, f->default_value_enum()); break;
      case gp::FieldDescriptor::CPPTYPE_STRING: r->SetString(&m, f, f->default_value_string()); break;
      case gp::FieldDescriptor::CPPTYPE_MESSAGE: break;
    }
  }
}

std::string FieldNames(const gp::Descriptor* d) {
  std::string names;
  for (int i = 0; i < d->field_count(); ++i) names += (i ? ", " : "") + d->field(i)->name();
  return names;
}

// The dotted path of the first field that differs, or "" when equal. `skip` holds paths that may.
std::string FirstDifference(const gp::Message& a, const gp::Message& b, const std::string& prefix,
                            const std::vector<std::string>& skip) {
  const gp::Descriptor* d = a.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const gp::FieldDescriptor* f = d->field(i);
    const std::string path = prefix + f->name();
    if (std::find(skip.begin(), skip.end(), path) != skip.end()) continue;
    if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated()) {
      std::string diff =
          FirstDifference(a.GetReflection()->GetMessage(a, f), b.GetReflection()->GetMessage(b, f), path + ".", skip);
      if (!diff.empty()) return diff;
      continue;
    }
    // Compare one field by its serialized value (both sides have every field set).
    std::string va, vb;
    gp::TextFormat::PrintFieldValueToString(a, f, -1, &va);
    gp::TextFormat::PrintFieldValueToString(b, f, -1, &vb);
    if (va != vb) return path + " (saved " + va + ", requested " + vb + ")";
  }
  return "";
}

void Check(bool ok, const std::string& field, const std::string& rule) {
  if (!ok) throw UsageError("config field " + field + ": " + rule);
}

}  // namespace

pb::TrainConfig ParseConfigText(const std::string& text, const std::string& origin) {
  pb::TrainConfig config;
  MergeText(text, origin, config);
  return config;
}

pb::TrainConfig LoadConfigFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    throw UsageError("cannot read config file '" + path + "': " + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) throw UsageError("cannot read config file '" + path + "': it is a directory");
  std::string text;
  try {
    text = io::ReadFile(io::Posix(), path);
  } catch (const Error& e) {
    throw UsageError(std::string("cannot read config file '") + path + "': " + e.what());
  }
  return ParseConfigText(text, path);
}

namespace {

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

template <typename T>
bool ParseInteger(const std::string& text, T* out) {
  const char* b = text.data();
  const char* e = b + text.size();
  if (b != e && *b == '+') ++b;
  if (b == e) return false;
  const auto [ptr, ec] = std::from_chars(b, e, *out, 10);
  return ec == std::errc() && ptr == e;
}

// Sets scalar field `f` of `m` from `raw`: exactly one value of its type.
void SetScalar(gp::Message& m, const gp::FieldDescriptor* f, const std::string& raw, const std::string& origin,
               const std::string& path) {
  const gp::Reflection* r = m.GetReflection();
  const std::string v = f->cpp_type() == gp::FieldDescriptor::CPPTYPE_STRING ? raw : Trim(raw);
  auto bad = [&](const std::string& what) -> UsageError {
    return UsageError(origin + ": config field " + path + " takes " + what + ", not '" + raw + "'");
  };
  switch (f->cpp_type()) {
    case gp::FieldDescriptor::CPPTYPE_INT32: {
      int32_t x;
      if (!ParseInteger(v, &x))
        throw bad("one decimal integer in [" + std::to_string(INT32_MIN) + ", " + std::to_string(INT32_MAX) + "]");
      r->SetInt32(&m, f, x);
      break;
    }
    case gp::FieldDescriptor::CPPTYPE_INT64: {
      int64_t x;
      if (!ParseInteger(v, &x)) throw bad("one decimal integer (64-bit)");
      r->SetInt64(&m, f, x);
      break;
    }
    case gp::FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t x;
      if (!ParseInteger(v, &x)) throw bad("one decimal integer in [0, " + std::to_string(UINT32_MAX) + "]");
      r->SetUInt32(&m, f, x);
      break;
    }
    case gp::FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t x;
      if (!ParseInteger(v, &x)) throw bad("one decimal integer in [0, " + std::to_string(UINT64_MAX) + "]");
      r->SetUInt64(&m, f, x);
      break;
    }
    case gp::FieldDescriptor::CPPTYPE_DOUBLE:
    case gp::FieldDescriptor::CPPTYPE_FLOAT: {
      // One number; "inf" and "nan" parse, and ValidateConfig then refuses them naming the field.
      char* end = nullptr;
      const double x = v.empty() ? 0.0 : std::strtod(v.c_str(), &end);
      if (v.empty() || end != v.c_str() + v.size()) throw bad("one number");
      if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_DOUBLE)
        r->SetDouble(&m, f, x);
      else
        r->SetFloat(&m, f, static_cast<float>(x));
      break;
    }
    case gp::FieldDescriptor::CPPTYPE_BOOL: {
      if (v == "true" || v == "True" || v == "t" || v == "1")
        r->SetBool(&m, f, true);
      else if (v == "false" || v == "False" || v == "f" || v == "0")
        r->SetBool(&m, f, false);
      else
        throw bad("true or false");
      break;
    }
    case gp::FieldDescriptor::CPPTYPE_ENUM: {
      const gp::EnumValueDescriptor* e = f->enum_type()->FindValueByName(v);
      if (e == nullptr) {
        std::string names;
        for (int i = 0; i < f->enum_type()->value_count(); ++i)
          names += (i ? ", " : "") + f->enum_type()->value(i)->name();
        throw bad("one of " + names);
      }
      r->SetEnum(&m, f, e);
      break;
    }
    case gp::FieldDescriptor::CPPTYPE_STRING: r->SetString(&m, f, v); break;
    case gp::FieldDescriptor::CPPTYPE_MESSAGE: throw InternalError("SetScalar on a message");
  }
}

}  // namespace

void ApplyOverride(pb::TrainConfig& config, const std::string& assignment) {
  const std::string origin = "--set " + assignment;
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw UsageError(origin + ": expected FIELD=VALUE, e.g. optim.lr=3e-4");
  const std::string path = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  // Walk the path, so errors name the part that is wrong; then parse the value as exactly one
  // value of the field's type (never as text format: "1 } data { batch_size: 2" must not set a
  // second field).
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  pb::TrainConfig updated = config;  // `config` stays as it was when the value is refused
  gp::Message* m = &updated;
  for (size_t i = 0; i < parts.size(); ++i) {
    const gp::Descriptor* d = m->GetDescriptor();
    const gp::FieldDescriptor* f = d->FindFieldByName(parts[i]);
    if (f == nullptr)
      throw UsageError(origin + ": no field '" + parts[i] + "' in " + d->name() + " (fields: " + FieldNames(d) + ")");
    const bool last = i + 1 == parts.size();
    const bool is_message = f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE;
    if (last && is_message)
      throw UsageError(origin + ": '" + path + "' is a message; set one of its fields (" +
                       FieldNames(f->message_type()) + ")");
    if (!last && !is_message) throw UsageError(origin + ": '" + parts[i] + "' is not a message");
    if (f->is_repeated())
      throw UsageError(origin + ": '" + parts[i] + "' is a repeated field; --set takes scalar fields");
    if (is_message) {
      m = m->GetReflection()->MutableMessage(m, f);
    } else {
      SetScalar(*m, f, value, origin, path);
    }
  }
  // Another track: its block goes with the old name, as with --model.
  if (path == "model.name") models::SetTrack(*updated.mutable_model(), updated.model().name());
  config = std::move(updated);
}

void FillDefaults(pb::TrainConfig& config) {
  models::SelectTrackBlock(*config.mutable_model());
  FillMessage(config);
}

namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void CheckRange(const std::string& field, int64_t v, int64_t lo, int64_t hi, const std::string& note = "") {
  Check(v >= lo && v <= hi, field,
        "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]" + note + ", got " + std::to_string(v));
}

// A finite double in [lo, hi], with either end open on request.
void CheckReal(const std::string& field, double v, double lo, double hi, bool lo_open, bool hi_open,
               const std::string& note = "") {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  Check(ok, field,
        std::string("must be a finite number in ") + (lo_open ? "(" : "[") + Num(lo) + ", " + Num(hi) +
            (hi_open ? ")" : "]") + note + ", got " + Num(v));
}

std::string GiB(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace

uint64_t PhysicalMemoryBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

void ValidateConfig(const pb::TrainConfig& c) { ValidateConfig(c, PhysicalMemoryBytes()); }

void ValidateConfig(const pb::TrainConfig& c, uint64_t memory_bytes) {
  using namespace limits;
  models::ValidateModelConfig(c.model());
  const auto& data = c.data();
  CheckRange("data.seq_len", data.seq_len(), 2, kMaxSeqLen);
  Check(
      data.seq_len() <= models::ModelContext(c.model()), "data.seq_len",
      std::to_string(data.seq_len()) + " exceeds the model context " + std::to_string(models::ModelContext(c.model())));
  CheckRange("data.batch_size", data.batch_size(), 1, kMaxBatch);
  CheckRange("data.grad_accum", data.grad_accum(), 1, kMaxGradAccum);
  const int64_t rows = int64_t{data.batch_size()} * data.grad_accum();
  Check(rows <= kMaxRows, "data.grad_accum",
        "data.batch_size x data.grad_accum = " + std::to_string(rows) + " windows a step; at most " +
            std::to_string(kMaxRows));
  Check(rows * (data.seq_len() + 1) <= kMaxStepBytes, "data.batch_size",
        "a step's batch, data.batch_size x data.grad_accum x (data.seq_len + 1) = " +
            std::to_string(rows * (data.seq_len() + 1)) + " bytes; at most " + std::to_string(kMaxStepBytes));
  Check(int64_t{data.batch_size()} * data.seq_len() <= kMaxMicroBatchBytes, "data.batch_size",
        "data.batch_size x data.seq_len = " + std::to_string(int64_t{data.batch_size()} * data.seq_len()) +
            " bytes a forward pass; at most " + std::to_string(kMaxMicroBatchBytes) + " (use data.grad_accum)");
  CheckRange("data.prefetch", data.prefetch(), 1, kMaxPrefetch);
  const auto& o = c.optim();
  CheckReal("optim.lr", o.lr(), 0, kMaxLr, true, false);
  CheckReal("optim.min_lr", o.min_lr(), 0, o.lr(), false, false, " (0 to optim.lr)");
  CheckRange("optim.warmup_steps", o.warmup_steps(), 0, kMaxSteps);
  CheckReal("optim.beta1", o.beta1(), 0, 1, false, true);
  CheckReal("optim.beta2", o.beta2(), 0, 1, false, true);
  CheckReal("optim.eps", o.eps(), 0, kMaxEps, true, false);
  CheckReal("optim.weight_decay", o.weight_decay(), 0, kMaxWeightDecay, false, false);
  CheckReal("optim.grad_clip", o.grad_clip(), 0, kMaxGradClip, false, false, " (0 turns clipping off)");
  Check(o.state_bits() == 32 || o.state_bits() == 8, "optim.state_bits",
        "must be 32 or 8, got " + std::to_string(o.state_bits()));
  CheckRange("eval.every", c.eval().every(), 0, kMaxSteps, " (0: only after the last step)");
  // An evaluation must predict at least one byte: 0 (the whole split) or at least 2 bytes.
  Check(c.eval().max_bytes() == 0 || (c.eval().max_bytes() >= 2 && c.eval().max_bytes() <= kMaxEvalBytes),
        "eval.max_bytes",
        "must be 0 (the whole validation split) or in [2, " + std::to_string(kMaxEvalBytes) +
            "] (the first byte is never predicted), got " + std::to_string(c.eval().max_bytes()));
  CheckRange("eval.batch_size", c.eval().batch_size(), 1, kMaxBatch);
  Check(int64_t{c.eval().batch_size()} * data.seq_len() <= kMaxEvalMicroBatchBytes, "eval.batch_size",
        "eval.batch_size x data.seq_len = " + std::to_string(int64_t{c.eval().batch_size()} * data.seq_len()) +
            " bytes a forward pass; at most " + std::to_string(kMaxEvalMicroBatchBytes));
  const auto& q = c.quant_eval();
  CheckRange("quant_eval.every", q.every(), 0, kMaxSteps, " (0: never)");
  Check(!QuantEvalSchemes(c).empty(), "quant_eval.schemes",
        "a comma-separated list of int8 and int4, each once, got '" + q.schemes() + "'");
  CheckRange("quant_eval.group", q.group(), 2, 4096);
  Check(q.group() % 2 == 0, "quant_eval.group", "must be even, got " + std::to_string(q.group()));
  CheckRange("quant_eval.calib_bytes", q.calib_bytes(), 1, kMaxEvalBytes);
  const auto schemes = QuantEvalSchemes(c);
  if (q.every() > 0 && std::find(schemes.begin(), schemes.end(), "int4") != schemes.end())
    Check(q.calib_bytes() >= data.seq_len(), "quant_eval.calib_bytes",
          "int4's calibration needs at least one data.seq_len window (" + std::to_string(data.seq_len()) +
              " bytes), got " + std::to_string(q.calib_bytes()));
  const auto& t = c.telemetry();
  CheckRange("telemetry.every", t.every(), 0, kMaxSteps, " (0: never)");
  CheckRange("telemetry.probe_bytes", t.probe_bytes(), 2, kMaxProbeBytes);
  for (const auto& [field, lo, hi, max] :
       {std::tuple{"k", t.k_min(), t.k_max(), 1.0}, std::tuple{"c", t.c_min(), t.c_max(), kMaxComplexityBound},
        std::tuple{"s", t.s_min(), t.s_max(), 1.0}}) {
    CheckReal(std::string("telemetry.") + field + "_min", lo, 0, max, false, false);
    CheckReal(std::string("telemetry.") + field + "_max", hi, 0, max, false, false);
    Check(lo <= hi, std::string("telemetry.") + field + "_max",
          Num(hi) + " is below telemetry." + field + "_min " + Num(lo));
  }
  Check(t.generation_gate() == "off" || t.generation_gate() == "flag" || t.generation_gate() == "refuse",
        "telemetry.generation_gate", "must be off, flag or refuse, got '" + t.generation_gate() + "'");
  const auto depth = ParseStages(c.growth().depth(), "growth.depth", 1, models::Depth(c.model()), true);
  Check(depth.empty() || depth.back().second == models::Depth(c.model()), "growth.depth",
        "the last stage must reach the model's n_layer " + std::to_string(models::Depth(c.model())) + ", got '" +
            c.growth().depth() + "'");
  ParseStages(c.growth().seq_len(), "growth.seq_len", 2, data.seq_len(), false);
  CheckRange("checkpoint.every", c.checkpoint().every(), 0, kMaxSteps, " (0: only after the last step)");
  CheckRange("checkpoint.keep", c.checkpoint().keep(), 1, kMaxKeep);
  CheckRange("steps", c.steps(), 1, kMaxSteps);
  CheckRange("log_every", c.log_every(), 0, kMaxSteps, " (0: no progress lines)");
  Check(c.precision() == "fp32" || c.precision() == "bf16" || c.precision() == "auto", "precision",
        "must be fp32, bf16 or auto, got '" + c.precision() + "'");
  Check(c.qat_precision() == "fp32" || c.qat_precision() == "bf16" || c.qat_precision() == "auto", "qat_precision",
        "must be fp32, bf16 or auto, got '" + c.qat_precision() + "'");
  // seed: any 64-bit value.
  // The model's weights, gradients and AdamW state in memory (activations, the evaluation copy
  // and checkpoint snapshots come on top).
  const int64_t params = models::ParameterCount(c.model());
  const int bytes_each = c.optim().state_bits() == 8 ? kBytesPerParameter8 : kBytesPerParameter;
  const double need = static_cast<double>(params) * bytes_each;
  if (memory_bytes > 0 && need > static_cast<double>(memory_bytes)) {
    const std::string track = c.model().name();
    throw UsageError("config field model." + track + ": " + std::to_string(params) + " parameters need " + GiB(need) +
                     " for weights, gradients and AdamW state (" + std::to_string(bytes_each) +
                     " bytes each), more than this machine's " + GiB(static_cast<double>(memory_bytes)) +
                     " of memory (lower d_model or n_layer)");
  }
}

std::string ConfigToText(const pb::TrainConfig& config) {
  pb::TrainConfig full = config;
  FillDefaults(full);
  std::string out;
  gp::TextFormat::Printer printer;
  printer.PrintToString(full, &out);
  return out;
}

std::vector<std::string> QuantEvalSchemes(const pb::TrainConfig& config) {
  std::vector<std::string> out;
  const std::string& s = config.quant_eval().schemes();
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    const std::string name = s.substr(pos, comma - pos);
    if ((name != "int8" && name != "int4") || std::find(out.begin(), out.end(), name) != out.end()) return {};
    out.push_back(name);
    pos = comma + 1;
  }
  return out;
}

std::vector<std::pair<int64_t, int64_t>> ParseStages(const std::string& text, const std::string& field, int64_t lo,
                                                     int64_t hi, bool increasing) {
  std::vector<std::pair<int64_t, int64_t>> stages;
  if (text.empty()) return stages;
  const auto bad = [&](const std::string& why) {
    throw UsageError("config field " + field + ": " + why + " (\"STEP:VALUE,...\", the first step 0), got '" + text +
                     "'");
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    const size_t colon = item.find(':');
    int64_t step = 0, value = 0;
    size_t used_step = 0, used_value = 0;
    try {
      if (colon == std::string::npos) bad("'" + item + "' is not STEP:VALUE");
      step = std::stoll(item.substr(0, colon), &used_step);
      value = std::stoll(item.substr(colon + 1), &used_value);
    } catch (const std::logic_error&) {
      bad("'" + item + "' is not STEP:VALUE with whole numbers");
    }
    if (used_step != colon || used_value != item.size() - colon - 1 || item.empty() || std::isspace(item[0]))
      bad("'" + item + "' is not STEP:VALUE with whole numbers");
    if (stages.empty() && step != 0) bad("the first stage must start at step 0");
    if (!stages.empty() && step <= stages.back().first) bad("the steps must increase");
    if (step < 0 || step > limits::kMaxSteps) bad("step " + std::to_string(step) + " is out of bounds");
    if (value < lo || value > hi)
      bad("value " + std::to_string(value) + " is not in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    if (increasing && !stages.empty() && value <= stages.back().second) bad("the values must increase");
    stages.emplace_back(step, value);
    pos = comma + 1;
  }
  return stages;
}

int64_t StageValue(const std::vector<std::pair<int64_t, int64_t>>& stages, int64_t step, int64_t otherwise) {
  int64_t v = otherwise;
  for (const auto& [from, value] : stages)
    if (step >= from) v = value;
  return v;
}

int64_t DepthAt(const pb::TrainConfig& config, int64_t step) {
  const int64_t n = models::Depth(config.model());
  return StageValue(ParseStages(config.growth().depth(), "growth.depth", 1, n, true), step, n);
}

int64_t SeqLenAt(const pb::TrainConfig& config, int64_t step) {
  const int64_t n = config.data().seq_len();
  return StageValue(ParseStages(config.growth().seq_len(), "growth.seq_len", 2, n, false), step, n);
}

std::string IncompatibleField(const pb::TrainConfig& saved, const pb::TrainConfig& requested) {
  return ConfigDifference(saved, requested,
                          {"steps", "log_every", "eval.every", "checkpoint.every", "checkpoint.keep", "precision",
                           "qat_precision", "quant_eval", "telemetry"});
}

std::string ConfigDifference(const pb::TrainConfig& a, const pb::TrainConfig& b, const std::vector<std::string>& skip) {
  pb::TrainConfig x = a, y = b;
  FillDefaults(x);
  FillDefaults(y);
  return FirstDifference(x, y, "", skip);
}

int64_t ConfigTotalSteps(const std::string& text) {
  pb::TrainConfig config = ParseConfigText(text, runs::kConfigFile);
  FillDefaults(config);
  return config.steps();
}

}  // namespace bitbyte::train
