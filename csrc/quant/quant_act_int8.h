// Dynamic symmetric int8 quantization of activations, per token and per block of K.
//   scale = absmax(block) / 127;  q = clamp(round_half_even(x * (127 / absmax)), -127, 127)
//   Columns k >= K are written as 0. Edge cases, defined identically in the reference:
//   - absmax < kQuantActMinAbsMax (2^-100, including an all-zero block): q = 0, scale = 0
//     (below 127/FLT_MAX the factor 127/absmax would overflow; such values are zero in effect);
//   - a NaN or infinity in the block: q = 0, scale = NaN, so the NaN reaches every output.
// Bit-exact with llmaccel.reference.quantize_act_int8: same fp32 operations in the same order.
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {

constexpr float kQuantActMinAbsMax = 7.888609052210118e-31f;  // 2^-100

void quant_act_int8(const Matrix& x, const QuantAct& out, int num_threads);

namespace detail {
void quant_act_int8_scalar(const Matrix& x, const QuantAct& out, int64_t m_begin, int64_t m_end);
void quant_act_int8_avx512(const Matrix& x, const QuantAct& out, int64_t m_begin, int64_t m_end);
void quant_act_int8_avx2(const Matrix& x, const QuantAct& out, int64_t m_begin, int64_t m_end);
}  // namespace detail
}  // namespace llmaccel
