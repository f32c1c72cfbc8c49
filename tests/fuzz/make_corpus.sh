#!/usr/bin/env bash
# Refreshes the committed seed corpora, tests/fuzz/corpus/<target>/, from the real writers
# (fuzz_seeds, tests/fuzz/make_seeds.cc): run it after a file format changes, and commit the
# result. (scripts/fuzz.sh also makes fresh seeds for every run; the committed ones keep the
# older formats as inputs too.) Usage: tests/fuzz/make_corpus.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)" --target fuzz_seeds
rm -rf tests/fuzz/corpus
build/fuzz/bin/fuzz_seeds tests/fuzz/corpus
du -sh tests/fuzz/corpus/*
