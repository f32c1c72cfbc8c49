#pragma once
// The run directory's file names, declared once (docs/training.md, "Run directory"). Writers
// (train/train_job.cc, runs/metrics_log.h, pipeline::Monitor) and readers (runs/run_dir.h,
// `bitbyte top`) use these. The live figures' file, pipeline.json, is pipeline::kFiguresFile
// (pipeline/monitor.h), named by the monitor that writes it.

namespace bitbyte::runs {

inline constexpr char kRunFile[] = "run.json";           // the environment, the dataset
inline constexpr char kConfigFile[] = "config.txtpb";    // the effective config (text format)
inline constexpr char kMetricsFile[] = "metrics.jsonl";  // a JSON object per step or evaluation
inline constexpr char kCheckpointDir[] = "checkpoints";  // step-NNNNNNNNN/, latest, best

}  // namespace bitbyte::runs
