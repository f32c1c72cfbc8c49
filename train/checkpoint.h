#pragma once
// Checkpoints: the on-disk format, atomic writes, verification and the asynchronous sink.
// Torch-free: a Snapshot is plain bytes, taken by the train step (train/trainer.h).
//
// RUN_DIR/checkpoints/
//   step-000001000/   tensors.bin (raw tensor bytes), meta.pb (CheckpointMeta), COMMIT
//   latest            "step-000001000\n"           (the newest complete checkpoint)
//   best              "step-000000500 1.234567\n"  (lowest validation bpb among those kept)
// A checkpoint is written into ".tmp-step-…", every file fsynced, COMMIT (XXH64 and size of
// meta.pb) written last, the directory renamed into place and the parent fsynced; only then is
// `latest` replaced (atomically). A crash at any point leaves every earlier checkpoint intact.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/file_io.h"

namespace bitbyte::train {

struct TensorBlob {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string data;  // raw bytes, native (little-endian) order, contiguous
};

struct Snapshot {
  int64_t step = 0;  // optimizer steps completed
  std::string config_text;
  uint64_t dataset_id = 0;  // the data it was trained on (0: not recorded)
  std::vector<TensorBlob> tensors;
  std::vector<std::pair<std::string, std::string>> blobs;
  const TensorBlob* Find(const std::string& name) const;
  const std::string* FindBlob(const std::string& name) const;
};

std::string CheckpointName(int64_t step);  // "step-000001000"

// Writes `snap` as RUN_DIR/checkpoints/<name> (atomically, as above). Does not touch `latest`.
// Returns the directory.
std::string WriteCheckpoint(io::FileSystem& fs, const std::string& ckpt_dir, const Snapshot& snap);

// Reads and verifies a checkpoint directory (COMMIT, meta checksum, every tensor's XXH64).
// Throws DataError naming the file and what is wrong.
Snapshot ReadCheckpoint(io::FileSystem& fs, const std::string& dir);

// Complete checkpoint directory names under ckpt_dir, oldest first.
std::vector<std::string> ListCheckpoints(io::FileSystem& fs, const std::string& ckpt_dir);

// The checkpoint to resume from: the one with the most steps that verifies (`latest` is not
// consulted: a crash between the rename and its update leaves a newer complete checkpoint).
// Each one skipped is reported through `warn`. Empty when there is none.
struct LoadedCheckpoint {
  std::string dir;
  Snapshot snapshot;
};
std::optional<LoadedCheckpoint> LoadNewestGood(io::FileSystem& fs, const std::string& ckpt_dir,
                                               const std::function<void(const std::string&)>& warn);

// Resolves what a user passed to --checkpoint: a checkpoint directory, or a run directory /
// checkpoints directory (then its newest good checkpoint).
LoadedCheckpoint LoadForInference(const std::string& path, const std::function<void(const std::string&)>& warn);

// The independent checkpoint sink. Submit() never waits for the disk: at most one write is in
// flight and one snapshot pending; a newer snapshot replaces an older pending one (counted in
// `replaced`), and one older than what is pending or written is dropped (also counted). A dedicated thread does the
// writing, so blocking I/O never occupies a TBB worker. After each write it updates `latest`, keeps the newest `keep`
// plus the best by validation bpb, and removes the rest.
class CheckpointSink {
 public:
  struct Stats {
    uint64_t written = 0, replaced = 0;
    double write_seconds = 0, last_write_seconds = 0;
    uint64_t bytes = 0;
  };

  CheckpointSink(io::FileSystem& fs, std::string ckpt_dir, int keep, std::function<void(const std::string&)> log = {});
  ~CheckpointSink();  // waits for what was submitted

  // Throws the error of a failed earlier write, if any (the failed checkpoint is not committed).
  void Submit(std::shared_ptr<const Snapshot> snap);
  // A validation result for `step`; the checkpoint of that step becomes `best` if it is lowest.
  void RecordEval(int64_t step, double bpb);
  // For a gate that judges the weights after they are checkpointed (the telemetry gate): from now
  // on pruning also keeps every checkpoint newer than the newest vouched step, and the newest at
  // or before it. So the last good checkpoint before a step the gate fails is never pruned for
  // checkpoints written while the gate measured; what is held is pruned at a later write.
  void HoldUnvouched();
  // The weights of `step` passed the gate.
  void Vouch(int64_t step);
  // Waits until nothing is pending or in flight and every eval is applied; rethrows a write error.
  void Flush();
  Stats stats() const;

 private:
  void Loop();
  void AfterWrite(int64_t step);  // latest, best, pruning; called on the writer thread
  void UpdateBest();
  void ThrowIfFailed();

  io::FileSystem& fs_;
  const std::string dir_;
  const int keep_;
  std::function<void(const std::string&)> log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const Snapshot> pending_;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  Stats stats_;
  std::vector<std::pair<int64_t, double>> evals_;  // (step, bpb) seen so far
  size_t evals_seen_ = 0;                          // of which the writer thread has applied
  std::vector<int64_t> written_steps_;
  std::optional<std::pair<int64_t, double>> best_;
  int64_t newest_taken_ = -1;  // newest step the writer thread has taken (in flight or written)
  bool hold_ = false;          // HoldUnvouched() was called
  int64_t vouched_ = -1;       // newest step vouched for
  std::thread thread_;
};

}  // namespace bitbyte::train
