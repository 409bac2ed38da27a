// gemm_w4a8: int4 group-wise weights × int8 activations quantized on the fly, VNNI dot products.
// x is quantized per token in blocks of the weight group size (quant_act_int8.h), then
//   y[m][n] = Σ_g sx[m][g] · scale[n][g] · (Σ_{k∈g} xq[m][k] · q[n][k] − zero[n][g] · qsum[m][g])
//             + bias[n]
// with exact int32 sums per group and an fp32 epilogue. The int8 rounding of x is the price of
// 4× more multiply-accumulates per instruction than fp32; layers choose this path by M.
// Group sizes up to 2^20 (int32 group sums: 15 · 127 · group < 2^31).
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {

void gemm_w4a8(const Matrix& x, const PackedW4& w, const float* bias, const Matrix& y,
               int num_threads);

namespace detail {
void gemm_w4a8_scalar(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1);
void gemm_w4a8_avx512(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1);
void gemm_w4a8_avx2(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y,
                    int64_t nb0, int64_t nb1);
}  // namespace detail
}  // namespace llmaccel
