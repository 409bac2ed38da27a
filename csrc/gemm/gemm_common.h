// Pieces every CPU GEMM shares: activation staging and quantized-activation buffers.
#pragma once
#include <cstdint>

#include "common/scratch.h"
#include "common/tensor_view.h"
#include "quant/quant_act_int8.h"

namespace llmaccel {

// Copies x (M, K), fp32 or bf16, into a 64-byte aligned fp32 buffer (M, k_pad), zero beyond K,
// so the kernels read one dtype, aligned, with no tail cases along K.
inline const float* stage_act_f32(const Matrix& x, int64_t k_pad) {
  float* buf = static_cast<float*>(scratch(0).get(sizeof(float) * x.rows * k_pad));
  for (int64_t m = 0; m < x.rows; ++m) {
    float* row = buf + m * k_pad;
    if (x.dtype == DType::F32) {
      const float* src = static_cast<const float*>(x.data) + m * x.ld;
      for (int64_t k = 0; k < x.cols; ++k) row[k] = src[k];
    } else {
      const uint16_t* src = static_cast<const uint16_t*>(x.data) + m * x.ld;
      for (int64_t k = 0; k < x.cols; ++k) row[k] = bf16_to_f32(src[k]);
    }
    for (int64_t k = x.cols; k < k_pad; ++k) row[k] = 0.f;
  }
  return buf;
}

// Quantizes x per token in blocks of `block` into aligned scratch (see quant_act_int8.h).
inline QuantAct stage_act_int8(const Matrix& x, int64_t k_pad, int64_t block, int num_threads) {
  const int64_t nb = k_pad / block;
  const size_t q_bytes = (x.rows * k_pad + 63) / 64 * 64;
  auto* q = static_cast<int8_t*>(scratch(0).get(q_bytes));
  auto* meta = static_cast<char*>(scratch(1).get(x.rows * nb * (sizeof(float) + sizeof(int32_t))));
  QuantAct a{q, reinterpret_cast<float*>(meta),
             reinterpret_cast<int32_t*>(meta + x.rows * nb * sizeof(float)), x.rows, k_pad, block};
  quant_act_int8(x, a, num_threads);
  return a;
}

}  // namespace llmaccel
