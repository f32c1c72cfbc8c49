#include <gtest/gtest.h>

#include "nodes/run_dir.h"
#include "nodes/report.h"
