// bitbyte shard / inspect / verify / cat.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/cli_util.h"
#include "apps/commands.h"
#include "apps/job_options.h"
#include "base/error.h"
#include "pipeline/monitor.h"
#include "pipeline/progress.h"
#include "sharding/reader.h"
#include "sharding/shard_job.h"

namespace bitbyte::cli {
namespace {

using pipeline::Progress;

pipeline::ProgressMode ProgressModeOf(bool quiet) {
  return quiet ? pipeline::ProgressMode::kNone : pipeline::ProgressMode::kAuto;
}

std::string SplitLabel(int s) { return shard::SplitName(static_cast<shard::Split>(s)); }

}  // namespace

void AddShardCommand(CLI::App& app) {
  struct Args {
    ShardArgs job;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c =
      app.add_subcommand("shard",
                         "Turn a corpus into zstd-compressed byte shards with a protobuf manifest.\n"
                         "Each plain file is one document; with --jsonl-field each JSONL record is one. Documents are\n"
                         "routed to train or val by content hash (stable when documents are added). Output is\n"
                         "byte-identical for any --threads; re-running resumes an interrupted run. Live per-node\n"
                         "figures of the flow graph go to OUT/pipeline.json ('bitbyte top OUT' shows them).\n"
                         "Format: docs/shard-format.md");
  AddShardJobOptions(c, &a->job, /*for_job=*/true);
  c->callback([a] {
    shard::ShardJobOptions o = ShardJobOptionsOf(a->job);
    o.figures_path = io::JoinPath(a->job.out, pipeline::kFiguresFile);
    o.progress = ProgressModeOf(a->job.quiet);
    const shard::ShardJobResult r = shard::RunShardJob(o);
    if (a->job.stats) std::fprintf(stderr, "%s", r.stats_table.c_str());
    const double raw = static_cast<double>(r.train_bytes + r.val_bytes);
    std::printf(
        "sharded %llu sources, %llu documents: train %s, val %s -> %s in %llu shards "
        "(%llu written, %llu reused), %.3f bpb as stored, %.2f s\n",
        static_cast<unsigned long long>(r.sources), static_cast<unsigned long long>(r.documents),
        Progress::FormatBytes(static_cast<double>(r.train_bytes)).c_str(),
        Progress::FormatBytes(static_cast<double>(r.val_bytes)).c_str(),
        Progress::FormatBytes(static_cast<double>(r.file_bytes)).c_str(),
        static_cast<unsigned long long>(r.shards_written + r.shards_reused),
        static_cast<unsigned long long>(r.shards_written), static_cast<unsigned long long>(r.shards_reused),
        raw > 0 ? 8.0 * static_cast<double>(r.file_bytes) / raw : 0.0, r.seconds);
    if (r.bad_records) std::printf("skipped %llu bad JSONL records\n", static_cast<unsigned long long>(r.bad_records));
    std::printf("dataset: %s\n", a->job.out.c_str());
  });
}

void AddInspectCommand(CLI::App& app) {
  struct Args {
    std::string dir;
    bool json = false, documents = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand("inspect", "Print a dataset's manifest readably (--json for machines)");
  c->add_option("dir", a->dir, "Dataset directory")->required();
  c->add_flag("--json", a->json, "Print JSON");
  c->add_flag("--documents", a->documents, "Also list every document");
  c->callback([a] {
    auto ds = shard::Dataset::Open(a->dir);
    const shard::pb::Manifest& m = ds->manifest();
    const auto& p = m.params();
    if (a->json) {
      nlohmann::ordered_json j;
      j["dir"] = a->dir;
      j["format_version"] = m.format_version();
      j["dataset_id"] = Hex64(m.dataset_id());
      j["params"] = {{"frame_bytes", p.frame_bytes()},
                     {"shard_bytes", p.shard_bytes()},
                     {"level", p.level()},
                     {"val_fraction", p.val_fraction()},
                     {"jsonl_field", p.jsonl_field()},
                     {"skip_bad_records", p.skip_bad_records()}};
      j["val_tail_fallback"] = m.val_tail_fallback();
      j["empty_documents"] = m.empty_documents();
      for (const auto& s : m.sources())
        j["sources"].push_back({{"path", s.path()},
                                {"size", s.size()},
                                {"xxh64", Hex64(s.xxh64())},
                                {"documents", s.documents()},
                                {"bad_records", s.bad_records()}});
      for (const auto& s : m.splits())
        j["splits"][SplitLabel(s.split())] = {
            {"bytes", s.bytes()}, {"documents", s.documents()}, {"shards", s.shards()}};
      for (const auto& s : m.shards())
        j["shards"].push_back({{"name", s.name()},
                               {"split", SplitLabel(s.split())},
                               {"index", s.index()},
                               {"raw_offset", s.raw_offset()},
                               {"raw_bytes", s.raw_bytes()},
                               {"file_bytes", s.file_bytes()},
                               {"frames", s.frames()},
                               {"documents", s.documents()},
                               {"raw_xxh64", Hex64(s.raw_xxh64())},
                               {"file_xxh64", Hex64(s.file_xxh64())}});
      j["documents"] = m.documents_size();
      if (a->documents) {
        j["document_list"] = nlohmann::ordered_json::array();
        for (const auto& d : m.documents())
          j["document_list"].push_back({{"source", d.source()},
                                        {"split", SplitLabel(d.split())},
                                        {"offset", d.offset()},
                                        {"length", d.length()},
                                        {"xxh64", Hex64(d.xxh64())}});
      }
      // Paths are bytes; JSON wants UTF-8: invalid sequences print as U+FFFD.
      std::printf("%s\n", j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
      return;
    }
    uint64_t file_bytes = 0;
    for (const auto& s : m.shards()) file_bytes += s.file_bytes();
    const double raw = static_cast<double>(m.splits(0).bytes() + m.splits(1).bytes());
    std::printf("dataset      %s\n", a->dir.c_str());
    std::printf("format       %u, id %s\n", m.format_version(), Hex64(m.dataset_id()).c_str());
    std::printf("params       frame %llu B, shard %llu B, zstd level %d, val fraction %g%s%s\n",
                static_cast<unsigned long long>(p.frame_bytes()), static_cast<unsigned long long>(p.shard_bytes()),
                p.level(), p.val_fraction(),
                p.jsonl_field().empty() ? "" : (", jsonl field '" + p.jsonl_field() + "'").c_str(),
                p.skip_bad_records() ? ", bad records skipped" : "");
    std::printf("size         %s raw, %s stored (%.3f bits per byte)\n", Progress::FormatBytes(raw).c_str(),
                Progress::FormatBytes(static_cast<double>(file_bytes)).c_str(),
                raw > 0 ? 8.0 * static_cast<double>(file_bytes) / raw : 0.0);
    for (const auto& s : m.splits())
      std::printf("split %-6s %llu bytes, %llu documents, %llu shards\n", SplitLabel(s.split()).c_str(),
                  static_cast<unsigned long long>(s.bytes()), static_cast<unsigned long long>(s.documents()),
                  static_cast<unsigned long long>(s.shards()));
    if (m.val_tail_fallback())
      std::printf(
          "note         hash routing left a split empty: the last document was cut into a train head and a val tail\n");
    if (m.empty_documents())
      std::printf("note         %llu empty documents\n", static_cast<unsigned long long>(m.empty_documents()));
    std::printf("sources      %d\n", m.sources_size());
    const int show = m.sources_size() <= 20 ? m.sources_size() : 10;
    for (int i = 0; i < show; ++i) {
      const auto& s = m.sources(i);
      std::printf("  %s  %llu bytes  xxh64 %s  %llu documents%s\n", s.path().c_str(),
                  static_cast<unsigned long long>(s.size()), Hex64(s.xxh64()).c_str(),
                  static_cast<unsigned long long>(s.documents()),
                  s.bad_records() ? (", " + std::to_string(s.bad_records()) + " bad records skipped").c_str() : "");
    }
    if (show < m.sources_size()) std::printf("  ... %d more (--json lists all)\n", m.sources_size() - show);
    std::printf("shards       %d\n", m.shards_size());
    std::printf("  %-32s %-5s %12s %12s %7s %9s\n", "name", "split", "raw bytes", "file bytes", "frames", "documents");
    for (const auto& s : m.shards())
      std::printf("  %-32s %-5s %12llu %12llu %7llu %9llu\n", s.name().c_str(), SplitLabel(s.split()).c_str(),
                  static_cast<unsigned long long>(s.raw_bytes()), static_cast<unsigned long long>(s.file_bytes()),
                  static_cast<unsigned long long>(s.frames()), static_cast<unsigned long long>(s.documents()));
    if (a->documents) {
      std::printf("documents    %d\n  %6s %-5s %6s %12s %10s %s\n", m.documents_size(), "#", "split", "source",
                  "offset", "length", "xxh64");
      for (int i = 0; i < m.documents_size(); ++i) {
        const auto& d = m.documents(i);
        std::printf("  %6d %-5s %6u %12llu %10llu %s\n", i, SplitLabel(d.split()).c_str(), d.source(),
                    static_cast<unsigned long long>(d.offset()), static_cast<unsigned long long>(d.length()),
                    Hex64(d.xxh64()).c_str());
      }
    } else {
      std::printf("documents    %d (--documents lists them)\n", m.documents_size());
    }
  });
}

void AddVerifyCommand(CLI::App& app) {
  struct Args {
    std::string dir;
    bool quiet = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand(
      "verify",
      "Check every checksum and frame of a dataset. Exit 0 when all is well, 3 naming the first bad\n"
      "shard, frame and offset otherwise.");
  c->add_option("dir", a->dir, "Dataset directory")->required();
  c->add_flag("-q,--quiet", a->quiet, "No progress output");
  c->callback([a] {
    std::unique_ptr<Progress> progress;
    uint64_t last = 0;
    const shard::VerifyReport r = shard::Verify(a->dir, [&](uint64_t done, uint64_t total) {
      if (!progress) progress = std::make_unique<Progress>("verify", total, ProgressModeOf(a->quiet));
      progress->Add(done - last);
      last = done;
    });
    if (progress) progress->Finish();
    std::printf("ok: %llu shards, %llu frames, %llu raw bytes, %llu file bytes verified\n",
                static_cast<unsigned long long>(r.shards), static_cast<unsigned long long>(r.frames),
                static_cast<unsigned long long>(r.raw_bytes), static_cast<unsigned long long>(r.file_bytes));
  });
}

void AddCatCommand(CLI::App& app) {
  struct Args {
    std::string dir, split = "all";
  };
  auto a = std::make_shared<Args>();
  CLI::App* c =
      app.add_subcommand("cat",
                         "Write the documents' bytes to stdout in manifest order (input order). With --split all and\n"
                         "plain-file inputs this reproduces the inputs concatenated, byte for byte.");
  c->add_option("dir", a->dir, "Dataset directory")->required();
  c->add_option("--split", a->split, "train, val or all")
      ->check(CLI::IsMember({"train", "val", "all"}))
      ->capture_default_str();
  c->callback([a] {
    // Nothing reaches stdout before its document's XXH64 has been checked: `cat` never prints
    // bytes that `verify` would reject. Documents up to kHeld bytes are held in memory; a
    // larger one is read twice (checked, then written; every frame is checked on both reads).
    constexpr uint64_t kHeld = uint64_t{64} << 20;
    auto ds = shard::Dataset::Open(a->dir);
    auto put = [](std::string_view chunk) {
      if (std::fwrite(chunk.data(), 1, chunk.size(), stdout) != chunk.size())
        throw Error(ErrnoMessage("write", "<stdout>", errno));
    };
    std::string held;
    const auto& docs = ds->manifest().documents();
    for (int i = 0; i < docs.size(); ++i) {
      if (a->split != "all" && a->split != SplitLabel(docs[i].split())) continue;
      if (docs[i].length() <= kHeld) {
        held.clear();
        ds->ReadDocument(i, [&](std::string_view chunk) { held.append(chunk); });
        put(held);
      } else {
        ds->ReadDocument(i, [](std::string_view) {});
        ds->ReadDocument(i, put);
      }
    }
    if (std::fflush(stdout) != 0) throw Error(ErrnoMessage("write", "<stdout>", errno));
  });
}

}  // namespace bitbyte::cli
