// gemm_f32: y = x · Wᵀ + bias with float32 weights kept as they are (row-major (N, K)).
//   For the layers a quantized model keeps in float (lm_head): torch's fp32 GEMV streams such a
//   weight at ~10 GB/s here, a quarter of DRAM bandwidth; this kernel is meant to stream it at
//   DRAM speed for decode-sized M.
//   x (M, K) fp32 or bf16 (row stride ldx); y (M, N) in x's dtype; bias fp32 (N) or null.
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {

void gemm_f32(const Matrix& x, const float* w, int64_t n, const float* bias, const Matrix& y,
              int num_threads);

namespace detail {
// Rows [n0, n1) of y; xf is x staged as fp32 (M, K) with row stride K.
void gemm_f32_scalar(const float* xf, int64_t m, int64_t k, const float* w, const float* bias,
                     const Matrix& y, int64_t n0, int64_t n1);
void gemm_f32_avx512(const float* xf, int64_t m, int64_t k, const float* w, const float* bias,
                     const Matrix& y, int64_t n0, int64_t n1);
void gemm_f32_avx2(const float* xf, int64_t m, int64_t k, const float* w, const float* bias,
                   const Matrix& y, int64_t n0, int64_t n1);
}  // namespace detail
}  // namespace llmaccel
