#include "gemm/gemm_w4a8.h"
namespace llmaccel::detail {
void gemm_w4a8_avx512(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y, int64_t nb0, int64_t nb1) {
  gemm_w4a8_scalar(xq, w, bias, y, nb0, nb1);
}
}
