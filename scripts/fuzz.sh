#!/usr/bin/env bash
# Builds the libFuzzer targets (CMake preset `fuzz`: clang, ASan + UBSan, no LibTorch) and runs
# each one for SECONDS (default 20), as many at once as there are cores, on its seeds: the
# committed tests/fuzz/corpus/<target>/ and seeds made now by the real writers (fuzz_seeds), so
# they follow the formats as they are today. New inputs go to a temporary directory, never into
# the repository. Prints one line per target; exits 1 when any target crashes, hangs or fails a
# check, keeping its reproducer under build/fuzz/crashes/<target>/ (and printing it in base64).
# Usage: scripts/fuzz.sh [SECONDS]
# Reproduce a crash: build/fuzz/bin/<target> build/fuzz/crashes/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
targets=(shard_file_fuzz manifest_fuzz checkpoint_fuzz config_fuzz run_files_fuzz)

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)"

bin=build/fuzz/bin
work="$(mktemp -d /tmp/bitbyte-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$bin/fuzz_seeds" "$work/seeds"

# One target: its result line goes to $work/<target>.line, its status to $work/<target>.rc.
fuzz_one() {
  local t="$1" artifacts="build/fuzz/crashes/$1"
  rm -rf "$artifacts"  # only this run's findings
  mkdir -p "$work/corpus/$t" "$artifacts"
  local seeds=("$work/seeds/$t")
  [ -d "tests/fuzz/corpus/$t" ] && seeds+=("tests/fuzz/corpus/$t")
  [ "$t" = config_fuzz ] && seeds+=(configs)  # the shipped configs
  local rc=0
  # -timeout: one input taking longer is a hang; -rss_limit_mb: one needing more memory is a bug.
  "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work/corpus/$t" "${seeds[@]}" >"$work/$t.log" 2>&1 || rc=$?
  local runs corpus
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")"
  corpus="$(find "$work/corpus/$t" "${seeds[@]}" -type f | wc -l)"
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $t: ok, ${runs:-?} inputs in ${seconds} s, corpus of ${corpus}" >"$work/$t.line"
  else
    echo "fuzz $t: FAILED (exit $rc), reproducer in $artifacts/" >"$work/$t.line"
  fi
  echo "$rc" >"$work/$t.rc"
}

running=0
for t in "${targets[@]}"; do
  fuzz_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$(nproc)" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
for t in "${targets[@]}"; do
  cat "$work/$t.line"
  if [ "$(cat "$work/$t.rc")" != 0 ]; then
    failed=1
    echo "---- $t: end of its log ----"
    tail -n 80 "$work/$t.log"
    for f in build/fuzz/crashes/"$t"/*; do
      [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 4096 ] && { echo "---- $f (base64) ----"; base64 "$f"; }
    done
  fi
done
exit "$failed"
