#pragma once
// The version, from one place: project(VERSION) in CMakeLists.txt, passed as BITBYTE_VERSION.
// Manifests (generator), checkpoints (created_by), run.json and --version all say it.
#ifndef BITBYTE_VERSION
#error "BITBYTE_VERSION is not defined: build with CMake (CMakeLists.txt defines it)"
#endif

namespace bitbyte {

inline constexpr char kVersion[] = BITBYTE_VERSION;                   // "0.1.0"
inline constexpr char kVersionString[] = "bitbyte " BITBYTE_VERSION;  // "bitbyte 0.1.0"

}  // namespace bitbyte
