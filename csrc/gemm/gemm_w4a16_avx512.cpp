#include "gemm/gemm_w4a16.h"
namespace llmaccel::detail {
void gemm_w4a16_avx512(const float* xf, int64_t m, const PackedW4& w, const float* bias, const Matrix& y, int64_t nb0, int64_t nb1) {
  gemm_w4a16_scalar(xf, m, w, bias, y, nb0, nb1);
}
}
