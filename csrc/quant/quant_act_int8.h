// Dynamic symmetric int8 quantization of activations, per token and per block of K.
//   scale = absmax(block) / 127;  q = clamp(round_half_even(x * (127 / absmax)), -127, 127)
//   (q = 0 and scale = 0 for an all-zero block); columns k >= K are written as 0.
// Bit-exact with llmaccel.reference.quantize_act_int8: same fp32 operations in the same order.
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {

void quant_act_int8(const Matrix& x, const QuantAct& out, int num_threads);

namespace detail {
void quant_act_int8_scalar(const Matrix& x, const QuantAct& out, int64_t m_begin, int64_t m_end);
void quant_act_int8_avx512(const Matrix& x, const QuantAct& out, int64_t m_begin, int64_t m_end);
}  // namespace detail
}  // namespace llmaccel
