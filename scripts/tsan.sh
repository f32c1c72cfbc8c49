#!/usr/bin/env bash
# ThreadSanitizer: builds the `tsan` preset (clang -fsanitize=thread; the Torch-free part:
# sharding, pipeline and their tests, including every shard-job graph test) and runs its tests
# with ctest. TSan only sees synchronisation done by instrumented code, and Debian's libtbb is not
# instrumented: every hand-over of a flow-graph task would be reported as a race. So oneTBB
# itself is built with TSan first, from the source of the version Debian installed (apt-get
# source), once, into build/tsan-deps/. No suppressions: every report fails the run.
# Usage: scripts/tsan.sh [CTEST ARGS...]   e.g. scripts/tsan.sh -R ShardJob
set -euo pipefail
cd "$(dirname "$0")/.."

deps="$PWD/build/tsan-deps"  # the tsan preset's TBB_DIR is $deps/prefix/lib/cmake/TBB

# The source of the very oneTBB Debian installed (libtbb-dev), fetched with apt, which checks it
# against the archive's signed index. apt needs deb-src entries: when none are configured, they
# are added beside the machine's own deb entries (same mirrors, suites and keys).
fetch_tbb_source() {
  local version src_list=/etc/apt/sources.list.d/bitbyte-deb-src.sources f
  version="$(dpkg-query -W -f='${source:Version}' libtbb-dev)"
  if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "tsan: adding deb-src entries for apt ($src_list)" >&2
    : >"$src_list.tmp"
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && { sed 's/^Types: deb$/Types: deb-src/' "$f"; echo; } >>"$src_list.tmp"
    done
    if [ -f /etc/apt/sources.list ]; then
      grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >/etc/apt/sources.list.d/bitbyte-deb-src.list || true
    fi
    mv "$src_list.tmp" "$src_list"
    apt-get update -qq
  fi
  (cd "$deps" && apt-get source --download-only -qq "onetbb=$version" >/dev/null)
  tarball="$(ls "$deps"/onetbb_*.orig.tar.* | head -1)"
}

if [ ! -f "$deps/prefix/lib/cmake/TBB/TBBConfig.cmake" ]; then
  mkdir -p "$deps"
  fetch_tbb_source
  echo "tsan: building oneTBB $(basename "$tarball") with ThreadSanitizer into $deps" >&2
  rm -rf "$deps/src" "$deps/build"
  mkdir -p "$deps/src"
  tar -xf "$tarball" -C "$deps/src" --strip-components=1
  cmake -S "$deps/src" -B "$deps/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DTBB_SANITIZE=thread -DTBB_TEST=OFF -DTBB_EXAMPLES=OFF -DTBBMALLOC_BUILD=OFF -DTBB_STRICT=OFF \
    -DCMAKE_INSTALL_PREFIX="$deps/prefix" >/dev/null
  cmake --build "$deps/build" -j "$(nproc)"
  cmake --install "$deps/build" >/dev/null
fi

cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$(nproc)"
ctest --preset tsan -j "$(nproc)" "$@"
