// gemm_w8a16: y = x · dequant(W)ᵀ + bias with int8 per-output-channel weights, float activations.
//   x (M, K) fp32 or bf16; y (M, N) in x's dtype; bias fp32 (N) or null.
//   y[m][n] = scale[n] · Σ_k x[m][k] · q[n][k] + bias[n], fp32 accumulate.
// The AVX2 path multiplies x by q · 2^24 (exact; the 2^−24 is applied with the scale), so there
// activations beyond ±2^96 (~8e28) can overflow to infinity where the other paths stay finite.
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {

void gemm_w8a16(const Matrix& x, const PackedW8& w, const float* bias, const Matrix& y,
                int num_threads);

namespace detail {
void gemm_w8a16_scalar(const float* xf, int64_t m, const PackedW8& w, const float* bias,
                       const Matrix& y, int64_t nb0, int64_t nb1);
void gemm_w8a16_avx512(const float* xf, int64_t m, const PackedW8& w, const float* bias,
                       const Matrix& y, int64_t nb0, int64_t nb1);
void gemm_w8a16_avx2(const float* xf, int64_t m, const PackedW8& w, const float* bias,
                     const Matrix& y, int64_t nb0, int64_t nb1);
}  // namespace detail
}  // namespace llmaccel
