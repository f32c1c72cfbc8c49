#!/usr/bin/env bash
# The test command: install dependencies, build, run every test with ctest.
# Usage: scripts/test.sh [PRESET]   (release by default; `debug` runs under ASan + UBSan)
# Ends with the seconds each stage took (CI's whole run is to stay under 20 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
times=""
stage() {  # stage NAME COMMAND...: runs it, adding "NAME N s" to the summary (or "NAME failed after N s")
  current=$1 stage_t0=$SECONDS
  shift
  "$@"
  times+="${times:+, }$current $((SECONDS - stage_t0)) s"
  current=""
}
# The summary also when a stage fails, which is when CI's log most needs it.
current="" stage_t0=$SECONDS
trap 'echo "test.sh: ${times:-nothing finished}${current:+, $current failed after $((SECONDS - stage_t0)) s}; $SECONDS s in all" >&2' EXIT
stage setup scripts/setup.sh
stage build scripts/build.sh "$preset"
stage ctest ctest --preset "$preset" -j "$(nproc)"
if [ "$preset" = release ]; then
  stage fuzz scripts/fuzz.sh 8  # every reader's fuzz target for 8 s from its seeds (clang, ASan + UBSan)
  stage tsan scripts/tsan.sh    # every LibTorch-free test (shard job and training graphs included) under ThreadSanitizer
fi
