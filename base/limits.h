#pragma once
// Bounds shared by every job.
namespace bitbyte {

// The most threads any job accepts (--threads; 0 means all cores).
inline constexpr int kMaxThreads = 1024;

}  // namespace bitbyte
