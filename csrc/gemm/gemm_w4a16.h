// gemm_w4a16: y = x · dequant(W)ᵀ + bias with int4 group-wise weights and float activations.
//   x (M, K) fp32 or bf16; y (M, N) in x's dtype; bias fp32 (N) or null.
//   y[m][n] = Σ_g scale[n][g] · Σ_{k∈g} x[m][k] · (q[n][k] − zero[n][g]) + bias[n], fp32 accumulate.
// The float weight is never materialized: nibbles become floats in registers, a group at a time.
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {

void gemm_w4a16(const Matrix& x, const PackedW4& w, const float* bias, const Matrix& y,
                int num_threads);

namespace detail {
// xf: activations staged as fp32 (M, k_pad), zero beyond K. Computes 16-row blocks [nb0, nb1).
void gemm_w4a16_scalar(const float* xf, int64_t m, const PackedW4& w, const float* bias,
                       const Matrix& y, int64_t nb0, int64_t nb1);
void gemm_w4a16_avx512(const float* xf, int64_t m, const PackedW4& w, const float* bias,
                       const Matrix& y, int64_t nb0, int64_t nb1);
}  // namespace detail
}  // namespace llmaccel
