#!/usr/bin/env bash
# The main job on the default corpus shipped with bitbyte (Moby-Dick, one document per chapter):
# install dependencies, build, shard, inspect and verify. Usage: scripts/demo.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/demo}"
scripts/setup.sh
scripts/build.sh release
bin=build/release/bin/bitbyte

echo "== shard the default corpus (data/moby-dick.jsonl.zst) =="
"$bin" shard data/moby-dick.jsonl.zst --jsonl-field text -o "$out/moby" --stats
echo "== inspect =="
"$bin" inspect "$out/moby"
echo "== verify =="
"$bin" verify "$out/moby"
echo
echo "dataset written to $out/moby (manifest: $out/moby/manifest.pb; format: docs/shard-format.md)"
