#include <cuda_runtime.h>

#include "cuda/device_info.h"

namespace llmaccel::cuda {

int device_count() {
  int n = 0;
  // No driver or no device is a normal state for a CPU machine, not an error to report.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string runtime_version() {
  return std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10);
}

}  // namespace llmaccel::cuda
