#pragma once
// Bytes held by CPU tensors: a counting wrapper around LibTorch's CPU allocator, for measuring
// activation memory (what a training step allocates on top of parameters, gradients and optimizer
// state) without the noise of the process's RSS (the heap keeps freed pages, libraries own theirs).
// Counts every CPU tensor's storage while installed; memory that kernels allocate themselves
// (oneDNN scratch, BLAS buffers) is not counted. Torch-free header.
#include <cstdint>

namespace bitbyte::models::tensor_memory {

// Puts the counting allocator in front of the CPU allocator from now on (idempotent; storages
// allocated before are not counted when freed either). Not thread-safe against a concurrent
// allocation: call it before the work starts.
void Install();
bool Installed();
// Bytes of CPU tensor storage allocated through it and not yet freed.
int64_t Current();
// The highest Current() since the last ResetPeak() (or Install()).
int64_t Peak();
void ResetPeak();

}  // namespace bitbyte::models::tensor_memory
