#!/usr/bin/env bash
# End-to-end tests of seeing the pipeline: `bitbyte graph shard|train` (the graph a job would
# build, without running it, as dot/json/svg/png), the live per-node figures every job writes
# (pipeline.json in the run or dataset directory), `bitbyte graph --figures` (the graph as it
# ran, coloured, bottleneck marked) and `bitbyte top` (a terminal view of a running job), with
# their bad inputs: missing and partial directories, a job killed mid-run, cut-off metrics;
# and the TensorBoard event files of a run, read back by an independent reader.
# Run by ctest as
#   bash tests/cli/graph_test.sh /path/to/bitbyte /path/to/source-root
# Prints "ok - NAME" or "not ok - NAME: details" per check, then "N passed, M failed" alone on
# the last line; exits 1 when any check failed. Needs Graphviz's dot (scripts/setup.sh installs
# it) and python3 (standard library only).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

parse_args "$@"
need_tools dot grep sed head tail python3
CORPUS=$SRC_ROOT/data/moby-dick.jsonl.zst
[[ -f $CORPUS ]] || { echo "$0: no corpus at $CORPUS" >&2; exit 2; }
export LC_ALL=C
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
make_test_dir bitbyte-graph-test 65536
GROUP_TIMES=1

errmsg() { tail -c 500 "${1:-$T/err}" | tr '\n' ' '; }
outmsg() { head -c 300 "$T/out" | tr '\n' ' '; }

TINY=(--set model.bitbyte_lm.d_model=32 --set model.bitbyte_lm.n_layer=2 --set model.bitbyte_lm.n_head=2
  --set model.bitbyte_lm.context=32 --set data.seq_len=32 --set data.batch_size=4
  --set optim.warmup_steps=3 --set log_every=0 --set eval.max_bytes=4096 --threads 2)
# The train graph's nodes, as its wiring describes them (`graph train`): the graph that runs must
# have exactly these. Only the few every train graph needs are named here.
"$BIN" graph train "${TINY[@]}" --format json --graph-out "$T/nodes.json" 2>/dev/null || true
TRAIN_NODES=$(json_get "$T/nodes.json" '" ".join(n["name"] for n in j["graphs"][0]["nodes"])')
for n in batch_source prefetch train_step eval metrics checkpoint; do
  [[ " $TRAIN_NODES " == *" $n "* ]] || { echo "not ok - graph train lacks node $n (nodes: $TRAIN_NODES)"; exit 1; }
done

# check_doc FILE: prints problems of a pipeline document (empty when fine): the format tag,
# every edge between known nodes, and with figures, counters that add up.
cat >"$T/check_doc.py" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
want_nodes = sys.argv[2].split() if len(sys.argv) > 2 else None
problems = []
if doc.get("format") != "bitbyte.pipeline/1":
    problems.append("format %r" % doc.get("format"))
for g in doc["graphs"]:
    names = [n["name"] for n in g["nodes"]]
    for e in g["edges"]:
        if e["from"] not in names or e["to"] not in names:
            problems.append("edge %s -> %s names an unknown node" % (e["from"], e["to"]))
        if e["kind"] not in ("data", "token"):
            problems.append("edge kind %r" % e["kind"])
    for n in g["nodes"]:
        if "total" not in n:
            continue
        if n["in"] < n["out"] and n["kind"] != "source":
            problems.append("%s: out %d > in %d" % (n["name"], n["out"], n["in"]))
        t = n["total"]
        if t["busy_pct"] is not None and abs(t["busy_pct"] + t["idle_pct"] + t["blocked_pct"] - 100) > 1e-6:
            problems.append("%s: busy+idle+blocked != 100" % n["name"])
if want_nodes is not None:
    got = [n["name"] for g in doc["graphs"] for n in g["nodes"]]
    if got != want_nodes:
        problems.append("nodes %s, want %s" % (got, want_nodes))
print("; ".join(problems))
EOF
check_doc() { python3 "$T/check_doc.py" "$@" 2>&1 || true; }

# tb_summary DIR: reads every event file of DIR in name order, checking both CRC32Cs of every
# record (a pure-Python CRC32C, independent of bitbyte's), and prints "files N", then per file
# its version, its SessionLog START step and the count of events per tag; or what is wrong.
cat >"$T/tb.py" <<'EOF'
import glob, os, struct, sys
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
def masked(b):
    c = crc32c(b)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
def varint(b, i):
    v = s = 0
    while True:
        x = b[i]; i += 1
        v |= (x & 0x7F) << s; s += 7
        if not x & 0x80:
            return v, i
def fields(b):  # (number, wire type, value) of a protobuf message, one level
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        n, w = key >> 3, key & 7
        if w == 0:
            v, i = varint(b, i)
        elif w == 1:
            v = b[i:i + 8]; i += 8
        elif w == 2:
            l, i = varint(b, i); v = b[i:i + l]; i += l
        elif w == 5:
            v = b[i:i + 4]; i += 4
        else:
            raise ValueError("wire type %d" % w)
        yield n, w, v
files = sorted(glob.glob(os.path.join(sys.argv[1], "events.out.tfevents.*")))
print("files", len(files))
for path in files:
    data = open(path, "rb").read()
    off = 0; tags = {}; start = None; version = None; k = 0
    while off < len(data):
        if len(data) - off < 12:
            print("torn header at", off); break
        (length,) = struct.unpack_from("<Q", data, off)
        (lcrc,) = struct.unpack_from("<I", data, off + 8)
        if masked(data[off:off + 8]) != lcrc:
            print("bad length crc, record", k); break
        rec = data[off + 12:off + 12 + length]
        (dcrc,) = struct.unpack_from("<I", data, off + 12 + length)
        if masked(rec) != dcrc:
            print("bad data crc, record", k); break
        step = 0
        for n, w, v in fields(rec):
            if n == 2: step = v
            if n == 3: version = v.decode()
            if n == 7: start = step
            if n == 5:
                for vn, vw, vv in fields(v):
                    if vn == 1:
                        tag = dict((a, c) for a, _, c in fields(vv)).get(1, b"").decode()
                        tags[tag] = tags.get(tag, 0) + 1
        off += 16 + length; k += 1
    print("version", version, "start", start, " ".join("%s=%d" % kv for kv in sorted(tags.items())))
EOF
tb_summary() { python3 "$T/tb.py" "$1" 2>&1 || true; }

bb shard "$CORPUS" --jsonl-field text -o ds -q --threads 2 --figures-every 0.2
SHARD_RC=$RC SHARD_ERR=$(errmsg)
# Evaluation is kept small (2 x 512 bytes, forward only, against 20 x 128 bytes forward and
# backward) so that train_step is the bottleneck by a wide margin (88% vs 25% busy here with the
# cores loaded): with 2 x 4096 bytes the two came within 10% and CI's machine named eval.
bb train --data ds -o A "${TINY[@]}" --set eval.every=10 --set eval.max_bytes=512 --set checkpoint.every=10 --steps 20 --figures-every 0.2
A_RC=$RC A_ERR=$(errmsg)

t_describe() {
  begin "graph train/shard: the job's nodes and edges without running it"
  bb_to train.json graph train "${TINY[@]}" --format json
  want_rc 0 "graph train --format json"
  local p
  p=$(check_doc train.json "$TRAIN_NODES")
  [[ -z $p ]] || fail "graph train json: $p"
  [[ $(json_get train.json '[n["concurrency"] for n in j["graphs"][0]["nodes"] if n["name"] == "prefetch"][0]') == 3 ]] ||
    fail "prefetch should hold the default 3 tokens"
  [[ $(json_get train.json '[n["queue_bound"] for n in j["graphs"][0]["nodes"] if n["name"] == "train_step"][0]') == 3 ]] ||
    fail "train_step's queue is bounded by the prefetch tokens"
  [[ $(json_get train.json '[e["kind"] for e in j["graphs"][0]["edges"] if e["to"] == "prefetch" and e["from"] == "train_step"]') == "['token']" ]] ||
    fail "train_step returns the prefetch tokens"
  [[ ! -e A2 ]] || fail "graph wrote a run directory"
  # The options reach the graph: another prefetch depth, another thread count.
  bb_to t5.json graph train "${TINY[@]}" --set data.prefetch=5 --format json
  [[ $(json_get t5.json '[n["concurrency"] for n in j["graphs"][0]["nodes"] if n["name"] == "prefetch"][0]') == 5 ]] ||
    fail "--set data.prefetch=5 not in the graph"
  bb_to shard.json graph shard --threads 3 --format json
  want_rc 0 "graph shard --format json"
  p=$(check_doc shard.json "enumerate read split order_docs route plan tokens compress order_frames write manifest")
  [[ -z $p ]] || fail "graph shard json: $p"
  [[ $(json_get shard.json '[n["concurrency"] for n in j["graphs"][1]["nodes"] if n["name"] == "tokens"][0]') == 12 ]] ||
    fail "--threads 3 should give 12 frame tokens"
  # Any job command line works prefixed with `graph`: the same options, the job's graph, nothing run.
  bb_to pre_shard.json graph shard "$CORPUS" --jsonl-field text -o pre_ds -q --threads 3 --figures-every 0.2 --stats \
    --format json
  want_rc 0 "graph + a shard command line"
  [[ ! -e pre_ds ]] || fail "graph shard -o pre_ds made the dataset"
  cmp -s pre_shard.json shard.json || fail "graph + the shard command: not the graph of graph shard --threads 3"
  bb_to pre_train.json graph train --data ds -o pre_run "${TINY[@]}" --steps 20 --figures-every 0.2 -q --stats \
    --print-config --format json
  want_rc 0 "graph + a train command line"
  [[ ! -e pre_run ]] || fail "graph train -o pre_run made a run directory"
  cmp -s pre_train.json train.json || fail "graph + the train command: not the graph of graph train"
  # --resume RUN_DIR describes the run's own config.
  bb_to r.json graph train --resume A --format json
  want_rc 0 "graph train --resume A"
  end
}

t_formats() {
  begin "graph: dot on stdout, svg and png through Graphviz, format from --graph-out's extension"
  bb graph train "${TINY[@]}"
  want_rc 0 "graph train"
  want_out "digraph" "graph train (dot)"
  for n in $TRAIN_NODES; do grep -q "\"g0_$n\"" "$T/out" || fail "dot lacks node $n"; done
  dot -Tcanon "$T/out" >/dev/null 2>"$T/dot.err" || fail "dot rejects the DOT: $(head -c 200 "$T/dot.err")"
  bb graph shard --graph-out g.svg
  want_rc 0 "graph shard --graph-out g.svg"
  head -c 400 g.svg | grep -q "<svg\|<?xml" || fail "g.svg is not SVG"
  grep -q "order_frames" g.svg || fail "g.svg lacks order_frames"
  bb graph train "${TINY[@]}" --graph-out g.png
  want_rc 0 "graph train --graph-out g.png"
  [[ $(head -c 4 g.png | od -An -tx1 | tr -d ' ') == 89504e47 ]] || fail "g.png is not a PNG"
  bb graph train "${TINY[@]}" --format json --graph-out g.dot
  [[ $(head -c 1 g.dot) == "{" ]] || fail "--format json should win over the extension"
  end
}

t_no_graphviz() {
  begin "graph --format svg without Graphviz: a clear message, exit 1; dot and json still work"
  RC=0
  { PATH=/nonexistent "$BIN" graph train "${TINY[@]}" --format svg >"$T/out" 2>"$T/err"; } 2>/dev/null || RC=$?
  want_rc 1 "svg without dot"
  want_err "graphviz" "svg without dot"
  RC=0
  { PATH=/nonexistent "$BIN" graph train "${TINY[@]}" --format dot >"$T/out" 2>"$T/err"; } 2>/dev/null || RC=$?
  want_rc 0 "dot without Graphviz"
  end
}

t_bad_graph_input() {
  begin "graph: bad options and bad --figures directories are refused naming them"
  bb graph train --set data.seq_len=abc
  want_rc 2 "graph train --set data.seq_len=abc"
  want_err "data.seq_len" "graph train --set data.seq_len=abc"
  bb graph train --format pdf
  want_rc 2 "--format pdf"
  bb graph train --figures nowhere
  want_rc 2 "--figures nowhere"
  want_err "nowhere" "--figures nowhere"
  mkdir -p empty
  bb graph train --figures empty
  want_rc 2 "--figures empty"
  want_err "pipeline.json" "--figures empty"
  bb graph train --figures ds
  want_rc 2 "--figures of a shard job as train"
  want_err "shard" "--figures of a shard job as train"
  mkdir -p torn && printf '{"format": "bitbyte.pipeline/1", "job": "train", "gra' >torn/pipeline.json
  bb graph train --figures torn
  want_rc 3 "--figures with a cut-off pipeline.json"
  # Wrong types where strings, numbers and arrays belong: exit 3 naming the file, or a drawing;
  # never a raw json type_error.
  local doc
  mkdir -p typed
  for doc in '{"graphs":5,"state":7}' '{"job":5,"graphs":[]}' \
    '{"format":"bitbyte.pipeline/1","job":"train","state":7,"pid":"x","graphs":[{"name":5,"state":[],"nodes":[{"name":"a","kind":1,"concurrency":"y","in":"z","window":{"busy_pct":"b"}}]}]}'; do
    printf '%s' "$doc" >typed/pipeline.json
    bb graph train --figures typed
    [[ $RC == 0 || $RC == 3 ]] || fail "graph --figures with $doc: exit $RC, want 0 or 3"
    grep -q "type_error" "$T/err" && fail "graph --figures with $doc: a raw json error ($(errmsg))"
    [[ $RC == 0 ]] || want_err "typed/pipeline.json" "graph --figures with $doc"
    bb top typed --once
    [[ $RC == 0 ]] || fail "top --once with $doc: exit $RC ($(errmsg))"
    grep -q "type_error" "$T/err" "$T/out" && fail "top --once with $doc: a raw json error"
  done
  printf '%s' '{"graphs":5,"state":7}' >typed/pipeline.json
  bb top typed --once
  want_out "pipeline.json is damaged" "top --once names the damaged file"
  bb graph
  want_rc 2 "graph without a job"
  end
}

t_figures_of_runs() {
  begin "pipeline.json of a train and a shard run: finished, counters add up, drawn with the bottleneck"
  [[ $SHARD_RC == 0 ]] || fail "shard exited $SHARD_RC ($SHARD_ERR)"
  [[ $A_RC == 0 ]] || fail "train exited $A_RC ($A_ERR)"
  local p
  p=$(check_doc A/pipeline.json "$TRAIN_NODES")
  [[ -z $p ]] || fail "A/pipeline.json: $p"
  [[ $(json_get A/pipeline.json 'j["state"]') == finished ]] || fail "train: state $(json_get A/pipeline.json 'j["state"]')"
  [[ $(json_get A/pipeline.json '[n["out"] for n in j["graphs"][0]["nodes"] if n["name"] == "train_step"][0]') == 20 ]] ||
    fail "train_step should have emitted 20 steps"
  [[ $(json_get A/pipeline.json '[n["out"] for n in j["graphs"][0]["nodes"] if n["name"] == "eval"][0]') == 20 ]] ||
    fail "eval sees every step (and evaluates the due ones)"
  [[ $(json_get A/pipeline.json 'j["graphs"][0]["bottleneck"]') == train_step ]] ||
    fail "bottleneck $(json_get A/pipeline.json 'j["graphs"][0]["bottleneck"]'), want train_step"
  p=$(check_doc ds/pipeline.json "enumerate read split order_docs route plan tokens compress order_frames write manifest")
  [[ -z $p ]] || fail "ds/pipeline.json: $p"
  [[ $(json_get ds/pipeline.json '[g["state"] for g in j["graphs"]]') == "['finished', 'finished']" ]] ||
    fail "shard graphs: $(json_get ds/pipeline.json '[g["state"] for g in j["graphs"]]')"
  bb verify ds -q
  want_rc 0 "verify with pipeline.json in the dataset"
  # A re-run of the same shard job keeps the dataset (pipeline.json is ours, not foreign).
  bb shard "$CORPUS" --jsonl-field text -o ds -q --threads 2
  want_rc 0 "shard re-run"
  bb graph train --figures A --graph-out A.dot
  want_rc 0 "graph train --figures A"
  grep -q 'BOTTLENECK\\ntrain_step' A.dot || fail "the drawing does not mark train_step as the bottleneck"
  grep -q 'fillcolor="#' A.dot || fail "no node coloured by busy %"
  grep -q 'busy [0-9]*%' A.dot || fail "no busy % on the nodes"
  bb graph shard --figures ds --graph-out ds.svg
  want_rc 0 "graph shard --figures ds --graph-out ds.svg"
  end
}

t_top() {
  begin "top: a frame of a finished run, a missing or empty directory, cut-off metrics lines"
  bb top A --once
  want_rc 0 "top A --once"
  want_out "state finished" "top A"
  want_out "step 20/20" "top A"
  want_out "bottleneck: train_step" "top A"
  for n in $TRAIN_NODES; do grep -q "^$n " "$T/out" || fail "top lacks node $n"; done
  bb top ds --once
  want_rc 0 "top on a dataset directory"
  want_out "graph shard.write" "top ds"
  bb top nowhere --once
  want_rc 2 "top nowhere"
  want_err "nowhere" "top nowhere"
  mkdir -p empty2
  bb top empty2 --once
  want_rc 2 "top on an empty directory"
  # A kill mid-append leaves a cut-off last line; a damaged line in the middle is skipped too.
  cp -r A B
  sed -i '5s/.*/{"step": 5, "loss": 3.1, garbage/' B/metrics.jsonl
  printf '{"step": 21, "loss": 2.' >>B/metrics.jsonl
  bb top B --once
  want_rc 0 "top with damaged metrics lines"
  want_out "2 damaged or cut-off metrics lines skipped" "top B"
  want_out "step 20/20" "top B"
  end
}

t_live() {
  begin "live: pipeline.json while training runs, top follows it, a kill -9 is seen as such"
  bg train --data ds -o L "${TINY[@]}" --set eval.every=50 --set checkpoint.every=50 --steps 100000 --figures-every 0.2
  local pid=$BG i ok=0
  for ((i = 0; i < 1500; i++)); do
    if [[ -f L/pipeline.json ]] &&
      [[ $(json_get L/pipeline.json '[n["out"] for n in j["graphs"][0]["nodes"] if n["name"] == "train_step"][0] >= 5') == True ]]; then
      ok=1
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  ((ok)) || fail "no pipeline.json with 5 steps done while training ($(errmsg "$T/bg.err"))"
  [[ $(json_get L/pipeline.json 'j["state"]') == running ]] || fail "state should be running"
  [[ $(json_get L/pipeline.json 'j["graphs"][0]["state"]') == running ]] || fail "graph state should be running"
  local p
  p=$(check_doc L/pipeline.json "$TRAIN_NODES")
  [[ -z $p ]] || fail "live pipeline.json: $p"
  # top refreshes until the job ends: here it ends by kill -9, seen through the pid.
  "$BIN" top L --interval 0.2 >"$T/top.out" 2>&1 &
  local top=$!
  # Kill only once top has drawn a frame of the running job: on a loaded machine top's own start
  # (loading its libraries) can take longer than any fixed sleep.
  for ((i = 0; i < 600; i++)); do
    grep -q "state running" "$T/top.out" 2>/dev/null && break
    kill -0 "$top" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
  reap "$pid"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$top" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$top" 2>/dev/null; then
    kill "$top" 2>/dev/null || true
    fail "top did not stop after the job was killed"
  fi
  wait "$top" 2>/dev/null || true
  grep -q "state running" "$T/top.out" || fail "top never showed the running job ($(head -c 300 "$T/top.out"))"
  grep -q "stopped without finishing" "$T/top.out" || fail "top did not say the job died ($(tail -c 300 "$T/top.out"))"
  bb graph train --figures L --graph-out L.dot
  want_rc 0 "graph --figures of a killed run"
  end

  begin "live: top started with the job follows it from its start to its end"
  bg train --data ds -o S "${TINY[@]}" --set eval.every=0 --set checkpoint.every=0 --steps 1500 --figures-every 0.2
  pid=$BG
  for ((i = 0; i < 500; i++)); do [[ -d S ]] && break; sleep 0.01; done
  RC=0
  timeout 120 "$BIN" top S --interval 0.1 >"$T/top2.out" 2>&1 || RC=$?
  want_rc 0 "top S"
  reap "$pid"
  want_rc 0 "train S"
  grep -q "state running" "$T/top2.out" || fail "top never showed the job running ($(head -c 300 "$T/top2.out"))"
  [[ $(grep -c "^bitbyte top:" "$T/top2.out") -ge 3 ]] || fail "top drew fewer than 3 frames"
  tail -n 20 "$T/top2.out" | grep -q "state finished" || fail "top's last frame is not the finished job ($(tail -c 300 "$T/top2.out"))"
  tail -n 20 "$T/top2.out" | grep -q "step 1500/1500" || fail "top's last frame lacks step 1500/1500"
  end
}

t_tensorboard() {
  begin "TensorBoard: every scalar in event files with valid CRCs; a resume starts a later file"
  local want="version brain.Event:2 start 1 train/bytes_per_s=20 train/ckpt_stall_s=2 train/data_wait_frac=20 train/grad_norm=20 train/loss=20 train/lr=20 val/bpb=2"
  tb_summary A >tb.out
  [[ $(head -1 tb.out) == "files 1" ]] || fail "A: $(head -1 tb.out), want 1 event file"
  [[ $(sed -n 2p tb.out) == "$want" ]] || fail "A: $(sed -n 2p tb.out | head -c 300), want $want"
  cp -r A R
  bb train --resume R --steps 30 --threads 2
  want_rc 0 "resume to 30 steps"
  tb_summary R >tb.out
  [[ $(head -1 tb.out) == "files 2" ]] || fail "R: $(head -1 tb.out), want 2 event files"
  [[ $(sed -n 3p tb.out) == "version brain.Event:2 start 21 "*"train/loss=10"*"val/bpb=1" ]] ||
    fail "R's second file: $(sed -n 3p tb.out | head -c 300), want START at 21, 10 losses and 1 val/bpb"
  end
}

group t_describe
group t_formats
group t_no_graphviz
group t_bad_graph_input
group t_figures_of_runs
group t_top
group t_live
group t_tensorboard
finish
