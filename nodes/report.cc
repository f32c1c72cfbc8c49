#include "nodes/report.h"
