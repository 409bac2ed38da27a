// CUDA runtime queries, compiled only when the build has CUDA (LLMACCEL_WITH_CUDA).
#pragma once
#include <string>

namespace llmaccel::cuda {
// Number of visible CUDA devices; 0 when there is no driver or no device (never throws).
int device_count();
// Runtime version the module was built against, e.g. "13.0".
std::string runtime_version();
}  // namespace llmaccel::cuda
