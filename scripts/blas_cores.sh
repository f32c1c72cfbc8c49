#!/usr/bin/env bash
# fp32 GEMM GFLOPS of Debian's OpenBLAS (libopenblas0-openmp, the one LibTorch uses here) on each
# core this CPU runs, forced with OPENBLAS_CORETYPE, and as OpenBLAS chooses unforced: the data
# behind bitbyte's BLAS core choice (models/blas_choice.h, docs/benchmarks.md).
# Usage: scripts/blas_cores.sh [N=2048] [THREADS=2]
set -euo pipefail
n="${1:-2048}" threads="${2:-2}"
lib=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0
[[ -f $lib ]] || { echo "blas_cores: $lib missing (apt-get install libopenblas0-openmp)" >&2; exit 1; }
work=$(mktemp -d /tmp/bitbyte-blas.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/gemm.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void cblas_sgemm(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
char* openblas_get_corename(void);
int main(int argc, char** argv) {
  const int n = atoi(argv[1]);
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
  for (long i = 0; i < (long)n * n; ++i) a[i] = (float)(i % 7) / 7, b[i] = (float)(i % 5) / 5;
  double best = 1e30;
  for (int r = 0; r < 6; ++r) {  /* the first one warms up */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cblas_sgemm(101, 111, 111, n, n, n, 1, a, n, b, n, 0, c, n); /* row major, no transposes */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    if (r > 0 && s < best) best = s;
  }
  printf("%-12s %8.1f GFLOPS\n", openblas_get_corename(), 2.0 * n * n * n / best / 1e9);
  return 0;
}
C
gcc -O2 "$work/gemm.c" -o "$work/gemm" "$lib"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), fp32 ${n}^3, ${threads} threads, OpenBLAS from $lib"
echo "# environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"
printf 'unforced -> '
env -u OPENBLAS_CORETYPE OMP_NUM_THREADS="$threads" "$work/gemm" "$n"
cores=(Prescott Sandybridge)
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && cores+=(Haswell Zen)
grep -qw avx512f /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo && cores+=(SkylakeX)
grep -qw avx512_bf16 /proc/cpuinfo && cores+=(Cooperlake)
for core in "${cores[@]}"; do
  printf 'forced   -> '
  OPENBLAS_CORETYPE=$core OMP_NUM_THREADS="$threads" "$work/gemm" "$n"
done
