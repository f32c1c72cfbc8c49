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
  bad=0
  for f in "${files[@]}"; do
    [[ -f $f ]] || continue
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
      echo "format: $f is not formatted (scripts/format.sh formats it)" >&2
      bad=1
    fi
  done
  ((bad == 0)) && echo "format: ${#files[@]} files follow .clang-format"
  exit $bad
fi
clang-format -i "${files[@]}"
