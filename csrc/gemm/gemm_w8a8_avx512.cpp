#include "gemm/gemm_w8a8.h"
namespace llmaccel::detail {
void gemm_w8a8_avx512(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y, int64_t nb0, int64_t nb1) {
  gemm_w8a8_scalar(xq, w, bias, y, nb0, nb1);
}
}
