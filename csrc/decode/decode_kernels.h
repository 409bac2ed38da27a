// The small per-token pieces of a decode step (RMSNorm, rotary, single-token attention, SiLU·up):
// microseconds of work each, which is why they live in C++ beside the step rather than as torch
// ops (~5 µs of dispatch each, ~25 per layer). Portable path in decode_kernels.cpp, AVX-512 in
// decode_kernels_avx512.cpp, AVX2 in decode_kernels_avx2.cpp.
//
// Precision: fp32 throughout. exp is a degree-6 polynomial after range reduction (relative error
// ≤ 2e-7 on [-87, 88]; inputs are clamped to that range), so results differ from torch's by a few
// ulps, and the two paths differ from each other likewise (sums in a different order; the
// AVX-512 exp rounds n to nearest even): the contract is "within float32 rounding", not bit-exact.
#pragma once
#include <cstdint>

namespace llmaccel {

struct DecodeKernels {
  // y = x · rsqrt(mean(x²) + eps) · w over one row of n.
  void (*rms_norm)(const float* x, const float* w, float eps, int64_t n, float* y);
  // Rotates `heads` heads of head_dim floats in place, stored as interleaved (re, im) pairs,
  // by the complex numbers rot[0..head_dim/2) (cos, sin interleaved).
  void (*rotate)(float* v, const float* rot, int64_t heads, int64_t head_dim);
  // Attention of `group` query heads (q: group × head_dim) that share one KV head over `len`
  // cached positions (k, v: len × head_dim): out (group × head_dim). scores: group × len scratch.
  void (*attend)(const float* q, const float* k, const float* v, int64_t len, int64_t head_dim,
                 int64_t group, float scale, float* scores, float* out);
  // out[i] = silu(gu[i]) · gu[inter + i] for i < inter.
  void (*silu_mul)(const float* gu, int64_t inter, float* out);
  // x[i] += y[i].
  void (*add)(float* x, const float* y, int64_t n);
};

// The set for the current CPU path (cpu_isa()).
const DecodeKernels& decode_kernels();

namespace detail {
extern const DecodeKernels decode_kernels_scalar;
extern const DecodeKernels decode_kernels_avx512;
extern const DecodeKernels decode_kernels_avx2;
}  // namespace detail
}  // namespace llmaccel
