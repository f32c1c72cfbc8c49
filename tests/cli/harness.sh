# shellcheck shell=bash
# The harness of the end-to-end tests cli_test.sh and train_test.sh, sourced by both right
# after `set -euo pipefail`. Sourcing it only defines functions (and the variables they keep);
# a test script then calls
#   parse_args "$@"                  BIN and SRC_ROOT from the command line (exit 2 if bad)
#   need_tools TOOL...               exit 2 unless every TOOL is on PATH
#   make_test_dir PREFIX MIN_SHM_KB  a fresh temporary directory T, made the current one
#   group FUNCTION                   once per group of checks
#   finish                           the summary line; exit 1 when a check failed
# and defines errmsg and outmsg (the stderr and stdout excerpts that want_* put into a failure
# message) and want_fail. GROUP_TIMES=1, set after sourcing, makes group print each group's
# run time.

# parse_args PATH/TO/bitbyte [SOURCE_ROOT]: sets BIN (absolute) and SRC_ROOT (default: two
# levels above the script).
parse_args() {
  if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 PATH/TO/bitbyte [SOURCE_ROOT]" >&2
    exit 2
  fi
  case $1 in /*) BIN=$1 ;; *) BIN=$PWD/$1 ;; esac
  SRC_ROOT=${2:-$(dirname "$0")/../..}
  SRC_ROOT=$(cd "$SRC_ROOT" && pwd)
  if [[ ! -x $BIN ]]; then
    echo "$0: '$BIN' is not an executable" >&2
    exit 2
  fi
}

need_tools() {  # need_tools TOOL...
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$0: needs '$tool' on PATH" >&2; exit 2; }
  done
}

# make_test_dir PREFIX MIN_SHM_KB: makes the directory T (PREFIX.XXXXXX) under $TMPDIR when set,
# else under /dev/shm when it has MIN_SHM_KB KiB free, else under /tmp; removes it on exit (an
# interrupt exits 130, a SIGTERM 143); cds into it; starts RESULTS (a line "ok" or "fail" per
# check) and the clock of finish.
make_test_dir() {
  local prefix=$1 min_shm_kb=$2 base=${TMPDIR:-/tmp} shm_free_kb
  if [[ -z ${TMPDIR:-} && -d /dev/shm && -w /dev/shm ]]; then
    shm_free_kb=$(df -k --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ' || true)
    [[ $shm_free_kb =~ ^[0-9]+$ ]] && ((shm_free_kb >= min_shm_kb)) && base=/dev/shm
  fi
  T=$(mktemp -d "$base/$prefix.XXXXXX")
  trap 'rm -rf "$T"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cd "$T" || exit
  RESULTS=$T/.results
  : >"$RESULTS"
  START_SECONDS=$SECONDS
}

# ---------------------------------------------------------------------------------------------
# Checks. Each group of checks runs in a subshell (so a surprise cannot stop the script); a
# check is begin NAME ... end, and any number of `fail MESSAGE` calls in between make it fail.

CUR="" ERRS="" GROUP_TIMES=0
begin() {
  CUR=$1 ERRS=""
  printf '%s\n' "$CUR" >"$T/.current"
}
fail() { ERRS+="${ERRS:+; }$*"; }
end() {
  if [[ -z $ERRS ]]; then
    echo "ok - $CUR"
    echo ok >>"$RESULTS"
  else
    echo "not ok - $CUR: $ERRS"
    echo fail >>"$RESULTS"
  fi
  rm -f "$T/.current"
}
skip() {  # skip NAME REASON: counted as passed
  echo "ok - $1 # SKIP $2"
  echo ok >>"$RESULTS"
}
# group FUNCTION: runs the checks of FUNCTION; a check it leaves unfinished, or its failure
# outside a check, counts as a failed check. A background bitbyte (bg) it leaves is killed.
GROUP_INDEX=0
group() {
  # BITBYTE_TEST_GROUPS="t_a t_b": run only these groups (while working on them).
  if [[ -n ${BITBYTE_TEST_GROUPS:-} && " $BITBYTE_TEST_GROUPS " != *" $1 "* ]]; then return 0; fi
  # BITBYTE_TEST_SHARD=K/N: only every N-th group from the K-th (ctest runs a script as N tests).
  GROUP_INDEX=$((GROUP_INDEX + 1))
  if [[ -n ${BITBYTE_TEST_SHARD:-} ]] && (((GROUP_INDEX - 1) % ${BITBYTE_TEST_SHARD#*/} != ${BITBYTE_TEST_SHARD%/*} - 1)); then
    return 0
  fi
  local rc=0 t0=$SECONDS
  (trap kill_bg EXIT && "$1") || rc=$?
  if ((GROUP_TIMES)); then echo "# $1: $((SECONDS - t0)) s"; fi
  if [[ -f $T/.current ]]; then
    echo "not ok - $(cat "$T/.current"): check aborted (status $rc)"
    echo fail >>"$RESULTS"
    rm -f "$T/.current"
  elif ((rc != 0)); then
    echo "not ok - $1: group aborted (status $rc)"
    echo fail >>"$RESULTS"
  fi
}
# finish: prints the run time, then "N passed, M failed" as the last line; exits 1 when any
# check failed.
finish() {
  local passed failed
  passed=$(grep -c '^ok$' "$RESULTS" || true)
  failed=$(grep -c '^fail$' "$RESULTS" || true)
  echo "# $((SECONDS - START_SECONDS)) s"
  echo "$passed passed, $failed failed"
  ((failed == 0)) || exit 1
}

# ---------------------------------------------------------------------------------------------
# Running bitbyte.

# bb ARGS...: runs bitbyte; stdout in $T/out, stderr in $T/err, exit status in RC. The braces
# with 2>/dev/null keep bash's "Killed" notice out of the output.
bb() {
  RC=0
  { "$BIN" "$@" >"$T/out" 2>"$T/err"; } 2>/dev/null || RC=$?
}
# bb_to FILE ARGS...: like bb, stdout to FILE.
bb_to() {
  local f=$1
  shift
  RC=0
  { "$BIN" "$@" >"$f" 2>"$T/err"; } 2>/dev/null || RC=$?
}
# bg ARGS...: starts bitbyte in the background (stdout/stderr in $T/bg.out, $T/bg.err); PID in
# BG. One at a time: reap it before the next. A group that ends early kills it (kill_bg).
BG=""
bg() {
  "$BIN" "$@" >"$T/bg.out" 2>"$T/bg.err" &
  BG=$!
}
# reap PID: waits for it; exit status in RC.
reap() {
  RC=0
  wait "$1" 2>/dev/null || RC=$?
  BG=""
}
kill_bg() {
  if [[ -n $BG ]]; then
    kill -9 "$BG" 2>/dev/null || true
    wait "$BG" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------------------------------------
# Expectations and file helpers.

want_rc() {  # want_rc CODE WHAT
  [[ $RC == "$1" ]] || fail "$2: exit $RC, want $1 (stderr: $(errmsg))"
}
want_err() {  # want_err TEXT WHAT
  grep -qF -- "$1" "$T/err" || fail "$2: stderr lacks '$1' (stderr: $(errmsg))"
}
want_out() {  # want_out TEXT WHAT
  grep -qF -- "$1" "$T/out" || fail "$2: stdout lacks '$1' (stdout: $(outmsg))"
}
# A listing of every path under DIR with each file's SHA-256, but pipeline.json: the live
# figures of the last job (docs/pipeline.md), a log that differs from run to run.
tree_sums() {
  (cd "$1" && find . -mindepth 1 ! -name pipeline.json | sort | while IFS= read -r p; do
    if [[ -f $p ]]; then echo "$(sha256sum <"$p" | cut -c1-64) $p"; else echo "dir $p"; fi
  done)
}
# jq-like: json_get FILE PYTHON_EXPR (j is the parsed document).
json_get() {
  python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>&1 || true
}
flip_byte() {  # flip_byte FILE OFFSET (negative: from the end)
  python3 - "$1" "$2" <<'EOF'
import os, sys
path, off = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
if off < 0:
    off += size
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x5A]))
EOF
}
