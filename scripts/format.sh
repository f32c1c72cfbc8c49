#!/usr/bin/env bash
# Formats bitbyte's C++ with clang-format (.clang-format), or with --check lists the files that
# differ and exits 1 (the `format` test). Usage: scripts/format.sh [--check] [SOURCE_DIR]
set -euo pipefail
check=0
if [[ ${1:-} == --check ]]; then
  check=1
  shift
fi
cd "${1:-$(dirname "$0")/..}"
command -v clang-format >/dev/null || { echo "format: clang-format is not installed (scripts/setup.sh installs it)" >&2; exit 2; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.h' '*.cc' | grep -v '^tests/fuzz/corpus/')
else
  mapfile -t files < <(find base pipeline sharding models runs train apps tests -name '*.h' -o -name '*.cc' | grep -v '^tests/fuzz/corpus/')
fi
if ((check)); then
  existing=()
  for f in "${files[@]}"; do [[ -f $f ]] && existing+=("$f"); done
  # One clang-format for every file (one process each took 20 s of the test run): each
  # difference is a "FILE:LINE:COL: error: code should be clang-formatted" line.
  rc=0
  report="$(clang-format --dry-run -Werror "${existing[@]}" 2>&1 >/dev/null)" || rc=$?
  if ((rc == 0)); then
    echo "format: ${#existing[@]} files follow .clang-format"
    exit 0
  fi
  mapfile -t bad < <(sed -n 's/^\(.*\):[0-9]*:[0-9]*: error: .*/\1/p' <<<"$report" | sort -u)
  ((${#bad[@]} > 0)) || { echo "format: clang-format failed (exit $rc): $report" >&2; exit 2; }
  for f in "${bad[@]}"; do echo "format: $f is not formatted (scripts/format.sh formats it)" >&2; done
  exit 1
fi
clang-format -i "${files[@]}"
