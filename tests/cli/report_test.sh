#!/usr/bin/env bash
# End-to-end tests of `bitbyte report` on tiny runs trained on the shipped corpus
# (data/moby-dick.jsonl.zst), checked in a real headless browser (Debian's chromium): the page
# is self-contained (no URL, no external file), runs without a script error, draws every chart
# (on a step and on a wall-time x axis) and every node of the pipeline graph(s) with the
# bottleneck marked, and renders to a screenshot. Also: bad input (no run directory: exit 2), a
# directory with only config.txtpb, torn and garbage metrics lines, a report taken while the run
# is training (it says so) and after a kill -9 (interrupted), and a shard job's directory (two
# graphs).
# Run by ctest as
#   bash tests/cli/report_test.sh /path/to/bitbyte /path/to/source-root
# Prints "ok - NAME" or "not ok - NAME: details" per check, then "N passed, M failed" alone on
# the last line; exits 1 when any check failed. A failing check does not stop the others.
# Needs bash, coreutils, grep, python3 (standard library only) and Debian's chromium
# (scripts/setup.sh installs it; CHROMIUM=path overrides /usr/bin/chromium). Without a browser
# the script exits 2: the browser checks are never skipped.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

parse_args "$@"
need_tools grep sed head tail wc cp mkdir python3 timeout
CORPUS=$SRC_ROOT/data/moby-dick.jsonl.zst
[[ -f $CORPUS ]] || { echo "$0: no corpus at $CORPUS" >&2; exit 2; }
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
  echo "$0: no browser at $CHROMIUM (scripts/setup.sh installs Debian's chromium)" >&2
  exit 2
fi

export LC_ALL=C
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
unset BITBYTE_CRASH_AFTER_WRITES BITBYTE_TEST_NAN_AT_STEP
make_test_dir bitbyte-report-test 131072
# shellcheck disable=SC2034  # read by group (harness.sh)
GROUP_TIMES=1

errmsg() { tail -c 500 "${1:-$T/err}" | tr '\n' ' '; }
outmsg() { head -c 300 "$T/out" | tr '\n' ' '; }

# ---------------------------------------------------------------------------------------------
# The browser. Every run gets a fresh profile and no network: the page must need none.

CHROME_FLAGS=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --disable-default-apps --disable-extensions --mute-audio
  --virtual-time-budget=5000 --enable-logging=stderr --v=0)
# browse PREFIX ARGS...: runs chromium; stdout in PREFIX.out, stderr in PREFIX.err, status in BRC.
browse() {
  local prefix=$1 profile
  shift
  profile=$(mktemp -d "$T/profile.XXXXXX")
  BRC=0
  timeout 120 "$CHROMIUM" "${CHROME_FLAGS[@]}" --user-data-dir="$profile" "$@" >"$prefix.out" 2>"$prefix.err" || BRC=$?
  rm -rf "$profile"
}
# console_lines FILE: the browser's console messages and uncaught errors in a chromium stderr.
console_lines() { grep -E ':CONSOLE[:(]|Uncaught' "$1" | head -5 || true; }

# check_dom.py DOM_FILE PIPELINE_JSON|- MODE: the rendered page has no script error, every
# chart has a plotted line of more than one point, every node of every graph of PIPELINE_JSON
# is drawn and the bottleneck is marked. Prints one line per problem; exit 1 when any.
cat >"$T/check_dom.py" <<'EOF'
import json, sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""
    def classes(self):
        return (self.attrs.get("class") or "").split()
    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()
    def all_text(self):
        return self.text + "".join(c.all_text() for c in self.children)

class Tree(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [], None)
        self.cur = self.root
    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n
    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))
    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent
    def handle_data(self, data):
        self.cur.text += data

dom_file, pipeline_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
t = Tree()
t.feed(open(dom_file, encoding="utf-8", errors="replace").read())
problems = []
nodes = list(t.root.walk())
body = next((n for n in nodes if n.tag == "body"), None)
if body is None:
    print("no <body> in the dumped DOM")
    sys.exit(1)
if body.attrs.get("data-errors") != "0":
    errors = next((n for n in nodes if n.attrs.get("id") == "script-errors"), None)
    problems.append("data-errors is %r: %s" % (body.attrs.get("data-errors"), (errors.all_text() if errors else "")[:300]))
if body.attrs.get("data-rendered") != "1":
    problems.append("data-rendered is %r (the report script did not finish)" % body.attrs.get("data-rendered"))
if body.attrs.get("data-xaxis") != mode:
    problems.append("data-xaxis is %r, want %r" % (body.attrs.get("data-xaxis"), mode))
by_id = {n.attrs["id"]: n for n in nodes if "id" in n.attrs}
for chart in ["loss", "bpb", "throughput", "wait", "stall"]:
    fig = by_id.get("chart-" + chart)
    if fig is None:
        problems.append("no chart-%s" % chart)
        continue
    svgs = [n for n in fig.walk() if n.tag == "svg" and "chart-svg" in n.classes()]
    if not svgs:
        problems.append("chart-%s has no SVG" % chart)
        continue
    lines = [n for n in svgs[0].walk() if n.tag in ("polyline", "path") and "series" in n.classes()]
    points = len(lines[0].attrs.get("points", "").split()) if lines else 0
    if points < 2:
        problems.append("chart-%s plots %d points, want more than 1" % (chart, points))
    ticks = [n for n in svgs[0].walk() if n.tag == "text" and "tick" in n.classes()]
    labels = [n for n in svgs[0].walk() if n.tag == "text" and "axis-label" in n.classes()]
    if len(ticks) < 4 or len(labels) != 2:
        problems.append("chart-%s has %d tick labels and %d axis labels" % (chart, len(ticks), len(labels)))
if pipeline_file != "-":
    p = json.load(open(pipeline_file))
    for gi, g in enumerate(p.get("graphs", [])):
        svg = next((n for n in nodes if n.tag == "svg" and n.attrs.get("data-graph-index") == str(gi)), None)
        if svg is None:
            problems.append("graph %s is not drawn" % g.get("name"))
            continue
        drawn = {n.attrs.get("data-name"): n for n in svg.walk() if n.tag == "g" and "node" in n.classes()}
        missing = [n["name"] for n in g.get("nodes", []) if n["name"] not in drawn]
        if missing:
            problems.append("graph %s lacks nodes %s" % (g.get("name"), missing))
        marked = [name for name, n in drawn.items() if "bottleneck" in n.classes()]
        want = [g["bottleneck"]] if g.get("bottleneck") else []
        if marked != want:
            problems.append("graph %s marks %s as bottleneck, want %s" % (g.get("name"), marked, want))
        for name in want:
            if name in drawn and "bottleneck" not in drawn[name].all_text():
                problems.append("bottleneck %s has no 'bottleneck' tag" % name)
        edges = [n for n in svg.walk() if n.tag == "path" and "edge" in n.classes()]
        if len(edges) != len(g.get("edges", [])):
            problems.append("graph %s draws %d edges, pipeline.json has %d" % (g.get("name"), len(edges), len(g.get("edges", []))))
        tokens = [e for e in g.get("edges", []) if e.get("kind") == "token"]
        dashed = [n for n in edges if "token" in n.classes()]
        if len(dashed) != len(tokens):
            problems.append("graph %s draws %d token edges, pipeline.json has %d" % (g.get("name"), len(dashed), len(tokens)))
for line in problems:
    print(line)
sys.exit(1 if problems else 0)
EOF

# check_page HTML PIPELINE_JSON|- WHAT [MODE]: loads HTML in the browser and checks the DOM
# (check_dom.py) and the console.
check_page() {
  local html=$1 pipeline=$2 what=$3 mode=${4:-step} url out
  url="file://$(cd "$(dirname "$html")" && pwd)/$(basename "$html")"
  [[ $mode == wall ]] && url+="#wall"
  browse "$T/dom" --dump-dom "$url"
  if [[ $BRC != 0 ]]; then
    fail "$what: chromium --dump-dom exited $BRC ($(errmsg "$T/dom.err"))"
    return 0
  fi
  out=$(python3 "$T/check_dom.py" "$T/dom.out" "$pipeline" "$mode" 2>&1) || fail "$what: $(echo "$out" | tr '\n' ';')"
  out=$(console_lines "$T/dom.err")
  [[ -z $out ]] || fail "$what: browser console: $(echo "$out" | tr '\n' ' ' | head -c 400)"
}

# self_contained HTML WHAT: nothing in the page loads a file or a URL.
self_contained() {
  local out
  out=$(python3 - "$1" <<'EOF'
import re, sys
html = open(sys.argv[1], encoding="utf-8", errors="replace").read()
bad = []
for name, pattern in [("a URL", r"\b(?:https?|ftp|wss?)://"), ("a protocol-relative URL", r"[\"'(=]\s*//[a-z0-9]"),
                      ("<link>", r"<link\b"), ("@import", r"@import"), ("a src attribute", r"\bsrc\s*="),
                      ("an href attribute", r"\bhref\s*="), ("a CSS url()", r"url\(\s*['\"]?(?!#)"),
                      ("<iframe>/<object>/<embed>/<img>", r"<(?:iframe|object|embed|img)\b"),
                      ("import(", r"\bimport\s*\("), ("fetch or XHR", r"\bfetch\s*\(|XMLHttpRequest|WebSocket")]:
    m = re.search(pattern, html, re.I)
    if m:
        bad.append("%s at byte %d: %r" % (name, m.start(), html[max(0, m.start() - 30):m.end() + 30]))
scripts = re.findall(r"<script\b[^>]*>", html, re.I)
if len(scripts) != 3 or any("src" in s for s in scripts):
    bad.append("scripts: %r (want 3 inline ones)" % scripts)
if not re.search(r'<script type="application/json" id="bitbyte-data">', html):
    bad.append("no bitbyte-data script")
print("; ".join(bad))
sys.exit(1 if bad else 0)
EOF
  ) || fail "$2: not self-contained: $out"
}

# ---------------------------------------------------------------------------------------------
# Fixtures: the dataset and a finished run R.

TINY=(--set model.bitbyte_lm.d_model=32 --set model.bitbyte_lm.n_layer=2 --set model.bitbyte_lm.n_head=2
  --set model.bitbyte_lm.context=32 --set data.seq_len=32 --set data.batch_size=4
  --set optim.warmup_steps=3 --set log_every=0 --set eval.max_bytes=4096 --threads 2)
STEPS=30
bb shard "$CORPUS" --jsonl-field text -o ds -q --threads 2
SHARD_RC=$RC SHARD_ERR=$(errmsg)
bb train --data ds -o R "${TINY[@]}" --set eval.every=10 --set checkpoint.every=5 --steps "$STEPS"
R_RC=$RC R_ERR=$(errmsg)
R_PIPELINE=-
[[ -f R/pipeline.json ]] && R_PIPELINE=$T/R/pipeline.json

t_report() {
  begin "report of a finished run: written, path on stdout, no warning, summary and sections"
  [[ $SHARD_RC == 0 ]] || fail "shard exited $SHARD_RC ($SHARD_ERR)"
  [[ $R_RC == 0 ]] || fail "train exited $R_RC ($R_ERR)"
  bb report R
  want_rc 0 "report R"
  [[ $(cat "$T/out") == R/report.html ]] || fail "stdout is '$(outmsg)', want R/report.html"
  [[ -s R/report.html ]] || fail "no R/report.html"
  ! grep -q 'warning:' "$T/err" || fail "warnings for a finished run: $(errmsg)"
  local f
  for f in 'id="summary"' 'id="pipeline"' 'id="charts"' 'id="config"' 'id="environment"' 'id="checkpoints"' \
    ">finished<" "$STEPS of $STEPS (100%)" 'libtorch' 'blas_core' 'd_model: 32' 'data-errors="0"'; do
    grep -qF -- "$f" R/report.html || fail "R/report.html lacks '$f'"
  done
  ! grep -q 'id="problems"' R/report.html || fail "a problems panel for a finished run"
  bb report R -o other.html
  want_rc 0 "report R -o other.html"
  [[ $(cat "$T/out") == other.html && -s other.html ]] || fail "-o other.html: stdout '$(outmsg)'"
  bb report --help
  want_rc 0 "report --help"
  want_out "RUN_DIR/report.html" "report --help"
  end

  begin "the page is self-contained: no URL, no link, no external script or style"
  self_contained R/report.html "R/report.html"
  # The check can fail: a page with one external reference is refused.
  sed 's|<style>|<link rel="stylesheet" href="https://example.invalid/x.css"><style>|' R/report.html >ext.html
  (ERRS="" && self_contained ext.html "ext" && [[ -n $ERRS ]]) || fail "self_contained accepts a page with a <link>"
  end
}

t_browser() {
  begin "browser: no script error, every chart plotted, every graph node drawn, the bottleneck marked"
  [[ $R_PIPELINE != - ]] || echo "# R has no pipeline.json: the graph checks use the fixture run only"
  check_page R/report.html "$R_PIPELINE" "R/report.html"
  end

  begin "browser: the wall-time x axis (report.html#wall) plots every chart too"
  check_page R/report.html "$R_PIPELINE" "R/report.html#wall" wall
  end

  begin "browser: hovering shows each chart's tooltip, the toggle switches the x axis (report.html#selftest)"
  browse "$T/dom" --dump-dom "file://$T/R/report.html#selftest"
  local selftest
  selftest=$(sed -n 's/.*<body[^>]* data-selftest="\([^"]*\)".*/\1/p' "$T/dom.out" | head -1)
  [[ $selftest == ok ]] || fail "self-test: '${selftest:-not run}'"
  # It can fail: a tooltip that never shows.
  sed 's|tip.hidden = false;|tip.hidden = true;|' R/report.html >notip.html
  browse "$T/dom" --dump-dom "file://$T/notip.html#selftest"
  grep -q 'data-selftest="fail: no tooltip over chart loss' "$T/dom.out" || fail "the self-test passes a page without tooltips"
  end

  begin "browser: the checks fail on a page with a script error, an empty chart or a missing node"
  # A thrown error and a console.error are both counted.
  sed 's|</body>|<script>console.error("planted");</script></body>|' R/report.html >bad1.html
  (ERRS="" && check_page bad1.html - bad1 && [[ -n $ERRS ]]) || fail "a console.error went unnoticed"
  sed 's|"loss":\[[^]]*\]|"loss":[]|' R/report.html >bad2.html
  (ERRS="" && check_page bad2.html - bad2 && [[ -n $ERRS ]]) || fail "an empty loss chart went unnoticed"
  if [[ $R_PIPELINE != - ]]; then
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j["graphs"][0]["nodes"].append({"name":"ghost","kind":"function"}); json.dump(j,open(sys.argv[2],"w"))' \
      "$R_PIPELINE" ghost.json
    (ERRS="" && check_page R/report.html "$T/ghost.json" ghost && [[ -n $ERRS ]]) || fail "a missing node went unnoticed"
  fi
  end

  begin "browser: a screenshot of the page (1280x3000 PNG)"
  local profile_png="$T/shot.png" size dims
  browse "$T/shot" --hide-scrollbars --window-size=1280,3000 --screenshot="$profile_png" "file://$T/R/report.html"
  [[ $BRC == 0 ]] || fail "chromium --screenshot exited $BRC ($(errmsg "$T/shot.err"))"
  if [[ -f $profile_png ]]; then
    size=$(wc -c <"$profile_png")
    dims=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print("%dx%d" % struct.unpack(">II", d[16:24]) if d[:8]==b"\x89PNG\r\n\x1a\n" else "not a PNG")' "$profile_png")
    [[ $dims == 1280x3000 ]] || fail "screenshot is $dims, want 1280x3000"
    ((size > 60000)) || fail "screenshot is only $size bytes (a blank page?)"
    echo "# screenshot: $size bytes"
    if [[ -n ${REPORT_TEST_KEEP_SCREENSHOT:-} ]]; then cp "$profile_png" "$REPORT_TEST_KEEP_SCREENSHOT"; fi
  else
    fail "no screenshot written"
  fi
  end
}

# A run directory with a hand-made pipeline.json (the train graph, one token edge, a running
# state with window figures) next to R's real files: the graph is drawn whatever the run wrote.
t_fixture_graph() {
  begin "a hand-made pipeline.json: every node drawn, the bottleneck marked, figures in the table"
  rm -rf F && mkdir F && cp R/run.json R/config.txtpb R/metrics.jsonl F/
  python3 - F/pipeline.json <<'EOF'
import json, sys
kinds = [("batch_source", "source", 1), ("prefetch", "limiter", 3), ("prepare", "function", 0), ("order", "sequencer", 1),
         ("train_step", "function", 1), ("metrics_order", "sequencer", 1), ("eval", "function", 1),
         ("metrics", "function", 1), ("checkpoint", "function", 1)]
nodes = []
for i, (name, kind, conc) in enumerate(kinds):
    work = kind not in ("limiter", "sequencer")
    busy = 97.0 if name == "train_step" else 9.0 * i
    fig = lambda b: {"seconds": 2.0, "busy_pct": b if work else None, "idle_pct": 100 - b if work else None,
                     "blocked_pct": 0.0 if work else None, "items_per_s": 12.0, "bytes_per_s": 49152.0}
    nodes.append({"name": name, "kind": kind, "concurrency": conc, "queue_bound": 3 if name == "prefetch" else None,
                  "in": 120, "out": 119, "queue": 1, "in_flight": 1, "bytes": 487424, "busy_s": 9.5 if work else None,
                  "blocked_s": 0.0 if work else None, "window": fig(busy), "total": fig(busy - 2 if work else 0)})
e = lambda a, b, label, kind="data": {"from": a, "to": b, "label": label, "kind": kind}
edges = [e("batch_source", "prefetch", "step"), e("prefetch", "prepare", "step"), e("prepare", "order", "batch"),
         e("order", "train_step", "batch, in step order"), e("train_step", "prefetch", "token returned", "token"),
         e("train_step", "metrics_order", "step figures"), e("metrics_order", "metrics", "in step order"),
         e("train_step", "eval", "weights snapshot"), e("eval", "metrics", "val bpb"), e("metrics", "checkpoint", "snapshot")]
doc = {"format": "bitbyte.pipeline/1", "job": "train", "state": "finished", "pid": 12345, "host": "fixture.invalid",
       "started_unix": 1763913330.5, "updated_unix": 1763913340.5, "interval_s": 2.0, "threads": 2,
       "graphs": [{"name": "train", "state": "finished", "elapsed_s": 10.0, "bottleneck": "train_step",
                   "nodes": nodes, "edges": edges}]}
json.dump(doc, open(sys.argv[1], "w"), indent=1)
EOF
  bb report F
  want_rc 0 "report F"
  grep -qF '<td>train_step <span class="tag">bottleneck</span>' F/report.html || fail "the node table does not mark train_step"
  grep -qF '476 KiB' F/report.html || fail "the node table lacks train_step's bytes (476 KiB)"
  check_page F/report.html "$T/F/pipeline.json" "F/report.html"
  end

  begin "a shard job's dataset directory: both graphs drawn, no training file expected"
  if [[ -f ds/pipeline.json ]]; then
    bb report ds -o ds-report.html
    want_rc 0 "report ds"
    ! grep -q 'warning:' "$T/err" || fail "warnings for a dataset directory: $(errmsg)"
    grep -qF 'data-graph="shard.scan"' ds-report.html || fail "no shard.scan graph"
    grep -qF 'data-graph="shard.write"' ds-report.html || fail "no shard.write graph"
    # A dataset has no metrics: only the graph checks apply (the charts say "no data").
    browse "$T/dom" --dump-dom "file://$T/ds-report.html"
    local out
    out=$(python3 "$T/check_dom.py" "$T/dom.out" "$T/ds/pipeline.json" step 2>&1 | grep -v '^chart-' || true)
    [[ -z $out ]] || fail "ds-report.html: $(echo "$out" | tr '\n' ';')"
    out=$(console_lines "$T/dom.err")
    [[ -z $out ]] || fail "ds-report.html: browser console: $out"
  else
    echo "# ds has no pipeline.json (bitbyte shard does not write it yet)"
  fi
  end
}

t_bad_input() {
  begin "no such run directory: exit 2, naming it; a file or an empty directory: exit 2"
  bb report nowhere
  want_rc 2 "report nowhere"
  want_err "nowhere" "report nowhere"
  want_err "does not exist" "report nowhere"
  echo x >afile
  bb report afile
  want_rc 2 "report afile"
  want_err "not a directory" "report afile"
  mkdir -p empty
  bb report empty
  want_rc 2 "report empty"
  want_err "not a run directory" "report empty"
  [[ ! -e empty/report.html ]] || fail "a report was written into an empty directory"
  bb report
  want_rc 2 "report without RUN_DIR"
  end

  begin "an output that cannot be written: exit 1, naming it"
  bb report R -o no/such/dir/r.html
  want_rc 1 "report -o no/such/dir/r.html"
  want_err "no/such/dir" "report -o no/such/dir/r.html"
  mkdir -p outdir
  bb report R -o outdir
  want_rc 1 "report -o DIRECTORY"
  want_err "outdir" "report -o DIRECTORY"
  [[ ! -e outdir.tmp ]] || fail "report -o DIRECTORY left outdir.tmp behind"
  end

  begin "a directory with only config.txtpb: written, exit 0, the missing files named"
  rm -rf C && mkdir C && cp R/config.txtpb C/
  bb report C
  want_rc 0 "report C"
  local f
  for f in run.json metrics.jsonl pipeline.json; do
    want_err "warning: $f is missing" "report C"
    grep -qF "$f is missing" C/report.html || fail "C/report.html does not say $f is missing"
  done
  grep -qF "0 of $STEPS" C/report.html || fail "C/report.html lacks '0 of $STEPS' steps"
  browse "$T/dom" --dump-dom "file://$T/C/report.html"
  grep -q 'data-errors="0"' "$T/dom.out" || fail "C/report.html: script errors in the browser"
  grep -q 'data-rendered="1"' "$T/dom.out" || fail "C/report.html: the script did not finish"
  end

  begin "metrics.jsonl with a garbage middle line and a torn last line: 2 lines skipped"
  rm -rf M && cp -r R M && rm -f M/report.html
  python3 - M/metrics.jsonl <<'EOF'
import sys
lines = open(sys.argv[1], "rb").read().split(b"\n")[:-1]
lines.insert(len(lines) // 2, b"\x00\xffnot json at all {")
data = b"\n".join(lines) + b"\n" + b'{"step":31,"loss":4.1,"lr":0.00'
open(sys.argv[1], "wb").write(data)
EOF
  bb report M
  want_rc 0 "report M"
  want_err "2 lines skipped" "report M"
  grep -qF "2 lines skipped" M/report.html || fail "M/report.html does not say '2 lines skipped'"
  grep -qF "last line is torn" M/report.html || fail "M/report.html does not say the last line is torn"
  grep -qF "$STEPS of $STEPS" M/report.html || fail "M/report.html lost step records"
  check_page M/report.html - "M/report.html"
  end
}

t_live() {
  begin "a report while the run trains: exit 0, it says the run is still being written"
  rm -rf L
  bg train --data ds -o L "${TINY[@]}" --set eval.every=3 --set checkpoint.every=3 --steps 100000
  local i ok=0
  # Enough records for every chart: 5 steps, 2 evaluations, 2 checkpoint stalls.
  for ((i = 0; i < 3000; i++)); do
    if [[ -f L/metrics.jsonl ]] && (($(grep -c '"loss"' L/metrics.jsonl || true) >= 5)) &&
      (($(grep -c '"val_bpb"' L/metrics.jsonl || true) >= 2)) &&
      (($(grep -c '"ckpt_stall_s"' L/metrics.jsonl || true) >= 2)); then ok=1 && break; fi
    kill -0 "$BG" 2>/dev/null || break
    sleep 0.02
  done
  ((ok)) || fail "the run wrote no 5 step, 2 evaluation and 2 checkpoint records ($(errmsg "$T/bg.err"))"
  bb report L
  want_rc 0 "report L while training"
  want_err "still being written" "report L while training"
  grep -qF "still being written" L/report.html || fail "L/report.html does not say it is still being written"
  grep -qF 'data-state="running"' L/report.html || fail "L/report.html: state is not running"
  check_page L/report.html - "L/report.html (live)"
  kill -TERM "$BG" 2>/dev/null || true
  reap "$BG"
  [[ $RC == 0 ]] || fail "train exited $RC after SIGTERM ($(errmsg "$T/bg.err"))"
  bb report L
  want_rc 0 "report L after the run"
  ! grep -qF "still being written" L/report.html || fail "L/report.html still says it is being written"
  grep -qF 'data-state="running"' L/report.html && fail "L/report.html: still running after the run ended"
  end

  begin "a report after kill -9: exit 0, the run is interrupted, not running"
  rm -rf K
  bg train --data ds -o K "${TINY[@]}" --set eval.every=20 --set checkpoint.every=20 --steps 100000
  ok=0
  for ((i = 0; i < 3000; i++)); do
    # Wait for pipeline.json too, when the job writes one (every 2 s), so it says "running".
    if [[ -f K/metrics.jsonl ]] && (($(grep -c '"loss"' K/metrics.jsonl || true) >= 5)) &&
      { [[ -f K/pipeline.json ]] || ((i > 250)); }; then ok=1 && break; fi
    kill -0 "$BG" 2>/dev/null || break
    sleep 0.02
  done
  ((ok)) || fail "the run wrote no 5 step records ($(errmsg "$T/bg.err"))"
  kill -9 "$BG" 2>/dev/null || true
  reap "$BG"
  bb report K
  want_rc 0 "report K after kill -9"
  grep -qF 'data-state="interrupted"' K/report.html || fail "K/report.html: state is not interrupted ($(grep -o 'data-state="[a-z]*"' K/report.html))"
  ! grep -qF "still being written" K/report.html || fail "K/report.html says it is still being written"
  if [[ -f K/pipeline.json ]]; then want_err "killed or crashed" "report K after kill -9"; fi
  end
}

group t_report
group t_browser
group t_fixture_graph
group t_bad_input
group t_live

finish
