// gemm_w8a8: dynamic int8 activations × int8 per-channel weights.
// act_block = 0: x is quantized per token over all of K (SmoothQuant-style W8A8), and
//   y[m][n] = sx[m] · scale[n] · Σ_k xq[m][k] · q[n][k] + bias[n];
// act_block = B (a multiple of 4): per token and per block of B columns (quant_act_int8.h), and
//   y[m][n] = scale[n] · Σ_b sx[m][b] · Σ_{k∈b} xq[m][k] · q[n][k] + bias[n],
// which keeps an outlier column from coarsening the whole row (weight-only layers use it).
// Dot products are exact int32 (VNNI vpdpbusd); scales are applied in the epilogue.
// K is limited to 65536 so the int32 sums cannot overflow (|xq·q| ≤ 127·255 per term).
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {

constexpr int64_t kGemmW8A8MaxK = 65536;

void gemm_w8a8(const Matrix& x, const PackedW8& w, const float* bias, const Matrix& y,
               int num_threads, int64_t act_block = 0);

namespace detail {
void gemm_w8a8_scalar(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1);
void gemm_w8a8_avx512(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1);
void gemm_w8a8_avx2(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                    int64_t nb0, int64_t nb1);
}  // namespace detail
}  // namespace llmaccel
