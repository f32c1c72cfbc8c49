#!/usr/bin/env bash
# The test command: install dependencies, build, run every test with ctest.
# Usage: scripts/test.sh [PRESET]   (release by default; `debug` runs under ASan + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
scripts/setup.sh
scripts/build.sh "$preset"
ctest --preset "$preset" -j "$(nproc)"
if [ "$preset" = release ]; then
  scripts/fuzz.sh 8   # every reader's fuzz target for 8 s from its seeds (clang, ASan + UBSan)
  scripts/tsan.sh     # every LibTorch-free test (shard job and training graphs included) under ThreadSanitizer
fi
