#pragma once
// The subcommands. The `bitbyte` binary has those that need no LibTorch and hands the others
// to `bitbyte-ml` (apps/main.cc): LibTorch's start-up costs ~0.35 s, more than a whole shard
// of a 100 MB corpus.
#include <CLI/CLI.hpp>
#include <string>

#include "train/train_job.h"

namespace bitbyte::cli {

// Each registers one subcommand; its callback runs the command and throws on failure.
void AddShardCommand(CLI::App& app);
void AddInspectCommand(CLI::App& app);
void AddVerifyCommand(CLI::App& app);
void AddCatCommand(CLI::App& app);
CLI::App* AddBenchCommand(CLI::App& app);  // bench, with bench shard
void AddTrainCommand(CLI::App& app);
void AddBenchTrainCommand(CLI::App& bench);     // bench train, under bench (bitbyte-ml)
void AddBenchTracksCommand(CLI::App& bench);    // bench tracks, under bench (bitbyte-ml)
void AddBenchGenerateCommand(CLI::App& bench);  // bench generate, under bench (bitbyte-ml)
void AddEvalCommand(CLI::App& app);
void AddQuantizeCommand(CLI::App& app);
void AddGenerateCommand(CLI::App& app);
// graph shard, and graph train when given how to describe the train graph (bitbyte-ml).
using DescribeTrain = std::string (*)(const train::TrainOptions&);
using DescribeQuantize = std::string (*)(const train::QuantizeOptions&);
void AddGraphCommand(CLI::App& app, DescribeTrain describe_train, DescribeQuantize describe_quantize);
void AddTopCommand(CLI::App& app);
void AddReportCommand(CLI::App& app);

}  // namespace bitbyte::cli
