#include "gemm/gemm_w8a16.h"
namespace llmaccel::detail {
void gemm_w8a16_avx512(const float* xf, int64_t m, const PackedW8& w, const float* bias, const Matrix& y, int64_t nb0, int64_t nb1) {
  gemm_w8a16_scalar(xf, m, w, bias, y, nb0, nb1);
}
}
