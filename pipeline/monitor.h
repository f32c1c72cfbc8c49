#pragma once
// Live per-node figures of a job's graphs: sampled on a thread of their own while the graphs run
// and written, atomically and every few seconds, as one JSON document (pipeline.json in the run
// directory; format in docs/pipeline.md). `bitbyte top`, `bitbyte report` and `bitbyte graph
// --figures` read it. A failed write is reported once and never stops the job.
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/file_io.h"
#include "pipeline/graph.h"

namespace bitbyte::pipeline {

// The live figures' file name, in a run directory or a dataset directory.
inline constexpr char kFiguresFile[] = "pipeline.json";

// Wall-clock seconds since the Unix epoch (the figures' and the event files' timestamps).
double UnixSeconds();

// This machine's host name, as pipeline.json and run.json record it; empty when unknown.
std::string HostName();

struct MonitorOptions {
  std::string path;         // the JSON file; empty: the monitor does nothing
  std::string job;          // "train", "shard"
  int threads = 1;          // the busy % of an unlimited node is relative to this many threads
  double interval_s = 2.0;  // between writes; also the window of the "window" figures
  // Where the file is written; null: io::Posix(). Not the job's io::Default(): the figures are
  // written at times, not at points of the job, so a crash hook counting the job's operations
  // would count a different number from run to run.
  io::FileSystem* fs = nullptr;
};

// The range of MonitorOptions::interval_s (and of --figures-every): a clock wait beyond an
// hour would overflow std::chrono's nanoseconds once added to now (a busy loop, not a wait).
inline constexpr double kMinFiguresInterval = 0.01, kMaxFiguresInterval = 3600;

class Monitor {
 public:
  explicit Monitor(MonitorOptions options);
  ~Monitor();  // the last write says "failed" unless Finish() was called
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // Samples `g` from now until the Watch ends (declare it after the graph, so it ends first).
  class Watch {
   public:
    Watch(Monitor& monitor, const Graph& g);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

   private:
    Monitor& monitor_;
    const Graph& g_;
  };

  // The job is over: "finished" or "interrupted". Writes at once.
  void Finish(const std::string& state);

 private:
  struct Watched;
  void Start(const Graph& g);
  void Stop(const Graph& g);
  void Loop();
  void WriteLocked();  // needs mu_

  MonitorOptions o_;
  double started_unix_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Watched*> graphs_;
  std::string state_ = "running";
  bool stop_ = false, warned_ = false;
  std::thread thread_;
};

// The shape of a job's graphs in the same format, without figures (`bitbyte graph --format json`).
std::string DescribeJson(const std::string& job, const std::vector<GraphDescription>& graphs);

}  // namespace bitbyte::pipeline
