#!/usr/bin/env bash
# Rules of the source tree, checked by the `tree` test (ctest) and at the start of scripts/test.sh:
#  1. Layers: a folder includes headers only from the folders below it (CMakeLists.txt, "Layers").
#  2. No LibTorch outside models/ and the trainer's files of train/ (and apps/, tests/): base,
#     pipeline, sharding and runs build without it, and so does the train graph (the tsan preset
#     builds them with -DBITBYTE_TORCH=OFF, which proves it for whole libraries).
#  3. No tracked file over 1 MB outside data/ (a corpus belongs in data/, anything else that big
#     is an accident).
#  4. No tbb::detail spelled anywhere: oneTBB's internals change between releases.
# Usage: scripts/check_tree.sh [SOURCE_DIR]   (exit 1 naming each breach)
set -u
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root" || exit 2
bad=0
breach() {
  echo "check_tree: $*" >&2
  bad=1
}

declare -A allowed=(
  [base]="base"
  [pipeline]="base pipeline"
  [sharding]="base pipeline sharding"
  [models]="base models"
  [runs]="base pipeline runs"
  [train]="base pipeline sharding models runs train"
  [apps]="base pipeline sharding models runs train apps"
)
for dir in "${!allowed[@]}"; do
  [[ -d $dir ]] || { breach "folder $dir/ is missing"; continue; }
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    [[ $rest =~ \#include\ \"([^\"]+)\" ]] || continue
    inc=${BASH_REMATCH[1]}
    top=${inc%%/*}
    [[ $inc == */* ]] || continue  # a header next to the file
    [[ -d $top ]] || continue      # not one of ours (generated headers keep their folder's name)
    if [[ " ${allowed[$dir]} " != *" $top "* ]]; then
      breach "$file:$line includes \"$inc\": $dir/ may use only ${allowed[$dir]// /, }"
    fi
  done < <(grep -n '^#include "' "$dir"/*.h "$dir"/*.cc 2>/dev/null)
done

for dir in base pipeline sharding runs; do
  while IFS= read -r hit; do
    breach "$hit: LibTorch in $dir/, which builds without it"
  done < <(grep -nE '^#include <(torch|ATen|c10)/' "$dir"/*.h "$dir"/*.cc 2>/dev/null)
done

while IFS= read -r hit; do
  breach "$hit: oneTBB internals (tbb::detail); use the public API"
done < <(grep -rnE 'tbb::detail|tbb/detail/' --include=*.h --include=*.cc base pipeline sharding models runs train apps 2>/dev/null)

if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  files=$(git -C "$root" ls-files)
else
  files=$(find . -path ./build -prune -o -type f -print | sed 's#^\./##')
fi
# One stat for every file (one each took seconds of the test run).
while IFS=' ' read -r size f; do
  [[ $f == data/* ]] && continue
  ((size > 1048576)) && breach "$f is $size bytes: files over 1 MB belong in data/ (or nowhere)"
done < <(while IFS= read -r f; do [[ -n $f && -f $f ]] && printf '%s\0' "$f"; done <<<"$files" |
  xargs -0 -r stat -c '%s %n')

if ((bad)); then exit 1; fi
echo "check_tree: layers, LibTorch-free folders, no tbb::detail, file sizes ok"
