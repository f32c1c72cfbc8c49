#!/usr/bin/env bash
# End-to-end tests of `bitbyte train`, `eval` and `generate` on tiny models trained on the
# shipped corpus (data/moby-dick.jsonl.zst): resume after kill -9 (from outside, and from inside
# a checkpoint write via BITBYTE_CRASH_AFTER_WRITES) gives the very losses and weights of an
# uninterrupted run; SIGTERM/SIGINT stop with a checkpoint; bad configs, datasets and a NaN loss
# fail with messages naming the culprit; damaged checkpoints are skipped on resume and refused
# by eval; eval counts predicted bytes; generate is seeded; --print-config writes nothing.
# Run by ctest as
#   bash tests/cli/train_test.sh /path/to/bitbyte /path/to/source-root
# Prints "ok - NAME" or "not ok - NAME: details" per check, then "N passed, M failed" alone on
# the last line; exits 1 when any check failed. A failing check does not stop the others.
# Needs bash, coreutils, diffutils, findutils, grep, sed and python3 (standard library only).
# Every bitbyte command runs with --threads 2: results are bit-exact for a given thread count.
# Hooks: BITBYTE_CRASH_AFTER_WRITES=N (sharding/file_io.cc) makes bitbyte SIGKILL itself at its
# N-th mutating file operation; BITBYTE_TEST_NAN_AT_STEP=S (train/train_job.cc) poisons a weight
# before step S (1-based, like metrics.jsonl and checkpoint names).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

parse_args "$@"
need_tools cmp diff find grep sed sort sha256sum truncate head tail wc python3
CORPUS=$SRC_ROOT/data/moby-dick.jsonl.zst
[[ -f $CORPUS ]] || { echo "$0: no corpus at $CORPUS" >&2; exit 2; }

export LC_ALL=C
# OpenMP threads that sleep instead of spinning while they wait: the same numbers, and no
# collapse of the run time when the machine is busy with other work (ctest -j, a build).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
unset BITBYTE_CRASH_AFTER_WRITES BITBYTE_TEST_NAN_AT_STEP
# Temporary files go to $TMPDIR when set, else to /dev/shm when it has room (checkpoints are
# fsynced: on tmpfs that costs nothing).
make_test_dir bitbyte-train-test 262144
# precision "auto" measures once per model and machine and caches the choice: one cache for all
# of these runs, so runs compared with each other resolve alike.
export BITBYTE_CACHE=$T/cache
# shellcheck disable=SC2034  # read by group (harness.sh): print each group's run time
GROUP_TIMES=1

# ---------------------------------------------------------------------------------------------
# Helpers of these checks; the harness (begin ... end, group) and bb, bb_to, bg, reap, want_rc,
# want_err, want_out, tree_sums, json_get and flip_byte are in harness.sh.

# bb_env VAR=VALUE ARGS...: like bb, with one environment variable set.
bb_env() {
  local kv=$1
  shift
  RC=0
  { env "$kv" "$BIN" "$@" >"$T/out" 2>"$T/err"; } 2>/dev/null || RC=$?
}

errmsg() { tail -c 500 "${1:-$T/err}" | tr '\n' ' '; }
outmsg() { head -c 300 "$T/out" | tr '\n' ' '; }
want_fail() {  # want_fail WHAT: a non-zero exit that is not a death by signal
  if [[ $RC == 0 ]]; then
    fail "$1: exit 0, want a failure (stderr: $(errmsg))"
  elif ((RC >= 128)); then
    fail "$1: died with status $RC (signal $((RC - 128))) (stderr: $(errmsg))"
  fi
}
want_err_re() {  # want_err_re EXTENDED_REGEX WHAT
  grep -qE -- "$1" "$T/err" || fail "$2: stderr does not match /$1/ (stderr: $(errmsg))"
}
ckpt_name() { printf 'step-%09d' "$1"; }

# The (step, loss) and (step, val_bpb) records of a metrics.jsonl, sorted, one a line, with the
# numbers exactly as written (repr of the parsed double). A line that does not parse is shown.
cat >"$T/records.py" <<'EOF'
import json, sys
recs = []
for n, line in enumerate(open(sys.argv[1]), 1):
    try:
        j = json.loads(line)
    except ValueError:
        recs.append((-1, "unparsable line %d: %r" % (n, line[:60])))
        continue
    if "loss" in j:
        recs.append((j["step"], "loss %r" % j["loss"]))
    if "val_bpb" in j:
        recs.append((j["step"], "val_bpb %r" % j["val_bpb"]))
for step, what in sorted(recs):
    print(step, what)
EOF
records() { python3 "$T/records.py" "$1" 2>&1 || true; }
# The steps of a metrics.jsonl's loss records, in file order, space-separated.
loss_steps() {
  python3 -c '
import json, sys
out = []
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if "loss" in j:
        out.append(str(j["step"]))
print(" ".join(out))' "$1" 2>&1 || true
}
# The step of the newest record in a metrics.jsonl (0 when none); cheap enough to poll.
last_step() {
  local s
  s=$(tail -n 3 "$1" 2>/dev/null | sed -n 's/.*"step":\([0-9][0-9]*\).*/\1/p' | tail -1)
  echo "${s:-0}"
}
# wait_step FILE STEP PID: waits until FILE has a record of step >= STEP; fails when PID exits
# first (or after 2 minutes).
wait_step() {
  local i
  for ((i = 0; i < 6000; i++)); do
    (($(last_step "$1") >= $2)) && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

# same_run REF RUN WHAT: RUN's metrics (every step's loss, every val_bpb) and final weights are
# identical to REF's.
same_run() {
  local ref=$1 run=$2 what=$3 final
  records "$ref/metrics.jsonl" >"$T/ref.rec"
  records "$run/metrics.jsonl" >"$T/run.rec"
  if ! diff <(grep -v ' val_bpb ' "$T/ref.rec") <(grep -v ' val_bpb ' "$T/run.rec") >"$T/rec.diff" 2>&1; then
    fail "$what: per-step losses differ from the uninterrupted run's ($(grep -c '^[<>]' "$T/rec.diff") lines; first: $(grep '^[<>]' "$T/rec.diff" | head -2 | tr '\n' ' '))"
  fi
  # Each val_bpb record equals the other run's of its step, and both have the last step's. An
  # intermediate step's record may be in one run only: an evaluation still queued when the next
  # is due is skipped (docs/training.md section 5, the eval node; how often depends on the
  # machine's load), and a kill just after an eval step's checkpoint loses its record (the check
  # "kill -9 just after the checkpoint of an eval step" covers that).
  local diffs f
  diffs=$(awk '$2 != "val_bpb" {next} FNR == NR {ref[$1] = $3; next}
    ($1 in ref) && ref[$1] != $3 {print "step " $1 ": uninterrupted " ref[$1] ", this run " $3}' \
    "$T/ref.rec" "$T/run.rec" | head -2 | tr '\n' ' ')
  [[ -z $diffs ]] || fail "$what: val_bpb records differ from the uninterrupted run's ($diffs)"
  for f in ref run; do
    diffs=$(grep ' val_bpb ' "$T/$f.rec" | cut -d' ' -f1 | uniq -d | head -2 | tr '\n' ' ')
    [[ -z $diffs ]] || fail "$what: the $f run has two val_bpb records of step $diffs"
    grep -q "^$STEPS val_bpb " "$T/$f.rec" || fail "$what: no val_bpb record of the last step $STEPS in the $f run"
  done
  final=checkpoints/$(ckpt_name "$STEPS")/tensors.bin
  if [[ ! -f $run/$final ]]; then
    fail "$what: no $final"
  elif ! cmp -s "$ref/$final" "$run/$final"; then
    fail "$what: $final differs from the uninterrupted run's ($(cmp "$ref/$final" "$run/$final" 2>&1 | head -1))"
  fi
}
# clean_checkpoints RUN WHAT: every directory under RUN/checkpoints is a step-NNNNNNNNN with a
# COMMIT (no .tmp-/.old- leftovers, no half-written checkpoint), or a damaged-step-NNNNNNNNN that
# a resume set aside.
clean_checkpoints() {
  local name
  [[ -d $1/checkpoints ]] || { fail "$2: no $1/checkpoints"; return 0; }
  while IFS= read -r name; do
    if [[ $name =~ ^damaged-step-[0-9]{9}$ ]]; then
      continue
    elif [[ ! $name =~ ^step-[0-9]{9}$ ]]; then
      fail "$2: leftover directory checkpoints/$name"
    elif [[ ! -f $1/checkpoints/$name/COMMIT ]]; then
      fail "$2: checkpoints/$name has no COMMIT"
    fi
  done < <(find "$1/checkpoints" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
}

# ---------------------------------------------------------------------------------------------
# Shared fixtures: the dataset and the reference run A (STEPS steps, uninterrupted).

STEPS=60
EVERY=20  # eval.every; checkpoint.every is 10
TINY=(--set model.bitbyte_lm.d_model=32 --set model.bitbyte_lm.n_layer=2 --set model.bitbyte_lm.n_head=2
  --set model.bitbyte_lm.context=32 --set data.seq_len=32 --set data.batch_size=4
  --set optim.warmup_steps=3 --set log_every=0 --set eval.max_bytes=4096 --threads 2)
CFG=("${TINY[@]}" --set "eval.every=$EVERY" --set checkpoint.every=10 --steps "$STEPS")

bb shard "$CORPUS" --jsonl-field text -o ds -q --threads 2
SHARD_RC=$RC SHARD_ERR=$(errmsg)
bb train --data ds -o A "${CFG[@]}"
A_RC=$RC A_ERR=$(errmsg)

t_reference() {
  begin "reference: the corpus shards and a ${STEPS}-step tiny run completes"
  [[ $SHARD_RC == 0 ]] || fail "shard exited $SHARD_RC ($SHARD_ERR)"
  [[ $A_RC == 0 ]] || fail "train exited $A_RC ($A_ERR)"
  local want
  want=$(seq -s ' ' 1 "$STEPS")
  [[ $(loss_steps A/metrics.jsonl) == "$want" ]] ||
    fail "metrics.jsonl loss steps are not 1..$STEPS: $(loss_steps A/metrics.jsonl | head -c 200)"
  # An evaluation at every EVERY steps; one still queued when the next is due is skipped, so
  # the intermediate ones depend on the machine's load, the last step's is always there.
  local evals due
  evals=$(grep -o '"step":[0-9]*,"val_bpb"' A/metrics.jsonl | tr -dc '0-9\n' | tr '\n' ' ')
  due=$(seq -s ' ' "$EVERY" "$EVERY" "$STEPS")
  python3 -c 'import sys; got, due = sys.argv[1].split(), sys.argv[2].split(); sys.exit(not (got and set(got) <= set(due) and got[-1] == due[-1] and len(got) == len(set(got))))' "$evals" "$due" ||
    fail "val_bpb records at steps '$evals': want each at most once, among '$due', the last among them"
  [[ -f A/checkpoints/$(ckpt_name "$STEPS")/COMMIT ]] || fail "no committed final checkpoint"
  for f in config.txtpb run.json metrics.jsonl; do [[ -s A/$f ]] || fail "no A/$f"; done
  clean_checkpoints A "reference run"
  end
}

# 1. kill -9 from outside, resume.
# kill_resume REF RUN [ARGS...]: train RUN (CFG and ARGS), kill -9 it up to 3 times and resume;
# its losses and final weights must be REF's (the same config, uninterrupted).
kill_resume() {
  local ref=$1 run=$2
  shift 2
  rm -rf "$run"
  local args=(train --data ds -o "$run" "${CFG[@]}" "$@") target=12 kills=0 at="" finished=0 last
  while ((target < STEPS)); do
    bg "${args[@]}"
    if wait_step "$run/metrics.jsonl" "$target" "$BG"; then kill -9 "$BG" 2>/dev/null || true; fi
    reap "$BG"
    last=$(last_step "$run/metrics.jsonl")
    if [[ $RC == 137 ]]; then
      kills=$((kills + 1)) at+=" $last"
    elif [[ $RC == 0 ]]; then
      finished=1
      break
    else
      fail "run exited $RC ($(errmsg "$T/bg.err"))"
      break
    fi
    args=(train --resume "$run" --threads 2)
    target=$((last + 20))
  done
  ((kills > 0)) || fail "the run finished before it could be killed"
  if ((!finished)) && [[ -z $ERRS ]]; then
    bb train --resume "$run" --threads 2
    want_rc 0 "final resume"
    want_err "resuming $run from" "final resume"
  fi
  same_run "$ref" "$run" "after $kills kills"
  clean_checkpoints "$run" "after the resume"
  echo "# killed at steps$at"
}

t_kill_resume() {
  begin "kill -9 during training (up to 3 times), resume: identical losses and final weights"
  kill_resume A K
  end
}

t_kill_resume8() {
  begin "kill -9 and resume with 8-bit AdamW moments and ternary QAT from step 10: identical losses and final weights"
  rm -rf A8
  local low=(--set optim.state_bits=8 --set model.qat.scheme=ternary --set model.qat.start_step=10)
  bb train --data ds -o A8 "${CFG[@]}" "${low[@]}"
  want_rc 0 "the uninterrupted run with 8-bit moments and QAT"
  local final
  final=A8/checkpoints/$(ckpt_name "$STEPS")
  grep -aq "optim/exp_avg8/" "$final/meta.pb" || fail "A8's checkpoint holds no 8-bit moments (optim/exp_avg8/...)"
  cmp -s "$final/tensors.bin" "A/checkpoints/$(ckpt_name "$STEPS")/tensors.bin" &&
    fail "8-bit moments trained exactly what float32 ones did"
  kill_resume A8 K8 "${low[@]}"
  bb train --resume A8 --steps $((STEPS + 10)) --set optim.state_bits=32 --threads 2
  want_rc 2 "resume changing optim.state_bits"
  want_err "state_bits" "resume changing optim.state_bits names the field"
  end
}

# 2. kill -9 inside the run's own file writes (checkpoint files, fsyncs, renames, pointers).
probe() {  # probe N: prints crash, done or "error RC"
  rm -rf kprobe
  bb_env BITBYTE_CRASH_AFTER_WRITES="$1" train --data ds -o kprobe "${CFG[@]}"
  case $RC in 137) echo crash ;; 0) echo "done" ;; *) echo "error $RC" ;; esac
}
t_crash_writes() {
  local total="" lo hi mid r
  begin "BITBYTE_CRASH_AFTER_WRITES: the number of mutating file operations of a run is found"
  lo=1 hi=256
  while r=$(probe "$hi") && [[ $r == crash ]] && ((hi < 1 << 20)); do lo=$hi hi=$((hi * 2)); done
  if [[ $r != "done" ]]; then
    fail "N=$hi: $r ($(errmsg))"
  else
    while ((hi - lo > 1)); do
      mid=$(((lo + hi) / 2))
      r=$(probe "$mid")
      if [[ $r == crash ]]; then lo=$mid; elif [[ $r == "done" ]]; then hi=$mid; else fail "N=$mid: $r" && break; fi
    done
    total=$lo
  fi
  ((${total:-0} > STEPS / 10 * 3)) || { fail "found ${total:-no} operations for $((STEPS / 10)) checkpoints"; total=""; }
  echo "# ${total:-?} mutating file operations in a ${STEPS}-step run"
  end
  [[ -n $total ]] || return 0

  begin "kill -9 at the N-th file operation, then --resume: identical losses and weights, no half checkpoint left"
  local ns=(3 5 7 12 20 33 $((total / 4)) $((total / 2)) $((3 * total / 4)) $((total - 2)) $((total - 1)) "$total") n
  local crashed="" completed=""
  for n in "${ns[@]}"; do
    rm -rf kw
    bb_env BITBYTE_CRASH_AFTER_WRITES="$n" train --data ds -o kw "${CFG[@]}"
    if [[ $RC == 0 ]]; then
      # The last few operations (pointer files) may come in another order from run to run.
      ((n >= total - 2)) || { fail "N=$n: exit 0, want 137 (killed)"; continue; }
      completed+=" $n"
    elif [[ $RC == 137 ]]; then
      crashed+=" $n"
    else
      fail "N=$n: exit $RC, want 137 ($(errmsg))"
      continue
    fi
    if [[ ! -f kw/config.txtpb ]]; then
      # Killed before the run directory got its config: not a run yet. --resume says so, and
      # the first command starts it afresh.
      bb train --resume kw --threads 2
      want_rc 2 "N=$n: --resume of a directory without config.txtpb"
      want_err "config.txtpb" "N=$n: --resume of a directory without config.txtpb"
      bb train --data ds -o kw "${CFG[@]}"
      want_rc 0 "N=$n: the first command again"
    else
      bb train --resume kw --threads 2
      [[ $RC == 0 ]] || { fail "N=$n: --resume kw exited $RC, want 0 ($(errmsg))"; continue; }
    fi
    same_run A kw "N=$n"
    clean_checkpoints kw "N=$n"
  done
  echo "# killed at N =$crashed${completed:+; completed at N =$completed}"
  end

  begin "kill -9 at the first file operation after the commit of an eval step's checkpoint, then --resume: identical"
  # The smallest N whose run leaves a committed checkpoint of step >= EVERY: the kill comes at
  # the first file operation after that checkpoint's rename (the update of `latest`).
  local want newest nc before after
  want=$(ckpt_name "$EVERY")
  lo=0 hi=$total
  while ((hi - lo > 1)); do
    mid=$(((lo + hi) / 2))
    probe "$mid" >/dev/null
    newest=$(find kprobe/checkpoints -mindepth 1 -maxdepth 1 -name 'step-*' -printf '%f\n' 2>/dev/null | sort | tail -1)
    if [[ -n $newest && ! $newest < $want ]]; then hi=$mid; else lo=$mid; fi
  done
  nc=$hi
  rm -rf kv
  bb_env BITBYTE_CRASH_AFTER_WRITES="$nc" train --data ds -o kv "${CFG[@]}"
  want_rc 137 "N=$nc"
  # This run's timing may differ from the probes' (the sink can skip a pending checkpoint), so
  # the checkpoint the resume starts from is whatever is newest in kv now.
  newest=$(find kv/checkpoints -mindepth 1 -maxdepth 1 -name 'step-*' -printf '%f\n' 2>/dev/null | sort | tail -1)
  [[ -n $newest && ! $newest < $want && -f kv/checkpoints/$newest/COMMIT ]] ||
    fail "N=$nc: newest checkpoint '$newest', want a committed one at or after $want"
  local s=$((10#${newest#step-}))
  before=no after=no
  grep -q "\"step\":$s,\"val_bpb\"" kv/metrics.jsonl && before=yes
  bb train --resume kv --threads 2
  want_rc 0 "N=$nc: --resume"
  want_err "(step $s)" "N=$nc: --resume from $newest"
  same_run A kv "N=$nc"
  clean_checkpoints kv "N=$nc"
  grep -q "\"step\":$s,\"val_bpb\"" kv/metrics.jsonl && after=yes
  # An evaluation may finish after its step's checkpoint is committed; a kill in between loses
  # the record, and the resume evaluates that step again (docs/training.md section 8).
  if ((s % EVERY == 0)) && [[ $after != yes ]]; then fail "N=$nc: no val_bpb record for step $s after the resume"; fi
  echo "# killed at N = $nc; val_bpb of step $s in metrics.jsonl at the kill: $before, after the resume: $after"
  end
}

# 3. SIGTERM and SIGINT.
t_signals() {
  local sig stop want
  for sig in TERM INT; do
    begin "SIG$sig: exit 0 with a checkpoint at the last step in metrics.jsonl; --resume --steps continues"
    rm -rf "s$sig"
    bg train --data ds -o "s$sig" "${TINY[@]}" --set "eval.every=$EVERY" --set checkpoint.every=10 --steps 2000
    if ! wait_step "s$sig/metrics.jsonl" 15 "$BG"; then
      reap "$BG"
      fail "the run ended (exit $RC) before step 15 ($(errmsg "$T/bg.err"))"
      end
      continue
    fi
    kill -s "$sig" "$BG"
    reap "$BG"
    [[ $RC == 0 ]] || fail "exit $RC after SIG$sig, want 0 ($(errmsg "$T/bg.err"))"
    stop=$(loss_steps "s$sig/metrics.jsonl" | awk '{print $NF}')
    if [[ ! $stop =~ ^[0-9]+$ ]] || ((stop < 15 || stop >= 2000)); then
      fail "last step in metrics.jsonl: '$stop'"
      end
      continue
    fi
    grep -qF "stopped at step $stop" "$T/bg.err" || fail "stderr lacks 'stopped at step $stop' ($(errmsg "$T/bg.err"))"
    [[ -f s$sig/checkpoints/$(ckpt_name "$stop")/COMMIT ]] ||
      fail "no committed checkpoint $(ckpt_name "$stop") (have: $(ls "s$sig/checkpoints" | tr '\n' ' '))"
    clean_checkpoints "s$sig" "after SIG$sig"
    bb train --resume "s$sig" --threads 2 --steps $((stop + 5))
    want_rc 0 "--resume --steps $((stop + 5))"
    want_err "(step $stop)" "--resume resumes from the signal's checkpoint"
    want=$(seq -s ' ' 1 $((stop + 5)))
    [[ $(loss_steps "s$sig/metrics.jsonl") == "$want" ]] ||
      fail "after the resume, metrics loss steps are not 1..$((stop + 5)): ...$(loss_steps "s$sig/metrics.jsonl" | tail -c 80)"
    [[ -f s$sig/checkpoints/$(ckpt_name $((stop + 5)))/COMMIT ]] || fail "no checkpoint $(ckpt_name $((stop + 5))) after the resume"
    echo "# SIG$sig stopped the run at step $stop"
    end
  done
}

# 4. Bad input.
t_bad_input() {
  begin "config file with an unknown field: exit 2 naming file:line:col and the field"
  printf 'data {\n  seq_len: 32\n  batchsize: 4\n}\n' >typo.txtpb
  bb train --data ds -o bad1 --config typo.txtpb --threads 2
  want_rc 2 "train --config typo.txtpb"
  want_err_re 'typo\.txtpb:3:[0-9]+' "train --config typo.txtpb"
  want_err "batchsize" "train --config typo.txtpb"
  [[ ! -e bad1 ]] || fail "a run directory was created"
  end

  begin "config file with a wrongly typed value: exit 2 naming file:line:col"
  printf '# a comment\ndata { seq_len: "abc" }\n' >type.txtpb
  bb train --data ds -o bad2 --config type.txtpb --threads 2
  want_rc 2 "train --config type.txtpb"
  want_err_re 'type\.txtpb:2:[0-9]+' "train --config type.txtpb"
  [[ ! -e bad2 ]] || fail "a run directory was created"
  end

  begin "--set of an unknown field: exit 2 naming it"
  bb train --data ds -o bad3 "${TINY[@]}" --set optim.lrr=1
  want_rc 2 "--set optim.lrr=1"
  want_err "lrr" "--set optim.lrr=1"
  [[ ! -e bad3 ]] || fail "a run directory was created"
  bb train --data ds -o bad3 "${TINY[@]}" --set data.seq_len=abc
  want_rc 2 "--set data.seq_len=abc"
  want_err "seq_len" "--set data.seq_len=abc"
  end

  begin "data.seq_len above the model context: exit 2 naming data.seq_len"
  bb train --data ds -o bad4 "${TINY[@]}" --set data.seq_len=64
  want_rc 2 "--set data.seq_len=64 with context 32"
  want_err "data.seq_len" "--set data.seq_len=64"
  [[ ! -e bad4 ]] || fail "a run directory was created"
  end

  begin "--model nosuch: exit 2 naming it and the known models"
  bb train --data ds -o bad5 "${TINY[@]}" --model nosuch
  want_rc 2 "--model nosuch"
  want_err "nosuch" "--model nosuch"
  want_err "bitbyte_lm" "--model nosuch (known models)"
  [[ ! -e bad5 ]] || fail "a run directory was created"
  end

  begin "--resume with an incompatible change: exit 2 naming the field, run untouched"
  rm -rf R
  cp -a A R
  tree_sums R >R.before
  bb train --resume R --threads 2 --set model.bitbyte_lm.d_model=64
  want_rc 2 "--resume R --set model.bitbyte_lm.d_model=64"
  want_err "model.bitbyte_lm.d_model" "--resume R --set model.bitbyte_lm.d_model=64"
  bb train --resume R --threads 2 --set optim.lr=0.01
  want_rc 2 "--resume R --set optim.lr=0.01"
  want_err "optim.lr" "--resume R --set optim.lr=0.01"
  tree_sums R >R.after
  cmp -s R.before R.after || fail "the run directory changed: $(diff R.before R.after | head -2 | tr '\n' ' ')"
  end

  begin "--out on an existing run without --resume: refused, run untouched"
  bb train --data ds -o R "${CFG[@]}"
  want_fail "train -o R (an existing run)"
  want_err "--resume" "train -o R (an existing run)"
  tree_sums R >R.after
  cmp -s R.before R.after || fail "the run directory changed: $(diff R.before R.after | head -2 | tr '\n' ' ')"
  end

  begin "config values out of bounds: exit 2 naming the field, before any work (issue 14 D7, D8, D10, --set)"
  local sets
  # D7: batch x accumulation overflowed int32 ("loss is nan at step 1"); a huge d_model ended in
  # a c10 allocation error with stack frames; D8: eval.max_bytes=1 logged val_bpb 0.0; a value
  # with more text format set a second field.
  for sets in "data.batch_size=65536 data.grad_accum=65536:data.grad_accum" \
    "model.bitbyte_lm.d_model=65536 model.bitbyte_lm.n_head=1:model.bitbyte_lm" \
    "eval.max_bytes=1:eval.max_bytes" "optim.lr=nan:optim.lr" "optim.grad_clip=inf:optim.grad_clip" \
    "optim.lr=0.001 } data { batch_size: 2:optim.lr" "data.seq_len=2147483648:data.seq_len"; do
    local field=${sets##*:} list=${sets%:*} a=()
    if [[ $list == *"}"* ]]; then a=(--set "$list"); else for s in $list; do a+=(--set "$s"); done; fi
    rm -rf bad7
    bb train --data ds -o bad7 "${TINY[@]}" "${a[@]}" --steps 5
    want_rc 2 "train ${a[*]}"
    want_err "config field $field" "train ${a[*]}"
    grep -qE 'frame #|c10::|Exception raised from' "$T/err" && fail "train ${a[*]}: C++ frames: $(errmsg)"
    [[ ! -e bad7 ]] || fail "train ${a[*]}: a run directory was created"
  done
  bb train --data ds -o bad7 "${TINY[@]}" --set model.bitbyte_lm.d_model=65536 --set model.bitbyte_lm.n_head=1
  want_err "GiB" "a model larger than memory: the error says how much it needs"
  for sets in "--steps 1000000000" "--steps 0" "--threads 1025" "--threads -1"; do
    # shellcheck disable=SC2086
    bb train --data ds -o bad7 "${TINY[@]}" $sets
    want_rc 2 "train $sets"
    want_err "${sets%% *}" "train $sets"
  done
  # D10: a directory given as --config was read as an empty config.
  bb train --data ds -o bad7 --config "$T" --threads 2
  want_rc 2 "train --config DIRECTORY"
  want_err "$T" "train --config DIRECTORY"
  want_err "directory" "train --config DIRECTORY"
  [[ ! -e bad7 ]] || fail "a run directory was created"
  end

  begin "a dataset whose validation split has under 2 bytes: train and eval fail naming the validation split"
  # --val-fraction 0 cannot give that (shard then cuts a tail of the last document into val);
  # a 1-byte document routed to val (by its hash) next to a big one routed to train can.
  bb_to ds.train cat ds --split train
  mkdir -p nv
  head -c 20000 ds.train >nv/big.txt
  local c found=""
  # ("b" is such a document today; the others are tried should hashing ever change.)
  for c in b d e g h j n o q r s u w x z a c f i k l m p t v y A B C D E F G H; do
    printf '%s' "$c" >nv/one.txt
    rm -rf dsnv
    bb shard nv -o dsnv --val-fraction 0.5 -q --threads 2
    [[ $RC == 0 ]] || continue
    bb_to dsnv.json inspect dsnv --json
    if [[ $(json_get dsnv.json 'j["splits"]["val"]["bytes"]') == 1 ]]; then
      found=$c
      break
    fi
  done
  if [[ -z $found ]]; then
    fail "could not build a dataset with a 1-byte validation split"
  else
    bb train --data dsnv -o bad6 "${TINY[@]}" --steps 5
    want_fail "train on a dataset with a 1-byte validation split"
    want_err "validation split" "train"
    bb eval --checkpoint A --data dsnv --threads 2
    want_fail "eval --data on a dataset with a 1-byte validation split"
    want_err "validation split" "eval"
  fi
  end

  begin "NaN loss at step 25: exit 1 naming nan, the step and the last good checkpoint; resume finishes identically"
  rm -rf nan
  bb_env BITBYTE_TEST_NAN_AT_STEP=25 train --data ds -o nan "${CFG[@]}"
  want_rc 1 "train with a NaN at step 25"
  want_err "nan" "train with a NaN at step 25"
  want_err "step 25" "train with a NaN at step 25"
  want_err "$(ckpt_name 20)" "train with a NaN at step 25 (last good checkpoint)"
  [[ $(find nan/checkpoints -mindepth 1 -maxdepth 1 -name 'step-*' -printf '%f\n' 2>/dev/null | sort | tr '\n' ' ') == "$(ckpt_name 10) $(ckpt_name 20) " ]] ||
    fail "checkpoints after the NaN: $(ls -A nan/checkpoints 2>/dev/null | tr '\n' ' '), want $(ckpt_name 10) and $(ckpt_name 20)"
  [[ $(loss_steps nan/metrics.jsonl) == "$(seq -s ' ' 1 24)" ]] ||
    fail "loss records after the NaN: $(loss_steps nan/metrics.jsonl | tail -c 60), want steps 1..24"
  local s
  for s in 10 20; do
    bb eval --checkpoint "nan/checkpoints/$(ckpt_name "$s")" --data ds --max-bytes 4096 --threads 2 --json
    want_rc 0 "eval of $(ckpt_name "$s") after the NaN"
  done
  bb train --resume nan --threads 2
  want_rc 0 "--resume after the NaN (hook unset)"
  same_run A nan "resumed after the NaN"
  end
}

# 5. Damaged checkpoints.
t_damage() {
  local last prev
  # The sink may skip a checkpoint on a busy machine (a newer snapshot replaces a pending one):
  # the fallback is the newest checkpoint A really has below the last.
  last=$(ckpt_name "$STEPS")
  prev=$(find A/checkpoints -mindepth 1 -maxdepth 1 -name 'step-*' -printf '%f\n' | sort | tail -2 | head -1)

  begin "one flipped byte in the newest tensors.bin: eval exits 3 naming it, --resume warns, falls back, finishes identically"
  rm -rf D1
  cp -a A D1
  flip_byte "D1/checkpoints/$last/tensors.bin" $(($(wc -c <"D1/checkpoints/$last/tensors.bin") / 2))
  bb eval --checkpoint "D1/checkpoints/$last" --data ds --max-bytes 4096 --threads 2
  want_rc 3 "eval --checkpoint (damaged)"
  want_err "tensors.bin" "eval --checkpoint (damaged)"
  bb generate --checkpoint "D1/checkpoints/$last" --prompt x -n 4 --threads 2
  want_rc 3 "generate --checkpoint (damaged)"
  bb eval --checkpoint D1 --data ds --max-bytes 4096 --threads 2
  want_rc 0 "eval --checkpoint RUN (newest damaged)"
  want_err "$last" "eval --checkpoint RUN warns about the damaged one"
  bb train --resume D1 --threads 2
  want_rc 0 "--resume"
  want_err "D1/checkpoints/$last" "--resume warns about the damaged checkpoint"
  want_err "resuming D1 from D1/checkpoints/$prev" "--resume falls back to the previous checkpoint"
  [[ -f D1/checkpoints/damaged-$last/tensors.bin ]] || fail "the damaged checkpoint was not set aside as damaged-$last"
  same_run A D1 "resumed past a damaged tensors.bin"
  clean_checkpoints D1 "after the resume"
  end

  begin "a truncated meta.pb in the newest checkpoint: eval exits 3 naming it, --resume falls back, finishes identically"
  rm -rf D2
  cp -a A D2
  truncate -s $(($(wc -c <"D2/checkpoints/$last/meta.pb") / 2)) "D2/checkpoints/$last/meta.pb"
  bb eval --checkpoint "D2/checkpoints/$last" --data ds --max-bytes 4096 --threads 2
  want_rc 3 "eval --checkpoint (truncated meta.pb)"
  want_err "meta.pb" "eval --checkpoint (truncated meta.pb)"
  bb train --resume D2 --threads 2
  want_rc 0 "--resume"
  want_err "D2/checkpoints/$last" "--resume warns about the damaged checkpoint"
  want_err "resuming D2 from D2/checkpoints/$prev" "--resume falls back to the previous checkpoint"
  [[ -f D2/checkpoints/damaged-$last/meta.pb ]] || fail "the damaged checkpoint was not set aside as damaged-$last"
  same_run A D2 "resumed past a truncated meta.pb"
  clean_checkpoints D2 "after the resume"
  end

  begin "every checkpoint damaged: --resume warns about each, starts from step 0, finishes identically"
  rm -rf D3
  cp -a A D3
  local d n=0
  for d in D3/checkpoints/step-*; do
    flip_byte "$d/tensors.bin" 100
    n=$((n + 1))
  done
  bb eval --checkpoint D3 --data ds --max-bytes 4096 --threads 2
  want_rc 3 "eval --checkpoint RUN (all damaged)"
  bb train --resume D3 --threads 2
  want_rc 0 "--resume"
  [[ $(grep -c 'is unusable' "$T/err") == "$n" ]] || fail "want $n warnings, got $(grep -c 'is unusable' "$T/err") ($(errmsg))"
  want_err "starting from step 0" "--resume"
  same_run A D3 "restarted from step 0"
  clean_checkpoints D3 "after the resume"
  end
}

# 6. eval.
t_eval() {
  begin "eval --json on the validation split: bytes = split size - 1, same bpb twice"
  local val bpb1 bpb2
  bb_to ds.val cat ds --split val
  val=$(wc -c <ds.val)
  bb_to ev1.json eval --checkpoint A --data ds --json --threads 2
  want_rc 0 "eval --data ds --json"
  python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert set(j) >= {"bpb", "bytes"}, j' ev1.json 2>/dev/null ||
    fail "not JSON with keys bpb and bytes: $(head -c 200 ev1.json)"
  [[ $(json_get ev1.json 'j["bytes"]') == $((val - 1)) ]] || fail "bytes $(json_get ev1.json 'j["bytes"]'), want $((val - 1)) (val split $val bytes)"
  bb_to ev2.json eval --checkpoint "A/checkpoints/$(ckpt_name "$STEPS")" --data ds --json --threads 2
  want_rc 0 "eval of the final checkpoint directory"
  bpb1=$(json_get ev1.json 'repr(j["bpb"])') bpb2=$(json_get ev2.json 'repr(j["bpb"])')
  [[ $bpb1 == "$bpb2" ]] || fail "two evals of the same checkpoint: bpb $bpb1 vs $bpb2"
  python3 -c 'import math, sys; v = float(sys.argv[1]); assert 0 < v < 9 and math.isfinite(v)' "$bpb1" 2>/dev/null ||
    fail "bpb $bpb1 is not a plausible figure"
  end

  begin "eval --max-bytes 4096 equals the val_bpb the run logged for that checkpoint"
  local s got want
  for s in $((STEPS - 2 * EVERY)) "$STEPS"; do
    [[ -d A/checkpoints/$(ckpt_name "$s") ]] || continue
    bb_to evm.json eval --checkpoint "A/checkpoints/$(ckpt_name "$s")" --data ds --max-bytes 4096 --json --threads 2
    want_rc 0 "eval --max-bytes 4096 of $(ckpt_name "$s")"
    [[ $(json_get evm.json 'j["bytes"]') == 4095 ]] || fail "bytes $(json_get evm.json 'j["bytes"]'), want 4095"
    got=$(json_get evm.json 'repr(j["bpb"])')
    want=$(grep "\"step\":$s,\"val_bpb\"" A/metrics.jsonl | sed -n 's/.*"val_bpb":\([^,}]*\).*/\1/p' | head -1)
    [[ -n $want || $s == "$STEPS" ]] || continue  # skipped by the run (see t_reference)
    [[ -n $want && $(python3 -c 'import sys; print(float(sys.argv[1]) == float(sys.argv[2]))' "$got" "$want" 2>&1) == True ]] ||
      fail "step $s: eval bpb $got, metrics.jsonl val_bpb '${want}'"
  done
  end

  begin "an evaluation skipped for a newer one says so: each due step has a val_bpb record or a skip line"
  # Evaluated at every step on more bytes than a tiny step takes: most are skipped, which ones
  # depends on timing; none may go missing silently.
  rm -rf es
  bb train --data ds -o es "${TINY[@]}" --set eval.every=1 --set eval.max_bytes=32768 --steps 30
  want_rc 0 "train with eval.every=1"
  local evals skips
  evals=$(grep -o '"step":[0-9]*,"val_bpb"' es/metrics.jsonl | tr -dc '0-9\n' | tr '\n' ' ')
  skips=$(sed -n 's/^eval  step \([0-9]*\)  skipped: step [0-9]* was due before .*/\1/p' "$T/err" | tr '\n' ' ')
  python3 -c '
import sys
ev, sk = [int(x) for x in sys.argv[1].split()], [int(x) for x in sys.argv[2].split()]
ok = sorted(ev + sk) == list(range(1, 31)) and ev and ev[-1] == 30
sys.exit(not ok)' "$evals" "$skips" || fail "evaluated steps '$evals' and skipped '$skips' are not 1..30 once each, ending with 30"
  echo "# eval.every=1 for 30 steps: $(wc -w <<<"$evals") evaluated, $(wc -w <<<"$skips") skipped (and said so)"
  end

  begin "eval on files: each file is a stream, bytes = sum of (size - 1)"
  head -c 3000 ds.val >f1
  tail -c 1500 ds.val >f2
  bb_to evf.json eval --checkpoint A --json --threads 2 f1 f2
  want_rc 0 "eval f1 f2"
  [[ $(json_get evf.json 'j["bytes"]') == $((2999 + 1499)) ]] || fail "bytes $(json_get evf.json 'j["bytes"]'), want $((2999 + 1499))"
  bb_to evf1.json eval --checkpoint A --json --threads 2 f1
  [[ $(json_get evf1.json 'j["bytes"]') == 2999 ]] || fail "f1 alone: bytes $(json_get evf1.json 'j["bytes"]'), want 2999"
  bb_to evfm.json eval --checkpoint A --json --threads 2 --max-bytes 1000 f1 f2
  [[ $(json_get evfm.json 'j["bytes"]') == 1998 ]] || fail "--max-bytes 1000 f1 f2: bytes $(json_get evfm.json 'j["bytes"]'), want 1998"
  end

  begin "eval with both --data and files, or neither: exit 2"
  bb eval --checkpoint A --data ds --threads 2 f1
  want_rc 2 "eval --data ds f1"
  bb eval --checkpoint A --threads 2
  want_rc 2 "eval (no input)"
  bb eval --checkpoint nosuch-dir --data ds --threads 2
  want_fail "eval --checkpoint nosuch-dir"
  want_err "nosuch-dir" "eval --checkpoint nosuch-dir"
  end

  begin "eval and generate --quantize int8: the same bytes, a bpb near float32's, other schemes and devices refused"
  bb_to evq.json eval --checkpoint A --data ds --json --threads 2 --quantize int8
  want_rc 0 "eval --quantize int8"
  [[ $(json_get evq.json 'j["bytes"]') == $(json_get ev1.json 'j["bytes"]') ]] || fail "int8 eval predicted other bytes"
  python3 -c 'import sys; q, f = float(sys.argv[1]), float(sys.argv[2]); assert q != f and abs(q - f) < 0.05 * f, (q, f)' \
    "$(json_get evq.json 'repr(j["bpb"])')" "$(json_get ev1.json 'repr(j["bpb"])')" 2>/dev/null ||
    fail "int8 bpb $(json_get evq.json 'j["bpb"]') against float32 $(json_get ev1.json 'j["bpb"]'): want different but within 5%"
  bb_to gq.txt generate --checkpoint A --prompt "Call me " -n 32 --temperature 0 --quantize int8 --threads 2
  want_rc 0 "generate --quantize int8"
  [[ $(head -c 8 gq.txt) == "Call me " && $(wc -c <gq.txt) == 41 ]] || fail "generate --quantize int8: $(wc -c <gq.txt) bytes, want prompt + 32 + newline"
  bb eval --checkpoint A --data ds --threads 2 --quantize int3
  want_rc 2 "eval --quantize int3"
  bb eval --checkpoint A --data ds --threads 2 --quantize int8 --device cuda
  want_rc 2 "eval --quantize int8 --device cuda"
  want_err "CPU" "eval --quantize int8 --device cuda"
  end
}

t_quantize() {
  local last qd q4
  last="A/checkpoints/$(ckpt_name "$STEPS")"
  begin "quantize: an int8 checkpoint of a fraction of the size that eval and generate take like any other"
  rm -rf Q
  bb quantize --checkpoint A -o Q --data ds --threads 2
  want_rc 0 "quantize"
  cp "$T/out" quantize.out
  want_out "int8, 8 Linear layers" "quantize: the reference run's 2 blocks x 4 Linear layers (the head kept)"
  qd=$(find Q -mindepth 1 -maxdepth 1 -name 'step-*' | head -1)
  [[ -n $qd && -f $qd/COMMIT ]] || fail "quantize wrote no checkpoint in Q: $(ls Q 2>&1)"
  python3 -c 'import os, sys; q, a = (os.path.getsize(p) for p in sys.argv[1:]); assert q <= 0.3 * a, (q, a)' \
    "$qd/tensors.bin" "$last/tensors.bin" 2>/dev/null || fail "quantized tensors.bin is not <= 0.3x the source's"
  bb_to evq_ckpt.json eval --checkpoint Q --data ds --json --threads 2
  want_rc 0 "eval of the quantized checkpoint"
  bb_to evq_mem.json eval --checkpoint "$last" --data ds --json --threads 2 --quantize int8
  [[ $(json_get evq_ckpt.json 'repr(j["bpb"])') == "$(json_get evq_mem.json 'repr(j["bpb"])')" ]] ||
    fail "the quantized checkpoint's bpb $(json_get evq_ckpt.json 'j["bpb"]') is not eval --quantize int8's $(json_get evq_mem.json 'j["bpb"]')"
  # The graph's two evaluations (side by side) are those of eval on the source and on what it wrote.
  bb_to ev_src.json eval --checkpoint "$last" --data ds --json --threads 2
  python3 - quantize.out ev_src.json evq_ckpt.json >chk_q <<'PY' || true
import json, re, sys
m = re.search(r"val bpb over (\d+) bytes: float32 ([0-9.]+), int8 ([0-9.]+)", open(sys.argv[1]).read())
ref, q = (json.load(open(p)) for p in sys.argv[2:])
if not m:
    print("quantize --data printed no evaluation")
elif int(m.group(1)) != ref["bytes"] or m.group(2) != "%.6f" % ref["bpb"] or m.group(3) != "%.6f" % q["bpb"]:
    print("quantize: %s; eval: float32 %.6f, int8 %.6f over %d bytes" % (m.group(0), ref["bpb"], q["bpb"], ref["bytes"]))
PY
  [[ ! -s chk_q ]] || fail "$(cat chk_q)"
  bb_to gq_ckpt.txt generate --checkpoint Q --prompt "Call me " -n 24 --temperature 0 --threads 2
  want_rc 0 "generate from the quantized checkpoint"
  bb_to gq_mem.txt generate --checkpoint "$last" --prompt "Call me " -n 24 --temperature 0 --threads 2 --quantize int8
  cmp -s gq_ckpt.txt gq_mem.txt || fail "generate: the quantized checkpoint and --quantize int8 made different bytes"
  end

  begin "quantize: refusals (already quantized, an -o with checkpoints, training from it, damage)"
  bb eval --checkpoint Q --data ds --threads 2 --quantize int8
  want_rc 2 "eval --quantize int8 of a quantized checkpoint"
  want_err "already" "eval --quantize int8 of a quantized checkpoint"
  bb quantize --checkpoint Q -o Q2 --threads 2
  want_rc 2 "quantize of a quantized checkpoint"
  bb quantize --checkpoint A -o Q --threads 2
  want_rc 2 "quantize into a directory with checkpoints"
  rm -rf RQ
  cp -a A RQ
  rm -rf RQ/checkpoints/step-* RQ/checkpoints/latest RQ/checkpoints/best
  cp -a "$qd" RQ/checkpoints/
  bb train --resume RQ --threads 2
  want_rc 2 "train --resume from a quantized checkpoint"
  want_err "quantized" "train --resume from a quantized checkpoint"
  rm -rf QD
  cp -a Q QD
  flip_byte "QD/$(basename "$qd")/tensors.bin" 100
  bb eval --checkpoint "QD/$(basename "$qd")" --data ds --threads 2
  want_rc 3 "eval of a damaged quantized checkpoint"
  want_err "tensors.bin" "eval of a damaged quantized checkpoint"
  end

  begin "quantize --activations static: a calibrate node, scales stored, eval of the checkpoint equals the graph's"
  rm -rf QS
  bb quantize --checkpoint A -o QS --data ds --activations static --calib-bytes 2048 --threads 2
  want_rc 0 "quantize --activations static"
  want_out "calibrated static activation scales on" "quantize --activations static reports its calibration"
  cp "$T/out" quantize_static.out
  bb_to evqs.json eval --checkpoint QS --data ds --json --threads 2
  want_rc 0 "eval of the static int8 checkpoint"
  python3 - quantize_static.out evqs.json evq_ckpt.json >chk_qs <<'PY' || true
import json, re, sys
m = re.search(r"int8 ([0-9.]+) \(", open(sys.argv[1]).read())
st, dyn = (json.load(open(p)) for p in sys.argv[2:])
if not m or m.group(1) != "%.6f" % st["bpb"]:
    print("quantize --activations static printed %s, eval of QS %.6f" % (m.group(0) if m else "no int8 bpb", st["bpb"]))
elif st["bpb"] == dyn["bpb"]:
    print("static and dynamic activations gave the same bpb %r: the scales were not used" % st["bpb"])
PY
  [[ ! -s chk_qs ]] || fail "$(cat chk_qs)"
  bb quantize --checkpoint A -o QS2 --activations static --threads 2
  want_rc 2 "quantize --activations static without --data"
  bb quantize --checkpoint A -o QS2 --data ds --activations static --calib-bytes 3 --threads 2
  want_rc 2 "quantize --calib-bytes 3 (less than one window)"
  want_err "calibration window" "quantize --calib-bytes 3 (less than one window)"
  [[ ! -e QS2 ]] || fail "a refused quantize made QS2"
  bb_to gqs.json graph quantize --checkpoint A -o QG --data ds --activations static --format json
  [[ $(json_get gqs.json '" ".join(sorted(e["from"] + ">" + e["to"] for e in j["graphs"][0]["edges"]))') == "calibrate>quantize load>calibrate load>eval-reference quantize>eval-int8 quantize>write" ]] ||
    fail "graph quantize --activations static edges: $(json_get gqs.json '[(e["from"], e["to"]) for e in j["graphs"][0]["edges"]]')"
  end

  begin "quantize --scheme int4: GPTQ (a calibrate node) and round-to-nearest, smaller than int8; eval and generate take it"
  rm -rf Q4 Q4N
  bb quantize --checkpoint A -o Q4 --data ds --scheme int4 --group-size 16 --calib-bytes 4096 --threads 2
  want_rc 0 "quantize --scheme int4"
  want_out "calibrated GPTQ Hessians on" "quantize int4 reports its calibration"
  cp "$T/out" quantize4.out
  bb quantize --checkpoint A -o Q4N --data ds --scheme int4 --group-size 16 --rounding nearest --threads 2
  want_rc 0 "quantize --scheme int4 --rounding nearest"
  cp "$T/out" quantize4n.out
  q4=$(find Q4 -mindepth 1 -maxdepth 1 -name 'step-*' | head -1)
  python3 -c 'import os, sys; a, b = (os.path.getsize(p) for p in sys.argv[1:]); assert a < b, (a, b)' \
    "$q4/tensors.bin" "$qd/tensors.bin" 2>/dev/null || fail "the int4 tensors.bin is not smaller than the int8 one"
  bb_to evq4.json eval --checkpoint Q4 --data ds --json --threads 2
  want_rc 0 "eval of the int4 checkpoint"
  bb_to evq4n.json eval --checkpoint Q4N --data ds --json --threads 2
  python3 - quantize4.out evq4.json quantize4n.out evq4n.json >chk_q4 <<'PY' || true
import json, re, sys
for out, ev in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    m = re.search(r"int4 ([0-9.]+) \(", open(out).read())
    e = json.load(open(ev))
    if not m or m.group(1) != "%.6f" % e["bpb"]:
        print("%s printed %s, eval of its checkpoint %.6f" % (out, m.group(0) if m else "no int4 bpb", e["bpb"]))
if json.load(open(sys.argv[2]))["bpb"] == json.load(open(sys.argv[4]))["bpb"]:
    print("GPTQ and round-to-nearest gave the same bpb: the Hessians were not used")
PY
  [[ ! -s chk_q4 ]] || fail "$(cat chk_q4)"
  bb_to gq4.txt generate --checkpoint Q4N --prompt "Call me " -n 24 --temperature 0 --threads 2
  want_rc 0 "generate from the int4 checkpoint"
  bb_to gq4_mem.txt generate --checkpoint "$last" --prompt "Call me " -n 24 --temperature 0 --threads 2 --quantize int4
  want_rc 0 "generate --quantize int4"
  bb_to ev_bf16.json eval --checkpoint "$last" --data ds --json --threads 2 --precision bf16
  want_rc 0 "eval --precision bf16"
  python3 -c 'import json, sys; a, b = (json.load(open(p))["bpb"] for p in sys.argv[1:]); assert a != b and abs(a - b) < 0.02 * b, (a, b)' \
    ev_bf16.json ev_src.json 2>/dev/null || fail "eval --precision bf16: bpb $(json_get ev_bf16.json 'j["bpb"]') not a slightly different one from float32's $(json_get ev_src.json 'j["bpb"]')"
  bb eval --checkpoint "$last" --data ds --threads 2 --precision fp16
  want_rc 2 "eval --precision fp16"
  bb quantize --checkpoint A -o Q4X --scheme int4 --threads 2
  want_rc 2 "quantize int4 (gptq) without --data"
  want_err "rounding nearest" "quantize int4 (gptq) without --data"
  bb quantize --checkpoint A -o Q4X --data ds --scheme int4 --activations static --threads 2
  want_rc 2 "quantize int4 --activations static"
  bb quantize --checkpoint A -o Q4X --data ds --scheme int4 --group-size 7 --threads 2
  want_rc 2 "quantize int4 --group-size 7"
  [[ ! -e Q4X ]] || fail "a refused quantize made Q4X"
  bb_to gq4.json graph quantize --checkpoint A -o QG --data ds --scheme int4 --format json
  [[ $(json_get gq4.json '" ".join(sorted(e["from"] + ">" + e["to"] for e in j["graphs"][0]["edges"]))') == "calibrate>quantize load>calibrate load>eval-reference quantize>eval-int4 quantize>write" ]] ||
    fail "graph quantize --scheme int4 edges: $(json_get gq4.json '[(e["from"], e["to"]) for e in j["graphs"][0]["edges"]]')"
  end

  begin "graph quantize: load -> quantize -> write, and with --data the two evaluations, without running"
  bb_to gq.json graph quantize --checkpoint A -o QG --data ds --format json
  want_rc 0 "graph quantize --data"
  [[ $(json_get gq.json '" ".join(sorted(n["name"] for n in j["graphs"][0]["nodes"]))') == "eval-int8 eval-reference load quantize write" ]] ||
    fail "graph quantize --data nodes: $(json_get gq.json '[n["name"] for n in j["graphs"][0]["nodes"]]')"
  [[ $(json_get gq.json '" ".join(sorted(e["from"] + ">" + e["to"] for e in j["graphs"][0]["edges"]))') == "load>eval-reference load>quantize quantize>eval-int8 quantize>write" ]] ||
    fail "graph quantize --data edges: $(json_get gq.json '[(e["from"], e["to"]) for e in j["graphs"][0]["edges"]]')"
  bb_to gq0.json graph quantize --checkpoint A -o QG --format json
  [[ $(json_get gq0.json '" ".join(sorted(n["name"] for n in j["graphs"][0]["nodes"]))') == "load quantize write" ]] ||
    fail "graph quantize without --data: $(json_get gq0.json '[n["name"] for n in j["graphs"][0]["nodes"]]')"
  [[ ! -e QG ]] || fail "graph quantize wrote QG"
  end

  begin "quantize --from-qat: int4 and ternary QAT runs export with their bpb kept; a run without QAT refused"
  rm -rf QAT4 QAT4Q QATT QATTQ QATT_channel QATT_tensor
  bb train --data ds -o QAT4 "${TINY[@]}" --steps 30 --set model.qat.scheme=int4 --set model.qat.group=8
  want_rc 0 "train with int4 QAT"
  bb quantize --checkpoint QAT4 -o QAT4Q --data ds --from-qat --threads 2
  want_rc 0 "quantize --from-qat"
  want_out "int4" "quantize --from-qat of an int4 QAT run writes int4"
  bb_to qat_ref.json eval --checkpoint QAT4 --data ds --json --threads 2
  bb_to qat_q.json eval --checkpoint QAT4Q --data ds --json --threads 2
  want_rc 0 "eval of the exported checkpoint"
  # The same quantized values (part 1's int4 weights and int8 rows), computed on integers instead
  # of in float32: equal up to float rounding.
  python3 -c 'import json, sys; a, b = (json.load(open(p))["bpb"] for p in sys.argv[1:]); sys.exit(abs(a - b) > 1e-4 * a)' \
    qat_ref.json qat_q.json || fail "QAT bpb $(json_get qat_ref.json 'j["bpb"]') but the exported int4 checkpoint's $(json_get qat_q.json 'j["bpb"]')"
  bb quantize --checkpoint A -o QATN --from-qat --threads 2
  want_rc 2 "quantize --from-qat of a run trained without QAT"
  want_err "not trained quantization-aware" "quantize --from-qat of a run trained without QAT"
  # ternary: packed in 2 bits, evaluated and generated from on its kernels. The QAT forward runs on
  # the export's integers (qat::TernaryLinear): the same bpb to the last digit.
  bb train --data ds -o QATT "${TINY[@]}" --steps 20 --set model.qat.scheme=ternary --set model.qat.ternary_scale=channel
  want_rc 0 "train with ternary QAT"
  bb quantize --checkpoint QATT -o QATTQ --data ds --from-qat --threads 2
  want_rc 0 "quantize --from-qat of a ternary QAT run"
  want_out "ternary" "quantize --from-qat of a ternary QAT run writes ternary"
  want_out "(+0.000000)" "quantize --from-qat of a ternary QAT run: the export's bpb is the QAT forward's"
  bb_to qatt_ref.json eval --checkpoint QATT --data ds --json --threads 2
  bb_to qatt_q.json eval --checkpoint QATTQ --data ds --json --threads 2
  want_rc 0 "eval of the exported ternary checkpoint"
  [[ $(json_get qatt_ref.json 'repr(j["bpb"])') == "$(json_get qatt_q.json 'repr(j["bpb"])')" ]] ||
    fail "ternary QAT bpb $(json_get qatt_ref.json 'j["bpb"]') but the export's $(json_get qatt_q.json 'j["bpb"]')"
  # --quantize ternary on the QAT run rounds with the scales it trained with (per channel here), and
  # quantize --ternary-scale chooses them: channel gives the export, tensor another model.
  bb_to qatt_eq.json eval --checkpoint QATT --data ds --json --threads 2 --quantize ternary
  want_rc 0 "eval --quantize ternary of a ternary QAT run"
  [[ $(json_get qatt_eq.json 'repr(j["bpb"])') == "$(json_get qatt_ref.json 'repr(j["bpb"])')" ]] ||
    fail "eval --quantize ternary of the QAT run: bpb $(json_get qatt_eq.json 'j["bpb"]'), its QAT forward's $(json_get qatt_ref.json 'j["bpb"]')"
  for scale in channel tensor; do
    bb quantize --checkpoint QATT -o "QATT_$scale" --scheme ternary --ternary-scale "$scale" --threads 2
    want_rc 0 "quantize --scheme ternary --ternary-scale $scale"
    bb_to "qatt_$scale.json" eval --checkpoint "QATT_$scale" --data ds --json --threads 2
  done
  [[ $(json_get qatt_channel.json 'repr(j["bpb"])') == "$(json_get qatt_ref.json 'repr(j["bpb"])')" ]] ||
    fail "quantize --ternary-scale channel of a per-channel QAT run: bpb $(json_get qatt_channel.json 'j["bpb"]'), not the QAT run's"
  [[ $(json_get qatt_tensor.json 'repr(j["bpb"])') != "$(json_get qatt_ref.json 'repr(j["bpb"])')" ]] ||
    fail "quantize --ternary-scale tensor gave the per-channel model's bpb: the option did nothing"
  bb bench generate --checkpoint QATTQ -n 10 --rounds 1
  want_rc 0 "bench generate on the ternary checkpoint"
  want_out "| yes |" "ternary checkpoint: the key/value cache and the window made the same bytes"
  end
}

# 7. generate.
t_bench_generate() {
  begin "bench generate: recurrent form against the sliding window, same bytes while the text fits the window"
  bb bench generate --checkpoint A -n 10 --rounds 1
  want_rc 0 "bench generate"
  want_out "| yes |" "bench generate: the key/value cache and the window made the same bytes"
  bb bench generate --checkpoint A -n 1
  want_rc 2 "bench generate -n 1"
  end
}

t_bench_train() {
  begin "bench train: every peer configuration runs, bitbyte is compared with the best, MFU from measured peaks"
  # A stand-in for scripts/bench_train.py (no torch needed): bf16 twice as fast as fp32, fp32 on
  # a forced OPENBLAS_CORETYPE faster than as the environment gives it; GEMM peaks likewise.
  cat >"$T/peer.py" <<'PY'
import json, os, sys
a = sys.argv[1:]
forced = os.environ.get("OPENBLAS_CORETYPE", "") == os.environ.get("WANT_CORE", "-")
if "--gemm-peak" in a:
    print(json.dumps({"fp32_gflops": 200.0 if forced else 100.0, "bf16_gflops": 400.0}))
    sys.exit(0)
with open(os.environ["PEER_LOG"], "a") as log:
    log.write("%s %s\n" % (a[a.index("--precision") + 1], os.environ.get("OPENBLAS_CORETYPE", "")))
step = {"fp32": 0.016 if forced else 0.032, "bf16": 0.008}[a[a.index("--precision") + 1]]  # 128-byte steps
print(json.dumps({"median_step_s": step}))
PY
  local want_core="" f all=1
  for f in avx512f avx512bw avx512vl avx512dq avx512cd; do grep -qw "$f" /proc/cpuinfo || all=0; done
  if ((all)); then want_core=SkylakeX; elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then want_core=Haswell; fi
  : >"$T/peers.log"
  RC=0
  { env PEER_LOG="$T/peers.log" WANT_CORE="${want_core:--}" "$BIN" bench train --data ds --python python3 \
    --script "$T/peer.py" --set model.bitbyte_lm.d_model=32 --set model.bitbyte_lm.n_layer=1 \
    --set model.bitbyte_lm.n_head=2 --set model.bitbyte_lm.context=32 --set data.seq_len=32 \
    --set data.batch_size=4 --steps 2 --warmup 1 --rounds 2 --threads 2 >"$T/out" 2>"$T/err"; } 2>/dev/null || RC=$?
  want_rc 0 "bench train with a stand-in peer"
  local peers=2
  [[ -n $want_core && $want_core != "${OPENBLAS_CORETYPE:-}" ]] && peers=4
  [[ $(wc -l <"$T/peers.log") == $((2 * peers)) ]] || fail "want $peers peer runs a round: $(tr '\n' ';' <"$T/peers.log")"
  if ((peers == 4)); then
    grep -qx "fp32 $want_core" "$T/peers.log" || fail "no fp32 run on OPENBLAS_CORETYPE=$want_core"
    grep -qx "bf16 $want_core" "$T/peers.log" || fail "no bf16 run on OPENBLAS_CORETYPE=$want_core"
    want_out "GEMM peaks (2048^3, 2 threads): fp32 100 GFLOPS" "bench train: fp32 peak as the environment gives it"
    want_out "fp32 200 ($want_core), bf16 400" "bench train: fp32 peak on $want_core and bf16 peak"
  fi
  want_out "best overall: py bf16" "bench train: the best peer (bf16 is twice as fast)"
  # The ratio is against the best peer: bitbyte's bytes/s over bf16's 128 bytes / 0.008 s.
  python3 - "$T/out" >"$T/chk" <<'PY' || true
import re, sys
text = open(sys.argv[1]).read()
rows = re.findall(r"^(\d+) +(\d+)((?: +\d+)+) +([0-9.]+)x$", text, re.M)
if len(rows) != 2:
    print("want 2 round rows, got %d:\n%s" % (len(rows), text))
for r in rows:
    ours, peers, ratio = float(r[1]), [float(x) for x in r[2].split()], float(r[3])
    if abs(ours / max(peers) - ratio) > 0.011 or max(peers) != 16000:
        print("round %s: ratio %s is not bitbyte %s over the best peer %s" % (r[0], ratio, ours, peers))
m = re.search(r"MFU: bitbyte ([0-9.]+) GFLOPS = ([0-9.]+)% of the faster GEMM peak", text)
if not m or abs(float(m.group(1)) / 400 * 100 - float(m.group(2))) > 1:
    print("MFU of bitbyte is not against the 400 GFLOPS bf16 peak: %s" % (m.group(0) if m else "missing"))
PY
  [[ ! -s $T/chk ]] || fail "$(cat "$T/chk")"
  end
}

t_generate() {
  begin "generate: same seed same text, another seed another text, output starts with the prompt"
  local prompt="Call me Ishmael. " g
  for g in s7a s7b s8; do
    bb_to "$g.txt" generate --checkpoint A --prompt "$prompt" -n 64 --temperature 1 --seed "${g:1:1}" --threads 2
    want_rc 0 "generate --seed ${g:1:1}"
  done
  cmp -s s7a.txt s7b.txt || fail "--seed 7 twice gave different output"
  cmp -s s7a.txt s8.txt && fail "--seed 7 and --seed 8 gave the same 64 bytes"
  [[ $(head -c ${#prompt} s7a.txt) == "$prompt" ]] || fail "output does not start with the prompt: $(head -c 40 s7a.txt | od -c | head -2 | tr '\n' ' ')"
  # prompt + 64 bytes + newline
  [[ $(wc -c <s7a.txt) == $((${#prompt} + 64 + 1)) ]] || fail "output is $(wc -c <s7a.txt) bytes, want $((${#prompt} + 64 + 1))"
  end

  begin "generate --temperature 0 is deterministic (and ignores the seed); --top-k 1 equals greedy"
  bb_to g0a.txt generate --checkpoint A --prompt "The whale" -n 48 --temperature 0 --seed 1 --threads 2
  want_rc 0 "generate --temperature 0"
  bb_to g0b.txt generate --checkpoint A --prompt "The whale" -n 48 --temperature 0 --seed 2 --threads 2
  cmp -s g0a.txt g0b.txt || fail "--temperature 0 gave different outputs"
  bb_to gk1.txt generate --checkpoint A --prompt "The whale" -n 48 --top-k 1 --seed 3 --threads 2
  want_rc 0 "generate --top-k 1"
  cmp -s g0a.txt gk1.txt || fail "--top-k 1 differs from --temperature 0"
  end

  begin "generate with an empty prompt or a negative temperature: exit 2"
  bb generate --checkpoint A --prompt "" -n 4 --threads 2
  want_rc 2 "generate --prompt ''"
  want_err "prompt" "generate --prompt ''"
  bb generate --checkpoint A --prompt x -n 4 --temperature -1 --threads 2
  want_rc 2 "generate --temperature -1"
  end

  begin "generate and eval options out of bounds (nan, inf, beyond a limit): exit 2 naming the option, no C++ frames"
  local args
  # issue 14 D11: --temperature nan reached LibTorch and exited 1 with its stack frames.
  for args in "--temperature nan" "--temperature inf" "--temperature 1e-9" "--temperature 1001" "--top-k 257" \
    "--top-k -1" "-n -1" "-n 1073741825" "--threads 1025" "--threads -1"; do
    # shellcheck disable=SC2086  # $args is two words on purpose
    bb generate --checkpoint A --prompt x -n 4 $args
    want_rc 2 "generate $args"
    want_err "${args%% *}" "generate $args"
    grep -qE 'frame #|c10::|Exception raised from' "$T/err" && fail "generate $args: C++ frames: $(errmsg)"
    [[ -s $T/out ]] && fail "generate $args wrote to stdout: $(outmsg)"
  done
  for args in "--batch-size 0" "--batch-size 65537" "--max-bytes -1" "--max-bytes 1099511627777" "--threads 1025"; do
    # shellcheck disable=SC2086
    bb eval --checkpoint A --data ds $args
    want_rc 2 "eval $args"
    want_err "${args%% *}" "eval $args"
  done
  end
}

# 8. --print-config.
t_print_config() {
  begin "--print-config prints every field, reflects --set, and writes nothing"
  bb train --data ds -o pc "${TINY[@]}" --set optim.lr=0.005 --steps 77 --print-config
  want_rc 0 "--print-config"
  want_out "warmup_steps: 3" "--print-config"
  want_out "d_model: 32" "--print-config"
  want_out "lr: 0.005" "--print-config (--set optim.lr=0.005)"
  want_out "steps: 77" "--print-config (--steps 77)"
  want_out 'name: "bitbyte_lm"' "--print-config"
  # Every field of the two .proto files, of the model only the chosen track's block (a oneof).
  # fields_but MESSAGES FIELDS: the field names of both files, but those of the messages MESSAGES
  # and the fields FIELDS (the other tracks' blocks), each an alternation "A|B".
  fields_but() {
    awk -v skip="^($1)\$" '/^message /{m=$2} m !~ skip && /^ *(optional )?[A-Za-z0-9_.]+ [a-z_0-9]+ = [0-9]+/{
      for (i = 1; i <= NF; i++) if ($i == "=") { print $(i-1); break } }' \
      "$SRC_ROOT/train/train_config.proto" "$SRC_ROOT/models/model_config.proto" | grep -vxE "$2" | sort -u
  }
  # The fields of every config message but the other tracks' blocks that $T/out lacks.
  missing_fields() {
    local f missing=""
    for f in $(fields_but "$1" "$2"); do grep -qE "^ *$f( \{|:)" "$T/out" || missing+=" $f"; done
    echo "$missing"
  }
  local missing
  missing=$(missing_fields "MambaMLMConfig|BitTransformerLMConfig" "mamba_mlm|bit_transformer_lm")
  [[ -z $missing ]] || fail "fields missing from --print-config:$missing"
  grep -q "mamba_mlm {" "$T/out" && fail "--print-config of a bitbyte_lm run shows the mamba_mlm block"
  bb train --data ds -o pc --model mamba_mlm --print-config
  want_rc 0 "--model mamba_mlm --print-config"
  missing=$(missing_fields "BitByteLMConfig|BitTransformerLMConfig" "bitbyte_lm|bit_transformer_lm")
  [[ -z $missing ]] || fail "fields missing from --model mamba_mlm --print-config:$missing"
  bb train --data ds -o pc --model bit_transformer_lm --print-config
  want_rc 0 "--model bit_transformer_lm --print-config"
  missing=$(missing_fields "BitByteLMConfig|MambaMLMConfig" "bitbyte_lm|mamba_mlm")
  [[ -z $missing ]] || fail "fields missing from --model bit_transformer_lm --print-config:$missing"
  [[ ! -e pc ]] || fail "--print-config created the run directory"
  bb train --data ds -o pc "${TINY[@]}" --set optim.lrr=1 --print-config
  want_rc 2 "--print-config with --set optim.lrr=1"
  end

  begin "--resume RUN --print-config prints the run's config and changes nothing"
  tree_sums A >A.before
  bb train --resume A --print-config --steps 150
  want_rc 0 "--resume A --print-config"
  want_out "d_model: 32" "--resume A --print-config (the run's model)"
  want_out "steps: 150" "--resume A --print-config --steps 150"
  tree_sums A >A.after
  cmp -s A.before A.after || fail "run A changed: $(diff A.before A.after | head -2 | tr '\n' ' ')"
  end
}

# Runs know their data (issue 14, D6 and deliverable 3): checkpoints record the dataset id; a
# resume on another dataset is refused naming both ids unless --allow-other-data; a missing,
# garbage or wrong-typed run.json costs a warning naming it, never a raw JSON error.
t_data_identity() {
  local id_ds id_o
  bb_to ds.json inspect ds --json
  id_ds=$(json_get ds.json 'j["dataset_id"]')
  rm -rf other ds2
  mkdir -p other
  bb_to other/part.txt cat ds --split train
  truncate -s 60000 other/part.txt
  bb shard other -o ds2 -q --threads 2 --val-fraction 0.2
  bb_to ds2.json inspect ds2 --json
  id_o=$(json_get ds2.json 'j["dataset_id"]')

  begin "--resume with run.json missing, on another dataset: refused naming both ids; --allow-other-data trains on it"
  [[ $id_ds =~ ^[0-9a-f]{16}$ && $id_o =~ ^[0-9a-f]{16}$ && $id_ds != "$id_o" ]] || fail "dataset ids '$id_ds' and '$id_o'"
  rm -rf O O2
  cp -a A O
  rm O/run.json
  tree_sums O >O.before
  bb train --resume O --data ds2 --threads 2 --steps $((STEPS + 2))
  want_rc 2 "--resume O --data ds2 (run.json removed)"
  want_err "$id_ds" "--resume O --data ds2: the run's dataset id"
  want_err "$id_o" "--resume O --data ds2: the given dataset's id"
  want_err "--allow-other-data" "--resume O --data ds2"
  tree_sums O >O.after
  cmp -s O.before O.after || fail "the refused resume changed the run: $(diff O.before O.after | head -2 | tr '\n' ' ')"
  bb train --resume O --data ds2 --threads 2 --steps $((STEPS + 2)) --allow-other-data
  want_rc 0 "--resume O --data ds2 --allow-other-data"
  want_err_re "warning: .*$id_ds.*$id_o" "--allow-other-data warns naming both ids"
  [[ $(json_get O/run.json 'j["data"]') == */ds2 ]] || fail "run.json names $(json_get O/run.json 'j["data"]'), want .../ds2"
  # Its new checkpoint records ds2: a plain resume (run.json names ds2) goes on; ds is now the other one.
  bb train --resume O --threads 2 --steps $((STEPS + 3))
  want_rc 0 "--resume O after --allow-other-data"
  bb train --resume O --data ds --threads 2 --steps $((STEPS + 4))
  want_rc 2 "--resume O --data ds after training on ds2"
  want_err "$id_o" "--resume O --data ds after training on ds2"
  bb train --data ds -o O2 "${TINY[@]}" --allow-other-data
  want_rc 2 "--allow-other-data without --resume"
  [[ ! -e O2 ]] || fail "--allow-other-data without --resume created a run directory"
  end

  begin "a garbage or wrong-typed run.json: warnings naming it, --data asked for when needed, no raw JSON error"
  rm -rf G
  cp -a A G
  printf 'garbage{' >G/run.json
  bb train --resume G --threads 2
  want_rc 2 "--resume G (garbage run.json, no --data)"
  want_err "G/run.json" "--resume G (garbage run.json)"
  want_err "--data" "--resume G (garbage run.json)"
  bb train --resume G --data ds --threads 2
  want_rc 0 "--resume G --data ds (garbage run.json)"
  want_err "G/run.json" "--resume G --data ds (garbage run.json): a warning"
  printf '{"data": 5, "threads": "x", "dataset_id": 7}' >G/run.json
  bb train --resume G --threads 2
  want_rc 2 "--resume G (wrong-typed run.json, no --data)"
  want_err "G/run.json" "--resume G (wrong-typed run.json)"
  grep -q 'json.exception' "$T/err" && fail "a raw JSON error: $(errmsg)"
  printf '{"data": 5, "threads": "x", "dataset_id": 7}' >G/run.json
  bb train --resume G --data ds --threads 2
  want_rc 0 "--resume G --data ds (wrong-typed run.json)"
  want_err "G/run.json" "--resume G --data ds (wrong-typed run.json): a warning"
  grep -q 'json.exception' "$T/err" && fail "a raw JSON error: $(errmsg)"
  # A run.json with garbage but a checkpoint that records ds: ds2 is still refused.
  printf '[1,2' >G/run.json
  bb train --resume G --data ds2 --threads 2
  want_rc 2 "--resume G --data ds2 (garbage run.json)"
  want_err "$id_o" "--resume G --data ds2 (garbage run.json)"
  end

  begin "eval on another dataset: a warning naming both ids, and the figure"
  bb eval --checkpoint A --data ds2 --threads 2 --max-bytes 4096 --json
  want_rc 0 "eval --data ds2"
  want_err_re "warning: .*$id_o.*$id_ds" "eval --data ds2"
  want_out '"bpb"' "eval --data ds2"
  bb eval --checkpoint A --data ds --threads 2 --max-bytes 4096 --json
  want_rc 0 "eval --data ds"
  grep -q warning "$T/err" && fail "eval on the run's own dataset warned: $(errmsg)"
  end
}

# MambaMLM goes through the same training stack, untouched: its run killed and resumed equals its
# uninterrupted run, and eval and generate take its checkpoints.
t_mamba() {
  begin "MambaMLM: kill -9 and resume give the uninterrupted run's losses and weights; eval, generate"
  local M=(--model mamba_mlm --set model.mamba_mlm.d_model=32 --set model.mamba_mlm.n_layer=2
    --set model.mamba_mlm.d_state=4)
  rm -rf MA MK
  bb train --data ds -o MA "${CFG[@]}" "${M[@]}"
  want_rc 0 "mamba_mlm reference run"
  bg train --data ds -o MK "${CFG[@]}" "${M[@]}"
  if wait_step MK/metrics.jsonl 25 "$BG"; then kill -9 "$BG" 2>/dev/null || true; fi
  reap "$BG"
  [[ $RC == 137 ]] || fail "the mamba_mlm run was not killed (exit $RC, $(errmsg "$T/bg.err"))"
  bb train --resume MK --threads 2
  want_rc 0 "mamba_mlm resume"
  same_run MA MK "mamba_mlm after kill -9"
  bb eval --checkpoint MA --data ds --json --threads 2
  want_rc 0 "eval of a mamba_mlm checkpoint"
  want_out '"bpb"' "eval of a mamba_mlm checkpoint"
  bb generate --checkpoint MA --prompt "Call me" -n 20 --seed 3 --threads 2
  want_rc 0 "generate from a mamba_mlm checkpoint"
  [[ $(head -c -1 "$T/out" | wc -c) == 27 ]] || fail "generate -n 20 after a 7-byte prompt wrote $(wc -c <"$T/out") bytes, want 27 + newline"
  # End to end, the recurrent form and --no-recurrent (windowed forward) agree while prompt and
  # output fit in one training window (7 + 20 <= 32). This tiny model is too weak for greedy
  # bytes to show an off-by-one: tests/train/generation_test.cc compares the logits themselves.
  bb_to g1 generate --checkpoint MA --prompt "Call me" -n 20 --temperature 0 --threads 2
  bb_to g2 generate --checkpoint MA --prompt "Call me" -n 20 --temperature 0 --threads 2 --no-recurrent
  want_rc 0 "generate --no-recurrent"
  cmp -s g1 g2 || fail "greedy recurrent and windowed generation differ: $(od -c g1 | head -2 | tr '\n' ' ') vs $(od -c g2 | head -2 | tr '\n' ' ')"
  end
}

# BitTransformerLM, end to end: kill -9 and resume, eval, generate; K/C/S telemetry beside training
# and its gate in training (stop, resume with other bounds) and in generation (flag, refuse).
t_bits() {
  begin "BitTransformerLM: kill -9 and resume, eval, generate; telemetry in metrics, the report and top"
  local M=(--model bit_transformer_lm --set model.bit_transformer_lm.d_model=32 --set model.bit_transformer_lm.n_layer=2
    --set model.bit_transformer_lm.context=256 --set telemetry.every=10 --set telemetry.probe_bytes=64)
  rm -rf BA BK
  bb train --data ds -o BA "${CFG[@]}" "${M[@]}"
  want_rc 0 "bit_transformer_lm reference run"
  want_err "reversible layers" "bit_transformer_lm reference run"
  bg train --data ds -o BK "${CFG[@]}" "${M[@]}"
  if wait_step BK/metrics.jsonl 25 "$BG"; then kill -9 "$BG" 2>/dev/null || true; fi
  reap "$BG"
  [[ $RC == 137 ]] || fail "the bit_transformer_lm run was not killed (exit $RC, $(errmsg "$T/bg.err"))"
  bb train --resume BK --threads 2
  want_rc 0 "bit_transformer_lm resume"
  same_run BA BK "bit_transformer_lm after kill -9"
  local n
  n=$(grep -c '"telemetry_k"' BA/metrics.jsonl)
  [[ $n -ge 2 ]] || fail "want telemetry records every 10 of $STEPS steps in metrics.jsonl, found $n"
  bb eval --checkpoint BA --data ds --json --threads 2
  want_rc 0 "eval of a bit_transformer_lm checkpoint"
  want_out '"bpb"' "eval of a bit_transformer_lm checkpoint"
  bb generate --checkpoint BA --prompt "Call me" -n 20 --seed 3 --threads 2 --telemetry
  want_rc 0 "generate from a bit_transformer_lm checkpoint"
  [[ $(head -c -1 "$T/out" | wc -c) == 27 ]] || fail "generate -n 20 after a 7-byte prompt wrote $(wc -c <"$T/out") bytes, want 27 + newline"
  want_err "telemetry of the output: K" "generate --telemetry"
  bb report BA -o BA.html
  want_rc 0 "report of a run with telemetry"
  grep -qF "latest telemetry" BA.html || fail "the report does not show the telemetry"
  bb top BA --once
  want_rc 0 "top on a run with telemetry"
  want_out " K " "top on a run with telemetry"
  end

  begin "telemetry gate: training stops naming the metric, the step and the last good checkpoint; a resume with wider bounds goes on"
  rm -rf BG
  bb train --data ds -o BG "${CFG[@]}" "${M[@]}" --set telemetry.c_max=0.01
  want_rc 1 "a run whose telemetry leaves its bounds"
  want_err "telemetry gate: C" "the gate's stop"
  want_err "above telemetry.c_max 0.01 at step 10" "the gate's stop"
  want_err "last good checkpoint" "the gate's stop"
  bb train --resume BG --threads 2 --set telemetry.c_max=1000
  want_rc 0 "resume with wider bounds"
  grep -q "\"step\":$STEPS," BG/metrics.jsonl || fail "the resumed run did not reach step $STEPS"
  end

  begin "telemetry gate in generation: flag writes the output with a warning, refuse writes nothing and exits 1"
  rm -rf BQ
  bb train --data ds -o BQ "${CFG[@]}" "${M[@]}" --set telemetry.every=0 --set telemetry.c_max=0.01
  want_rc 0 "a run with bounds but no telemetry during training"
  bb generate --checkpoint BQ --prompt "Call me" -n 40 --seed 3 --threads 2
  want_rc 0 "generate, flag (the default)"
  [[ $(head -c -1 "$T/out" | wc -c) == 47 ]] || fail "flag should write the output"
  want_err "warning: telemetry gate: the generated text's C" "generate, flag"
  bb generate --checkpoint BQ --prompt "Call me" -n 40 --seed 3 --threads 2 --gate refuse
  want_rc 1 "generate --gate refuse"
  [[ ! -s $T/out ]] || fail "refuse wrote $(wc -c <"$T/out") bytes"
  want_err "nothing written" "generate --gate refuse"
  bb generate --checkpoint BQ --prompt "Call me" -n 40 --seed 3 --threads 2 --gate off
  want_rc 0 "generate --gate off"
  grep -q "telemetry gate" "$T/err" && fail "--gate off still checked the output"
  bb generate --checkpoint BQ --prompt "Call me" -n 4 --gate sometimes
  want_rc 2 "generate --gate with an unknown mode"
  end

  begin "diffusion mode: kill -9 and resume, eval labels its bpb an upper bound, generate by denoising"
  local D=(--model bit_transformer_lm --set model.bit_transformer_lm.d_model=32 --set model.bit_transformer_lm.n_layer=2
    --set model.bit_transformer_lm.context=256 --set model.bit_transformer_lm.mode=diffusion
    --set model.bit_transformer_lm.diffusion_eval_samples=2)
  rm -rf DA DK
  bb train --data ds -o DA "${CFG[@]}" "${D[@]}"
  want_rc 0 "diffusion reference run"
  want_err "an upper bound: the diffusion ELBO" "diffusion training's evaluations"
  bg train --data ds -o DK "${CFG[@]}" "${D[@]}"
  if wait_step DK/metrics.jsonl 25 "$BG"; then kill -9 "$BG" 2>/dev/null || true; fi
  reap "$BG"
  [[ $RC == 137 ]] || fail "the diffusion run was not killed (exit $RC, $(errmsg "$T/bg.err"))"
  bb train --resume DK --threads 2
  want_rc 0 "diffusion resume"
  same_run DA DK "diffusion after kill -9"
  grep -q '"val_bpb_is_bound":true' DA/metrics.jsonl || fail "metrics.jsonl does not mark the bound"
  bb eval --checkpoint DA --data ds --json --threads 2
  want_rc 0 "eval of a diffusion checkpoint"
  want_out '"bound":true' "eval --json of a diffusion checkpoint"
  bb generate --checkpoint DA --prompt "Call me" -n 50 --seed 3 --threads 2 --denoise-steps 4
  want_rc 0 "generate by denoising"
  [[ $(head -c -1 "$T/out" | wc -c) == 57 ]] || fail "generate -n 50 after a 7-byte prompt wrote $(wc -c <"$T/out") bytes, want 57 + newline"
  bb_to d1 generate --checkpoint DA --prompt "Call me" -n 50 --seed 3 --threads 2 --denoise-steps 4
  cmp -s d1 "$T/out" || fail "the same seed denoised other bytes"
  bb generate --checkpoint DA --prompt "Call me" -n 5 --top-k 3
  want_rc 2 "--top-k on a diffusion model"
  want_err "draws bits" "--top-k on a diffusion model"
  end
}

# Progressive depth and a sequence-length curriculum: kill -9 across the growth steps and resume
# gives the uninterrupted run; metrics.jsonl and the report mark the growth points.
t_growth() {
  begin "growth: depth and window curriculum, kill -9 across the growth and resume identical, the report marks it"
  local G=(--set growth.depth=0:1,30:2 --set growth.seq_len=0:16,20:32)
  rm -rf GA GK
  bb train --data ds -o GA "${CFG[@]}" "${G[@]}"
  want_rc 0 "a growing run"
  want_err "growth  step 30  2 layers" "a growing run"
  want_err "growth  step 20  32-byte windows" "a growing run"
  bg train --data ds -o GK "${CFG[@]}" "${G[@]}"
  if wait_step GK/metrics.jsonl 25 "$BG"; then kill -9 "$BG" 2>/dev/null || true; fi
  reap "$BG"
  [[ $RC == 137 ]] || fail "the growing run was not killed (exit $RC, $(errmsg "$T/bg.err"))"
  bb train --resume GK --threads 2
  want_rc 0 "resume of a growing run"
  same_run GA GK "growth after kill -9"
  [[ $(grep -c '"growth"' GA/metrics.jsonl) == 2 ]] || fail "want 2 growth records in metrics.jsonl"
  [[ $(grep -c '"growth"' GK/metrics.jsonl) == 2 ]] || fail "the resumed run has $(grep -c '"growth"' GK/metrics.jsonl) growth records, want 2"
  bb report GA -o GA.html
  want_rc 0 "report of a growing run"
  grep -qF "step 30: 2 layers" GA.html || fail "the report does not mark the growth"
  bb train --data ds -o GX "${CFG[@]}" --set growth.depth=0:1
  want_rc 2 "a depth schedule that never reaches n_layer"
  want_err "config field growth.depth" "a depth schedule that never reaches n_layer"
  end
}

# bench tracks: every track at matched size on the same budget and seeds, the document with every
# run, curve and scaling point, and its option errors found before any training.
t_bench_tracks() {
  begin "bench tracks: matched sizes, every run and scaling point in the document; bad options fail early"
  local B=(bench tracks --data ds --threads 2 --seeds 2 --budget-bytes 4K --set data.seq_len=32
    --set data.batch_size=4 --set optim.warmup_steps=3 --set model.bitbyte_lm.d_model=32
    --set model.bitbyte_lm.context=32 --set model.mamba_mlm.d_model=32 --set model.mamba_mlm.d_state=4
    --set model.bit_transformer_lm.d_model=32 --set model.bit_transformer_lm.context=256 --seq-lens 32,64 --scaling-bytes 256 --scaling-steps 1 --evals 2 --work-dir "$T/bw")
  rm -rf "$T/bw"
  bb "${B[@]}" -o tracks.md
  want_rc 0 "bench tracks"
  # Every track within 10% of the target size (the first track's own).
  local pct
  for t in bitbyte_lm mamba_mlm bit_transformer_lm; do
    pct=$(sed -n "s/^$t *[0-9]* parameters (target [0-9]*, \([-+][0-9.]*\)%).*/\1/p" "$T/out")
    [[ -n $pct ]] || fail "no size line for $t (stdout: $(outmsg))"
    [[ -n $pct ]] && awk -v p="$pct" 'BEGIN { exit !(p <= 10 && p >= -10) }' || fail "$t is $pct% off the target size"
  done
  [[ -s tracks.md ]] || fail "no document written"
  local tracks='(bitbyte_lm|mamba_mlm|bit_transformer_lm)'
  [[ $(grep -cE '^\| `'"$tracks"'` \| [12] \| [0-9]+\.[0-9]{4} \|' tracks.md) == 6 ]] ||
    fail "want 6 per-seed rows (3 tracks x 2 seeds): $(grep -c '^| `' tracks.md) table rows"
  [[ $(grep -cE '^\| `'"$tracks"'` \| 32 \| 4,096 \|' tracks.md) == 3 ]] ||
    fail "want each track's last curve point at step 32 (4,096 bytes)"
  grep -qE '^\| 32 \| 8 \| [0-9.]+ \|' tracks.md || fail "no scaling row for sequence 32 (batch 8)"
  grep -qE '^\| 64 \| 4 \| [0-9.]+ \|' tracks.md || fail "no scaling row for sequence 64 (batch 4)"
  grep -qE 'Recommendation: `'"$tracks"'`' tracks.md || fail "no recommendation"
  grep -qF 'failed:' tracks.md && fail "a scaling run failed: $(grep -F 'failed:' tracks.md | head -1)"
  grep -qF -- '--budget-bytes 4K' tracks.md || fail "the document does not say how it was made"
  # The sweep: every track's rate chosen from at least 3 on the grid, shown in the document.
  [[ $(grep -cE '^\| `'"$tracks"'` \| 8 \| [0-9.e-]+ \| [0-9]+\.[0-9]{4} \| \*\*chosen\*\*' tracks.md) == 3 ]] ||
    fail "want one chosen learning rate per track: $(grep -c chosen tracks.md)"
  for t in bitbyte_lm mamba_mlm bit_transformer_lm; do
    (($(grep -cE '^\| `'"$t"'` \| 8 \| ' tracks.md || true) >= 3)) || fail "$t: fewer than 3 rates in its sweep"
  done
  # The best track's quantized variants, and the charts beside the document.
  grep -qE '^### Quantized variants of `'"$tracks"'`' tracks.md || fail "no quantized variants"
  grep -qE '^\| `'"$tracks"' (int8 PTQ|ternary QAT)` \| [0-9]+\.[0-9]{4} ± [0-9.]+ \| [-+][0-9.]+ ± ' tracks.md ||
    fail "the variants' rows lack their paired gap"
  for f in tracks-bytes.svg tracks-time.svg; do
    [[ $(grep -c '<polyline' "$f" 2>/dev/null) == 5 ]] || fail "$f: want 5 curves (3 tracks, 2 variants)"
    grep -qF "](${f})" tracks.md || fail "the document does not show $f"
  done
  [[ -z $(ls -A "$T/bw" 2>/dev/null) ]] || fail "scratch left behind: $(ls "$T/bw" | head -3)"
  # Killed mid-run (a non-finite loss at step 20, checkpoints every 8 steps): the same command
  # continues from the run's checkpoint, and its figures are the uninterrupted run's.
  local R=(bench tracks --data ds --threads 2 --seeds 1 --budget-bytes 4K --tracks bitbyte_lm --no-sweep --variants ''
    --set data.seq_len=32 --set data.batch_size=4 --set model.bitbyte_lm.d_model=32 --set model.bitbyte_lm.context=32
    --seq-lens '')
  rm -rf "$T/br1" "$T/br2"
  bb "${R[@]}" --work-dir "$T/br1" -o straight.md
  want_rc 0 "bench tracks, uninterrupted"
  bb_env BITBYTE_TEST_NAN_AT_STEP=20 "${R[@]}" --work-dir "$T/br2" -o resumed.md
  want_rc 1 "bench tracks, a run failing at step 20"
  want_err "the same command continues" "bench tracks, a run failing at step 20"
  # As if the bench had been killed with its child: no record of the first part's time is left
  # but the run's own. The continued run's wall time is its records' (each part to its last kept
  # record), not the last part's alone.
  rm "$T/br2/bench-tracks/b1-bitbyte_lm-seed1.parts"
  bb "${R[@]}" --keep-runs --work-dir "$T/br2" -o resumed.md
  want_rc 0 "bench tracks, continued"
  want_out "continuing the bench" "bench tracks, continued"
  local row
  row=$(grep -E '^\| `bitbyte_lm` \| 1 \| ' straight.md | cut -d'|' -f4)
  [[ -n $row ]] && grep -qE '^\| `bitbyte_lm` \| 1 \|'"$row"'\|.*\(resumed\) \|$' resumed.md ||
    fail "the continued run is not marked resumed with the uninterrupted val bpb ($row): $(grep -F '| `bitbyte_lm` | 1 |' resumed.md)"
  python3 - "$T/br2/bench-tracks/b1-bitbyte_lm-seed1" <<'EOF' || fail "the continued run's wall time is not its records'"
import json, sys
run = sys.argv[1]
parts, prev = [0.0], None
for line in open(run + "/metrics.jsonl"):
    e = json.loads(line).get("elapsed_s")
    if e is None:
        continue
    if prev is not None and e + 0.5 < prev:
        parts.append(0.0)  # a resumed invocation's clock starts again
    parts[-1], prev = max(parts[-1], e), e
wall = float(open(run + ".done").read().split()[0])
if len(parts) < 2 or abs(wall - sum(parts)) > 2e-3:
    sys.exit(f"{run}.done: wall {wall}, the records' parts {parts}")
EOF
  # An evaluation record missing from a finished run (here the last one, whose checkpoint is
  # always written; a slow track's evaluations can be skipped) is made up from the checkpoint of
  # that step when the bench reads the run, with the value training logged.
  rm -rf "$T/br3"
  bb "${R[@]}" --evals 4 --keep-runs --work-dir "$T/br3" -o kept.md
  want_rc 0 "bench tracks --keep-runs"
  local m="$T/br3/bench-tracks/b1-bitbyte_lm-seed1/metrics.jsonl" point
  point=$(grep -F '| `bitbyte_lm` | 32 | 4,096 |' kept.md)
  [[ -n $point ]] || fail "no curve point at step 32: $(grep -F '| `bitbyte_lm` |' kept.md | head -3)"
  grep -q '"step":32,"val_bpb"' "$m" || fail "no evaluation record of step 32 in $m"
  grep -v '"step":32,"val_bpb"' "$m" >"$m.new" && mv "$m.new" "$m"
  bb "${R[@]}" --evals 4 --keep-runs --work-dir "$T/br3" -o filled.md
  want_rc 0 "bench tracks, a run without its last evaluation record"
  want_out "evaluating checkpoints/step-000000032" "bench tracks, a run without its last evaluation record"
  grep -qxF -- "$point" filled.md ||
    fail "step 32 made up from its checkpoint is not the logged '$point': $(grep -F '| `bitbyte_lm` | 32 |' filled.md)"
  # A run's stored request without a field a later bitbyte added (at its default) is the same
  # request: the finished run is reused, not trained again; one with another value is redone.
  local req="$T/br3/bench-tracks/b1-bitbyte_lm-seed1.txtpb" sum
  sum=$(sha256sum <"$m")
  grep -q '^qat_precision: "auto"$' "$req" || fail "no qat_precision in $req"
  sed -i '/^qat_precision: /d' "$req"
  bb "${R[@]}" --evals 4 --keep-runs --work-dir "$T/br3" -o reused.md
  want_rc 0 "bench tracks, a stored request without qat_precision"
  [[ $(sha256sum <"$m") == "$sum" ]] || fail "a run whose request only lacks a default field was trained again"
  sed -i 's/^seed: 1$/seed: 7/' "$req"
  bb "${R[@]}" --evals 4 --keep-runs --work-dir "$T/br3" -o redone.md
  want_rc 0 "bench tracks, a stored request with another seed"
  [[ $(sha256sum <"$m") != "$sum" ]] || fail "a run whose request had another seed was reused"
  # A QAT run's request from before qat_precision is another one: one probe then chose every
  # step's precision.
  bb "${R[@]}" --evals 4 --keep-runs --work-dir "$T/br3" --set model.qat.scheme=ternary -o qat.md
  want_rc 0 "bench tracks with QAT"
  sum=$(sha256sum <"$m")
  sed -i '/^qat_precision: /d' "$req"
  bb "${R[@]}" --evals 4 --keep-runs --work-dir "$T/br3" --set model.qat.scheme=ternary -o qat.md
  want_rc 0 "bench tracks with QAT, a stored request without qat_precision"
  [[ $(sha256sum <"$m") != "$sum" ]] || fail "a QAT run from before qat_precision was reused"
  # Minutes instead of bytes: steps fitted from a probe run; one track alone is not compared.
  bb bench tracks --data ds --threads 2 --seeds 1 --budget-minutes 0.03 --tracks bitbyte_lm \
    --set data.seq_len=32 --set data.batch_size=4 --set model.bitbyte_lm.d_model=32 \
    --set model.bitbyte_lm.context=32 --seq-lens '' --no-sweep --variants '' --work-dir "$T/bw" -o tracks1.md
  want_rc 0 "bench tracks --budget-minutes"
  want_out "== budget: 0.03 minutes per run" "bench tracks --budget-minutes"
  grep -qF 'Only `bitbyte_lm` was trained' tracks1.md || fail "one track: the document should say there is nothing to compare"
  grep -qF '## Memory and throughput' tracks1.md && fail "--seq-lens '' still measured the scaling table"
  # Bad options: found before any training, named, exit 2.
  bb "${B[@]}" --budget-minutes 1 -o x.md
  want_rc 2 "both budgets"
  want_err "excludes" "both budgets"
  bb "${B[@]}" --tracks bitbyte_lm,nope -o x.md
  want_rc 2 "an unknown track"
  want_err "known: bitbyte_lm, mamba_mlm, bit_transformer_lm" "an unknown track"
  bb "${B[@]}" -o "$T/no/such/dir/x.md"
  want_rc 2 "a document in a missing directory"
  want_err "does not exist" "a document in a missing directory"
  bb bench tracks --data "$T/nothing" -o x.md
  want_rc 2 "not a dataset"
  want_err "not a dataset directory" "not a dataset"
  bb "${B[@]}" --lrs 0.001 -o x.md
  want_rc 2 "a sweep of one rate"
  want_err "at least 2 rates" "a sweep of one rate"
  bb "${B[@]}" --variants int4 -o x.md
  want_rc 2 "an unknown variant"
  want_err "'int4' is not int8 or ternary" "an unknown variant"
  bb bench tracks --data ds --budget-bytes 4K,4K -o x.md
  want_rc 2 "a budget listed twice"
  want_err "listed twice" "a budget listed twice"
  bb "${B[@]}" --tracks mamba_mlm,mamba_mlm -o x.md
  want_rc 2 "a track listed twice"
  want_err "listed twice" "a track listed twice"
  bb bench tracks --data ds --seq-lens 32,48 --scaling-bytes 256 --work-dir "$T/bw" -o x.md
  want_rc 2 "a length that does not divide --scaling-bytes"
  want_err "not a multiple of the length 48" "a length that does not divide --scaling-bytes"
  [[ ! -e x.md ]] || fail "a failed bench wrote a document"
  # A training that fails mid-bench: exit 1, the error names the kept scratch directory, no document.
  rm -rf "$T/bw"
  bb_env BITBYTE_TEST_NAN_AT_STEP=2 "${B[@]}" --no-sweep -o x.md
  want_rc 1 "a training that fails"
  want_err "the runs so far are kept in $T/bw/bench-tracks;" "a training that fails"
  [[ -n $(ls -A "$T/bw" 2>/dev/null) ]] || fail "a failed bench removed its runs"
  [[ ! -e x.md ]] || fail "a failed bench wrote a document"
  end
}

# The BLAS kernels: a core OpenBLAS falls back to (pretended with a test hook: this machine's
# OpenBLAS knows its CPU) is replaced by the CPU's best, bitbyte running itself again with
# OPENBLAS_CORETYPE set; OpenBLAS then runs that core (run.json's blas_core is OpenBLAS's own
# answer). A value the environment sets is kept.
t_blas() {
  begin "BLAS: a fallback core is replaced by the CPU's best; the environment's OPENBLAS_CORETYPE is kept"
  local want="" f all=1
  for f in avx512f avx512bw avx512vl avx512dq avx512cd; do grep -qw "$f" /proc/cpuinfo || all=0; done
  if ((all)); then want=SkylakeX; elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then want=Haswell; fi
  [[ -n $want ]] || fail "this CPU has no AVX2: nothing better than OpenBLAS's own core to choose"
  RC=0
  { env -u OPENBLAS_CORETYPE BITBYTE_TEST_OPENBLAS_CORE=Prescott "$BIN" train --data ds -o blas1 "${TINY[@]}" \
    --steps 2 >"$T/out" 2>"$T/err"; } 2>/dev/null || RC=$?
  want_rc 0 "train on a fallback core"
  want_err "BLAS: OpenBLAS core $want, chosen by bitbyte (OpenBLAS chose Prescott" "train on a fallback core"
  [[ $(json_get blas1/run.json 'j["blas_core"]') == "$want" ]] || fail "run.json blas_core: $(json_get blas1/run.json 'j["blas_core"]'), want $want"
  [[ $(json_get blas1/run.json 'j["blas_chosen_by"]') == bitbyte ]] || fail "run.json blas_chosen_by is not bitbyte"
  RC=0
  { env OPENBLAS_CORETYPE=Prescott "$BIN" train --data ds -o blas2 "${TINY[@]}" --steps 2 >"$T/out" 2>"$T/err"; } \
    2>/dev/null || RC=$?
  want_rc 0 "train with OPENBLAS_CORETYPE=Prescott"
  [[ $(json_get blas2/run.json 'j["blas_core"]') == Prescott ]] || fail "the environment's Prescott was not kept"
  [[ $(json_get blas2/run.json 'j["blas_chosen_by"]') == environment ]] || fail "run.json blas_chosen_by is not environment"
  # bitbyte's choice fails the GEMM self-check (a test hook): it runs on OpenBLAS's own core.
  RC=0
  { env -u OPENBLAS_CORETYPE BITBYTE_TEST_OPENBLAS_CORE=Haswell BITBYTE_TEST_GEMM_FAILS_ON=SkylakeX "$BIN" train \
    --data ds -o blas3 "${TINY[@]}" --steps 2 >"$T/out" 2>"$T/err"; } 2>/dev/null || RC=$?
  if [[ $want == SkylakeX ]]; then
    want_rc 0 "train when bitbyte's core fails the self-check"
    want_err "OpenBLAS core SkylakeX failed the GEMM self-check" "train when bitbyte's core fails the self-check"
    [[ $(json_get blas3/run.json 'j["blas_core"]') == Haswell ]] || fail "not back on OpenBLAS's own Haswell"
    [[ $(json_get blas3/run.json 'j["blas_chosen_by"]') == OpenBLAS ]] || fail "run.json blas_chosen_by is not OpenBLAS"
  fi
  # A core the environment sets that fails it: a clear error, exit 1, nothing trained.
  RC=0
  { env OPENBLAS_CORETYPE=Prescott BITBYTE_TEST_GEMM_FAILS_ON=Prescott "$BIN" train --data ds -o blas4 "${TINY[@]}" \
    --steps 2 >"$T/out" 2>"$T/err"; } 2>/dev/null || RC=$?
  want_rc 1 "train on a core that fails the self-check"
  want_err "are wrong on this CPU" "train on a core that fails the self-check"
  [[ ! -e blas4 ]] || fail "a run directory was made on a BLAS that computes wrong results"
  end
}

t_precision() {
  begin "precision: auto resolves and is recorded, a resume keeps it, a bad value is refused"
  bb train --data ds -o P1 "${TINY[@]}" --steps 3
  want_rc 0 "train with precision auto"
  want_err_re "precision: (fp32|bf16) \\(auto, (probe|cached probe)" "train with precision auto"
  grep -qE '^precision: "(fp32|bf16)"$' P1/config.txtpb || fail "config.txtpb does not record the resolved precision"
  bb train --data ds -o P2 "${TINY[@]}" --steps 3 --set precision=bf16 --set checkpoint.every=1
  want_rc 0 "train in bf16"
  grep -qx 'precision: "bf16"' P2/config.txtpb || fail "config.txtpb of a bf16 run: $(grep precision P2/config.txtpb)"
  bb train --resume P2 --threads 2 --steps 5
  want_rc 0 "resume a bf16 run"
  want_err "precision: bf16 (from the config)" "resume a bf16 run"
  bb train --data ds -o P3 "${TINY[@]}" --steps 3 --set precision=fp16
  want_rc 2 "precision fp16"
  want_err "config field precision: must be fp32, bf16 or auto, got 'fp16'" "precision fp16"
  [[ -f $BITBYTE_CACHE/precision-probe.json ]] || fail "no probe cache in \$BITBYTE_CACHE"
  end

  begin "qat_precision: the quantization-aware steps' own, recorded; a run from before it keeps one precision"
  bb train --data ds -o Q1 "${TINY[@]}" --steps 4 --set model.qat.scheme=ternary --set model.qat.start_step=2 \
    --set precision=bf16 --set checkpoint.every=2
  want_rc 0 "train with ternary QAT from step 2"
  want_err_re "precision: bf16 \\(from the config\\); quantization-aware steps: (fp32|bf16) \\(auto" "QAT run's start line"
  grep -qE '^qat_precision: "(fp32|bf16)"$' Q1/config.txtpb || fail "config.txtpb does not record qat_precision"
  # As written before the field existed: every step in `precision`, kept by the resume.
  sed -i '/^qat_precision: /d' Q1/config.txtpb
  bb train --resume Q1 --threads 2 --steps 6
  want_rc 0 "resume a QAT run without qat_precision"
  want_err "quantization-aware steps: bf16 (from the config)" "resume a QAT run without qat_precision"
  grep -qx 'qat_precision: "bf16"' Q1/config.txtpb || fail "the resumed run's qat_precision: $(grep qat_precision Q1/config.txtpb)"
  # ... and in the precision a resume asks for, when it asks for one.
  sed -i '/^qat_precision: /d' Q1/config.txtpb
  bb train --resume Q1 --threads 2 --steps 8 --set precision=fp32
  want_rc 0 "resume a QAT run without qat_precision in fp32"
  want_err "precision: fp32 (from the config); quantization-aware steps: fp32 (from the config)" "resume in fp32"
  end
}

t_stats() {
  begin "train --stats: per-node figures and the CPU time of every thread while the graph ran"
  # A model wide enough that its steps outweigh what main does between them (main runs graph tasks
  # while it waits for the graph): on the tiny model both were 0.02-0.04 s and the order was noise.
  bb train --data ds -o ST "${TINY[@]}" --set model.bitbyte_lm.d_model=128 --set model.bitbyte_lm.context=64 \
    --set data.seq_len=64 --set data.batch_size=8 --steps 20 --stats -q
  want_rc 0 "train --stats"
  want_err "CPU time by thread while the graph ran" "train --stats"
  local name
  for name in main train-step omp-train tbb-worker total; do
    grep -qE "^  $name +[0-9]+ +[0-9.]+ +[0-9.]+%$" "$T/err" || fail "--stats has no row for $name: $(errmsg)"
  done
  # The rows add up to the total, and the model's thread did the most work of the graph's own.
  python3 - "$T/err" >"$T/chk" <<'PY' || true
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"^  (\S+) +(\d+) +([0-9.]+) +[0-9.]+%$", line)
    if m:
        rows[m.group(1)] = float(m.group(3))
total = rows.pop("total", None)
if total is None or abs(sum(rows.values()) - total) > 0.02 * len(rows) + 1e-9:
    print("rows %s do not add up to total %s" % (rows, total))
elif rows.get("train-step", 0) <= rows.get("main", 0):
    print("train-step %s CPU s is not above main's %s" % (rows.get("train-step"), rows.get("main")))
PY
  [[ ! -s $T/chk ]] || fail "$(cat "$T/chk")"
  end
}

# --minutes: the steps fitted by a probe run, printed and kept in the run's config; refused with
# --steps or --resume.
t_minutes() {
  begin "train --minutes: steps fitted by a probe, kept in config.txtpb; refused with --steps or --resume"
  rm -rf min1
  bb train --data ds -o min1 "${TINY[@]}" --minutes 0.05
  want_rc 0 "train --minutes"
  local n
  n=$(sed -n 's/^\([0-9]*\) steps fit in 0.05 minutes (.*/\1/p' "$T/err")
  [[ -n $n ]] || fail "no fitted step count (stderr: $(errmsg))"
  grep -qx "steps: $n" min1/config.txtpb || fail "config.txtpb does not keep the $n fitted steps: $(grep ^steps min1/config.txtpb)"
  [[ $(grep -c '"step":'"$n"',"val_bpb"' min1/metrics.jsonl) == 1 ]] || fail "no evaluation at the fitted last step $n"
  ls /tmp/bitbyte-probe-* >/dev/null 2>&1 && fail "the probe's scratch directory was left in /tmp"
  bb train --data ds -o min2 "${TINY[@]}" --minutes 1 --steps 5
  want_rc 2 "--minutes with --steps"
  want_err "not both" "--minutes with --steps"
  bb train --resume min1 --minutes 1
  want_rc 2 "--minutes on --resume"
  want_err "for a new run" "--minutes on --resume"
  end
}

group t_reference
group t_minutes
group t_precision
group t_stats
group t_blas
group t_kill_resume
group t_kill_resume8
group t_crash_writes
group t_signals
group t_bad_input
group t_damage
group t_eval
group t_quantize
group t_generate
group t_bench_generate
group t_bench_train
group t_print_config
group t_data_identity
group t_mamba
group t_bits
group t_growth
group t_bench_tracks

finish
