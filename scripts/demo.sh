#!/usr/bin/env bash
# The main job on the default corpus shipped with bitbyte (Moby-Dick, one document per chapter):
# install dependencies, build, shard, train a small BitByteLM for a few minutes on the CPU,
# evaluate its validation bpb, print a sample, and write the run's HTML report and the drawing
# of its training graph with per-node figures. Usage: scripts/demo.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/demo}"
scripts/setup.sh
scripts/build.sh release
bin=build/release/bin/bitbyte

echo "== shard the default corpus (data/moby-dick.jsonl.zst) =="
"$bin" shard data/moby-dick.jsonl.zst --jsonl-field text -o "$out/moby" --stats
"$bin" verify "$out/moby"
"$bin" inspect "$out/moby"

echo "== train a small BitByteLM (configs/demo.txtpb) =="
if [ -e "$out/run/config.txtpb" ]; then
  # A re-run continues (or, when finished, just reports) the earlier run.
  "$bin" train --resume "$out/run" --stats
else
  "$bin" train --data "$out/moby" --out "$out/run" --config configs/demo.txtpb --stats
fi

echo "== evaluate: bits per byte on the validation split =="
"$bin" eval --checkpoint "$out/run" --data "$out/moby"

echo "== generate =="
"$bin" generate --checkpoint "$out/run" --prompt "Call me Ishmael. " -n 300 --temperature 0.8 --top-k 40 --seed 1
echo

echo "== report and graph =="
"$bin" report "$out/run" -o "$out/report.html"
"$bin" graph train --figures "$out/run" --graph-out "$out/train-graph.svg"
echo "dataset: $out/moby (format: docs/shard-format.md)"
echo "run:     $out/run (metrics.jsonl, pipeline.json, checkpoints/, TensorBoard events; layout: docs/training.md)"
echo "report:  $out/report.html (open it in a browser; no network needed)"
echo "graph:   $out/train-graph.svg (the training graph as it ran, coloured by busy %; docs/pipeline.md)"
