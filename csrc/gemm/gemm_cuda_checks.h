// Argument checks shared by the CUDA GEMM launchers (host side; the Python op checks first and
// names the user's mistake, these guard the native contract), and the launchers' knobs.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace llmaccel::cuda {

inline void require(bool ok, const char* op, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string(op) + ": " + what);
}

inline void check_gemm_sizes(const char* op, int64_t m, int64_t k, int64_t ldx, int64_t n,
                             int64_t n_tiles, int64_t nk, int64_t ldo, const void* x,
                             const void* w, const void* out) {
  require(m >= 1 && n >= 1 && k >= 1, op, "m, n and k must be positive");
  require(k % 8 == 0 && ldx % 8 == 0 && ldx >= k, op, "k and ldx must be multiples of 8, ldx >= k");
  require(k <= nk * 32, op, "x has more columns than the packed weight");
  require(n <= n_tiles * 16 && n > n_tiles * 16 - 16, op, "n does not match the weight's tiles");
  require(ldo >= n, op, "ldo must be >= n");
  require(m <= (int64_t(1) << 31) - 1 && n_tiles * 16 <= (int64_t(1) << 31) - 1, op, "too large");
  require(x && w && out, op, "null pointer");
  require(reinterpret_cast<uintptr_t>(x) % 16 == 0, op, "x must be 16-byte aligned");
}

// Whether environment variable `name` is set to exactly `value` (the launchers' benchmark and
// opt-in knobs, read per call).
inline bool env_is(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e && std::strcmp(e, value) == 0;
}

// LLMACCEL_EVICT_FIRST=1: the kernels that read each weight byte once per call (the K-slice
// decode kernel, the wgmma kernels with one x block) mark their weight copies evict-first in L2
// (bulk_copy_weights). Opt-in until it has run on a GPU.
inline bool weights_evict_first() { return env_is("LLMACCEL_EVICT_FIRST", "1"); }

}  // namespace llmaccel::cuda
