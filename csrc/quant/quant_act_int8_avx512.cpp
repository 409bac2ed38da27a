#include "quant/quant_act_int8.h"
namespace llmaccel::detail {
void quant_act_int8_avx512(const Matrix& x, const QuantAct& out, int64_t m_begin, int64_t m_end) {
  quant_act_int8_scalar(x, out, m_begin, m_end);
}
}
