// gemm_w4a16: y = x · dequant(W)ᵀ + bias with int4 group-wise weights and float activations.
//   x (M, K) fp32 or bf16; y (M, N) in x's dtype; bias fp32 (N) or null.
//   y[m][n] = Σ_g scale[n][g] · Σ_{k∈g} x[m][k] · (q[n][k] − zero[n][g]) + bias[n], fp32 accumulate.
// The float weight is never materialized: nibbles become floats in registers, a group at a time.
// Precision: fp32 accumulation throughout. On the avx512_bf16 path, bf16 x is used exactly and
// a single fp32 row (M = 1) is carried as a bf16 hi + lo pair, |x − hi − lo| ≤ 2⁻¹⁸|x|; all
// other cases use x exactly. vdpbf16ps treats subnormal inputs (|x| < 1.2e-38) as zero.
// Asymmetric weights (AVX-512 and AVX2 paths) and all weights on the AVX2 path remove the zero
// point once per group through the group sums of x, Σ x·q − z·Σ x: rounding errors then scale
// with Σ|x|·q rather than Σ|x|·|q − z| (within the same declared bound in the tests), and an
// infinite x gives NaN where the exact product would be infinite.
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
// AVX2 variant: xs is x scaled per column by powers of two (stage_nibble_scaled, exact short of
// activations below 2^-102 in magnitude, whose products lose low bits).
void stage_nibble_scaled(const float* xf, int64_t m, int64_t k_pad, float* xs);
void gemm_w4a16_avx2(const float* xf, const float* xs, int64_t m, const PackedW4& w,
                     const float* bias, const Matrix& y, int64_t nb0, int64_t nb1);
// AVX512_BF16 variant: xpairs from stage_bf16_pairs; exact_bf16 when x arrived as bf16 (its lo
// terms are zero and skipped). fp32 x is carried as bf16 hi + lo: |x − hi − lo| ≤ 2⁻¹⁸|x|.
void stage_bf16_pairs(const float* xf, int64_t m, int64_t k_pad, uint32_t* xpairs);
void gemm_w4a16_avx512bf16(const float* xf, const uint32_t* xpairs, bool exact_bf16, int64_t m,
                           const PackedW4& w, const float* bias, const Matrix& y, int64_t nb0,
                           int64_t nb1);
}  // namespace detail
}  // namespace llmaccel
