#pragma once
#include <CLI/CLI.hpp>

namespace bitbyte::cli {

// Each registers one subcommand; its callback runs the command and throws on failure.
void AddShardCommand(CLI::App& app);
void AddInspectCommand(CLI::App& app);
void AddVerifyCommand(CLI::App& app);
void AddCatCommand(CLI::App& app);
void AddBenchCommand(CLI::App& app);
void AddTrainCommand(CLI::App& app);
void AddBenchTrainCommand(CLI::App& bench);  // bench train, under bench
void AddEvalCommand(CLI::App& app);
void AddGenerateCommand(CLI::App& app);
void AddGraphCommand(CLI::App& app);   // graph shard|train
void AddTopCommand(CLI::App& app);
void AddReportCommand(CLI::App& app);

}  // namespace bitbyte::cli
