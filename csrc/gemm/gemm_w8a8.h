// gemm_w8a8: dynamic per-token int8 activations × int8 per-channel weights (SmoothQuant-style
// W8A8). x is quantized per token over all of K (quant_act_int8.h), then
//   y[m][n] = sx[m] · scale[n] · Σ_k xq[m][k] · q[n][k] + bias[n]
// with an exact int32 dot product (VNNI vpdpbusd) and the scales applied in the epilogue.
// K is limited to 65536 so the int32 sums cannot overflow (|xq·q| ≤ 127·255 per term).
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {

constexpr int64_t kGemmW8A8MaxK = 65536;

void gemm_w8a8(const Matrix& x, const PackedW8& w, const float* bias, const Matrix& y,
               int num_threads);

namespace detail {
void gemm_w8a8_scalar(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1);
void gemm_w8a8_avx512(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1);
}  // namespace detail
}  // namespace llmaccel
