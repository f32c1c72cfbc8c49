// bitbyte report: parsing and wiring only; the report lives in nodes/report.
#include "apps/commands.h"

namespace bitbyte::cli {

void AddReportCommand(CLI::App& app) { (void)app; }

}  // namespace bitbyte::cli
