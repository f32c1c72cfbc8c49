// Writes seed inputs for the fuzz targets, made by the real writers (so they follow the formats
// as they are now): fuzz_seeds OUT_DIR creates OUT_DIR/<target>/ for each target.
//   shard_file_fuzz, manifest_fuzz  the shards and manifest.pb of two tiny datasets (RunShardJob)
//   checkpoint_fuzz                 a small checkpoint (WriteCheckpoint), packed as the target reads it
//   config_fuzz                     every field printed with its default, per model track
//   run_files_fuzz                  run files: run.json and metrics.jsonl as the train job writes
//                                   them, the shard job's real pipeline.json, a config.txtpb
// scripts/fuzz.sh runs it before each fuzzing run; tests/fuzz/make_corpus.sh refreshes the
// committed corpora with it.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "base/file_io.h"
#include "models/registry.h"
#include "sharding/shard_job.h"
#include "train/checkpoint.h"
#include "train/config.h"

namespace {

std::string out_root;

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

std::string Seed(const std::string& target, const std::string& name) {
  const std::string dir = out_root + "/" + target;
  ::mkdir(dir.c_str(), 0755);
  return dir + "/" + name;
}

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    ::closedir(d);
  }
  return names;
}

std::string TempDir() {
  char tmpl[] = "/tmp/bitbyte-seeds-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

// The byte run_files_fuzz cuts its input at.
constexpr char kSep = '\x1e';

// ---- datasets: shards, manifests and the shard job's pipeline.json ----
std::string pipeline_json;

void Dataset(const std::string& tag, const std::vector<std::string>& docs, uint64_t frame_bytes, uint64_t shard_bytes) {
  const std::string tmp = TempDir();
  std::vector<std::string> inputs;
  for (size_t i = 0; i < docs.size(); ++i) {
    inputs.push_back(tmp + "/doc" + std::to_string(i) + ".txt");
    Write(inputs.back(), docs[i]);
  }
  bitbyte::shard::ShardJobOptions o;
  o.inputs = inputs;
  o.out_dir = tmp + "/out";
  o.params.frame_bytes = frame_bytes;
  o.params.shard_bytes = shard_bytes;
  o.params.val_fraction = 0.3;
  o.threads = 2;
  o.progress = bitbyte::pipeline::ProgressMode::kNone;
  o.figures_path = tmp + "/out/pipeline.json";
  bitbyte::shard::RunShardJob(o);
  Write(Seed("manifest_fuzz", tag + ".manifest.pb"), Read(o.out_dir + "/manifest.pb"));
  for (const std::string& name : List(o.out_dir)) {
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".bbs") == 0)
      Write(Seed("shard_file_fuzz",
                 tag + "." + name.substr(0, name.rfind('-')) + ".bbs"),  // no fingerprint: stable names
            Read(o.out_dir + "/" + name));
    else if (name == "pipeline.json")
      pipeline_json = Read(o.out_dir + "/" + name);
  }
  std::system(("rm -rf '" + tmp + "'").c_str());
}

std::string Text(size_t n, unsigned seed) {
  static const char* words[] = {"whale ", "sea ", "Ahab ", "the ", "of ", "and ", "ship, ", "Call me Ishmael. ", "\n"};
  std::string s;
  for (size_t i = 0; s.size() < n; ++i) s += words[(i * 7 + seed * 3 + i / 5) % 9];
  s.resize(n);
  return s;
}

// ---- checkpoint_fuzz: input = u16 LE size of COMMIT, u16 LE size of meta.pb, COMMIT, meta.pb,
// tensors.bin ----
void Checkpoint(const std::string& name, const bitbyte::train::Snapshot& snap) {
  const std::string tmp = TempDir();
  const std::string dir = bitbyte::train::WriteCheckpoint(bitbyte::io::Posix(), tmp, snap);
  const std::string commit = Read(dir + "/COMMIT"), meta = Read(dir + "/meta.pb"), tensors = Read(dir + "/tensors.bin");
  if (commit.size() > 0xFFFF || meta.size() > 0xFFFF) throw std::runtime_error("checkpoint seed too large");
  std::string in;
  for (size_t v : {commit.size(), meta.size()}) {
    in += static_cast<char>(v & 0xFF);
    in += static_cast<char>(v >> 8);
  }
  Write(Seed("checkpoint_fuzz", name), in + commit + meta + tensors);
  std::system(("rm -rf '" + tmp + "'").c_str());
}

bitbyte::train::TensorBlob Tensor(const std::string& name, std::vector<int64_t> shape) {
  bitbyte::train::TensorBlob t;
  t.name = name;
  t.dtype = "Float";  // c10::toString(torch::kFloat), as trainer.cc writes it
  t.shape = shape;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  t.data.resize(static_cast<size_t>(n) * 4);
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<char>(i * 37 + 11);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seeds OUT_DIR\n";
    return 2;
  }
  out_root = argv[1];
  ::mkdir(out_root.c_str(), 0755);
  try {
    // Several frames and shards per split; and one document (cut into train and validation).
    Dataset("multi", {Text(3000, 1), Text(700, 2), "", Text(2500, 3), Text(1200, 4)}, 1024, 2048);
    Dataset("one", {Text(1500, 5)}, 1024, 1024);

    // Configs: every field with its default, for each track.
    namespace train = bitbyte::train;
    std::string default_config;
    for (const auto& track : bitbyte::models::Tracks()) {
      train::pb::TrainConfig c;
      c.mutable_model()->set_name(track.name);
      train::FillDefaults(c);
      const std::string text = train::ConfigToText(c);
      Write(Seed("config_fuzz", track.name + ".txtpb"), text);
      if (default_config.empty()) default_config = text;
    }
    Write(Seed("config_fuzz", "bad_values.txtpb"),
          "model { name: \"bitbyte_lm\" bitbyte_lm { n_head: 3 } }\ndata { batch_size: 65536 grad_accum: 65536 }\n");
    Write(Seed("config_fuzz", "overrides.txtpb"),
          "#set optim.lr=0.01\n#set data.batch_size=4\nsteps: 20\nmodel { name: \"bitbyte_lm\" }\n");

    // Checkpoints: a tiny model's tensors, optimizer state and a generator blob.
    train::Snapshot snap;
    snap.step = 20;
    snap.config_text = default_config;
    snap.dataset_id = 0x1234567890abcdefULL;
    snap.tensors = {Tensor("model.embed.weight", {16, 4}), Tensor("model.head.bias", {16}),
                    Tensor("optim.0.exp_avg", {16, 4}), Tensor("optim.0.exp_avg_sq", {16, 4})};
    snap.blobs = {{"rng", std::string(32, '\x5a')}, {"step_counters", "{\"steps\":20}"}};
    Checkpoint("small", snap);
    snap.step = 0;
    snap.tensors.resize(1);
    snap.blobs.clear();
    Checkpoint("one_tensor", snap);

    // Run files: first byte = which exist (bit 0 run.json, 1 metrics.jsonl, 2 pipeline.json,
    // 3 config.txtpb), then their contents cut by 0x1E.
    const std::string run_json =
        "{\"threads\":2,\"device\":\"cpu\",\"libtorch\":\"1.13.1\",\"blas_core\":\"Haswell\","
        "\"openblas_coretype_env\":\"\",\"bitbyte\":\"0.1.0\",\"tbb\":\"2021.8.0\",\"cpu\":\"x86\","
        "\"host\":\"h\",\"data\":\"/data/moby\",\"dataset_id\":\"00000000000004d2\"}\n";
    std::string metrics;
    for (int s = 1; s <= 4; ++s) {
      char line[400];
      std::snprintf(line, sizeof line,
                    "{\"step\":%d,\"loss\":%.3f,\"lr\":0.001,\"grad_norm\":1.5,\"bytes_per_s\":12000.0,"
                    "\"data_wait_frac\":0.01,\"step_s\":0.05,\"step_wall_s\":0.06,\"elapsed_s\":%.2f%s}\n",
                    s, 5.5 - s * 0.25, 0.06 * s, s == 2 ? ",\"ckpt_stall_s\":0.001" : "");
      metrics += line;
      if (s == 2) metrics += "{\"step\":2,\"val_bpb\":7.25,\"val_bytes\":4096,\"eval_s\":0.2,\"elapsed_s\":0.3}\n";
    }
    const std::string config = "model {\n  name: \"bitbyte_lm\"\n}\nsteps: 4\n";
    Write(Seed("run_files_fuzz", "train_run"),
          std::string(1, '\x0b') + run_json + kSep + metrics + kSep + kSep + config);
    Write(Seed("run_files_fuzz", "shard_pipeline"), std::string(1, '\x04') + kSep + kSep + pipeline_json);
    Write(Seed("run_files_fuzz", "wrong_types"),  // each file valid JSON / text of the wrong shape
          std::string(1, '\x0f') + "[1,2]" + kSep + "{\"step\":\"x\",\"loss\":[]}\n{\"val_bpb\":true}\n7\n" + kSep +
              "{\"graphs\":5,\"state\":7}" + kSep + "steps: -1\n");
    Write(Seed("run_files_fuzz", "everything"), std::string(1, '\x0f') + run_json + kSep + metrics +
                                                    "{\"step\":5,\"lo" + kSep + pipeline_json + kSep + config);
  } catch (const std::exception& e) {
    std::cerr << "fuzz_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
