#include "nodes/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "models/registry.h"

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

void MergeText(const std::string& text, const std::string& origin, pb::TrainConfig& config) {
  CollectFirstError errors(origin, text);
  gp::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.MergeFromString(text, &config))
    throw std::invalid_argument(errors.first().empty() ? origin + ": not a valid config" : errors.first());
}

void FillMessage(gp::Message& m) {
  const gp::Descriptor* d = m.GetDescriptor();
  const gp::Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const gp::FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
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

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
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
      std::string diff = FirstDifference(a.GetReflection()->GetMessage(a, f), b.GetReflection()->GetMessage(b, f),
                                         path + ".", skip);
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
  if (!ok) throw std::invalid_argument("config field " + field + ": " + rule);
}

}  // namespace

pb::TrainConfig ParseConfigText(const std::string& text, const std::string& origin) {
  pb::TrainConfig config;
  MergeText(text, origin, config);
  return config;
}

pb::TrainConfig LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfigText(ss.str(), path);
}

void ApplyOverride(pb::TrainConfig& config, const std::string& assignment) {
  const std::string origin = "--set " + assignment;
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw std::invalid_argument(origin + ": expected FIELD=VALUE, e.g. optim.lr=3e-4");
  const std::string path = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  // Walk the path to find the field's type, so errors name the part that is wrong and strings
  // get quoted; then let the text-format parser read the value (it checks types and ranges).
  const gp::Descriptor* d = config.GetDescriptor();
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::string text, closing;
  for (size_t i = 0; i < parts.size(); ++i) {
    const gp::FieldDescriptor* f = d->FindFieldByName(parts[i]);
    if (f == nullptr)
      throw std::invalid_argument(origin + ": no field '" + parts[i] + "' in " + d->name() + " (fields: " + FieldNames(d) + ")");
    const bool last = i + 1 == parts.size();
    const bool is_message = f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE;
    if (last && is_message) throw std::invalid_argument(origin + ": '" + path + "' is a message; set one of its fields (" + FieldNames(f->message_type()) + ")");
    if (!last && !is_message) throw std::invalid_argument(origin + ": '" + parts[i] + "' is not a message");
    if (is_message) {
      text += parts[i] + " { ";
      closing += " }";
      d = f->message_type();
    } else if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_STRING) {
      text += parts[i] + ": " + Quote(value);
    } else {
      text += parts[i] + ": " + value;
    }
  }
  MergeText(text + closing, origin, config);
}

void FillDefaults(pb::TrainConfig& config) { FillMessage(config); }

void ValidateConfig(const pb::TrainConfig& c) {
  models::ValidateModelConfig(c.model());
  const auto& data = c.data();
  Check(data.seq_len() >= 2, "data.seq_len", "must be at least 2");
  Check(data.seq_len() <= models::ModelContext(c.model()), "data.seq_len",
        std::to_string(data.seq_len()) + " exceeds the model context " + std::to_string(models::ModelContext(c.model())));
  Check(data.batch_size() >= 1, "data.batch_size", "must be at least 1");
  Check(data.grad_accum() >= 1, "data.grad_accum", "must be at least 1");
  Check(data.prefetch() >= 1 && data.prefetch() <= 64, "data.prefetch", "must be in [1, 64]");
  const auto& o = c.optim();
  Check(o.lr() > 0 && std::isfinite(o.lr()), "optim.lr", "must be positive");
  Check(o.min_lr() >= 0 && o.min_lr() <= o.lr(), "optim.min_lr", "must be in [0, optim.lr]");
  Check(o.warmup_steps() >= 0, "optim.warmup_steps", "must not be negative");
  Check(o.beta1() >= 0 && o.beta1() < 1, "optim.beta1", "must be in [0, 1)");
  Check(o.beta2() >= 0 && o.beta2() < 1, "optim.beta2", "must be in [0, 1)");
  Check(o.eps() > 0, "optim.eps", "must be positive");
  Check(o.weight_decay() >= 0, "optim.weight_decay", "must not be negative");
  Check(o.grad_clip() >= 0, "optim.grad_clip", "must not be negative (0 turns clipping off)");
  Check(c.eval().every() >= 0, "eval.every", "must not be negative");
  Check(c.eval().max_bytes() >= 0, "eval.max_bytes", "must not be negative");
  Check(c.eval().batch_size() >= 1, "eval.batch_size", "must be at least 1");
  Check(c.checkpoint().every() >= 0, "checkpoint.every", "must not be negative");
  Check(c.checkpoint().keep() >= 1, "checkpoint.keep", "must be at least 1");
  Check(c.steps() >= 1, "steps", "must be at least 1");
  Check(c.log_every() >= 0, "log_every", "must not be negative");
}

std::string ConfigToText(const pb::TrainConfig& config) {
  pb::TrainConfig full = config;
  FillDefaults(full);
  std::string out;
  gp::TextFormat::Printer printer;
  printer.PrintToString(full, &out);
  return out;
}

std::string IncompatibleField(const pb::TrainConfig& saved, const pb::TrainConfig& requested) {
  pb::TrainConfig a = saved, b = requested;
  FillDefaults(a);
  FillDefaults(b);
  return FirstDifference(a, b, "", {"steps", "log_every", "eval.every", "checkpoint.every", "checkpoint.keep"});
}

}  // namespace bitbyte::train
