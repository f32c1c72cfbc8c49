#!/usr/bin/env bash
# Installs every Debian 12 package bitbyte needs, as root; installs only what is missing, so a
# second run does nothing. Usage: scripts/setup.sh
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtbb-dev libzstd-dev zstd libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  libxxhash-dev libcli11-dev nlohmann-json3-dev
  zlib1g-dev liblzma-dev xz-utils gzip
  libtorch-dev          # LibTorch 1.13 (CPU) for models/ and train/
  libopenblas0-openmp   # Debian's libtorch is ~11x slower on the netlib BLAS it would otherwise use
  libdnnl-dev           # oneDNN 2.6 (the one LibTorch links): the fused attention's tile products
  graphviz              # bitbyte graph --format svg|png (the demo draws the training graph)
  chromium              # the report test renders bitbyte report's HTML in headless Chromium
  clang libclang-rt-14-dev  # scripts/fuzz.sh (libFuzzer, ASan, UBSan) and scripts/tsan.sh (ThreadSanitizer)
  clang-format          # the `format` test and scripts/format.sh (.clang-format)
  dpkg-dev              # apt-get source: scripts/tsan.sh builds oneTBB's source under TSan
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present" >&2
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run this script as root to install them" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
