#include "nodes/run_dir.h"
