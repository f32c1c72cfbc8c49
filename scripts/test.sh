#!/usr/bin/env bash
# The test command: install dependencies, build, run every test with ctest.
# Usage: scripts/test.sh [PRESET]   (release by default; `debug` runs under ASan + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
scripts/setup.sh
scripts/build.sh "$preset"
ctest --preset "$preset" -j "$(nproc)"
