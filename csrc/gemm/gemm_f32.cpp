#include "gemm/gemm_f32.h"

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "gemm/gemm_common.h"

namespace llmaccel {
namespace detail {

void gemm_f32_scalar(const float* xf, int64_t M, int64_t K, const float* w, const float* bias,
                     const Matrix& y, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* wr = w + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = xf + m * K;
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) acc += xr[k] * wr[k];
      store_out(y, m, n, bias ? acc + bias[n] : acc);
    }
  }
}

}  // namespace detail

void gemm_f32(const Matrix& x, const float* w, int64_t n, const float* bias, const Matrix& y,
              int num_threads) {
  const float* xf = stage_act_f32(x, x.cols);
  const int64_t k = x.cols;
  const bool simd = cpu_isa_avx512(), simd2 = cpu_isa_avx2();
  // Blocks of 4 output rows: the SIMD paths' tile height, so threads never split a tile.
  parallel_for((n + 3) / 4, num_threads, [&](int64_t b, int64_t e) {
    const int64_t n0 = 4 * b, n1 = std::min(n, 4 * e);
#ifdef LLMACCEL_HAVE_AVX512
    if (simd) return detail::gemm_f32_avx512(xf, x.rows, k, w, bias, y, n0, n1);
#endif
#ifdef LLMACCEL_HAVE_AVX2
    if (simd2) return detail::gemm_f32_avx2(xf, x.rows, k, w, bias, y, n0, n1);
#endif
    (void)simd, (void)simd2;
    detail::gemm_f32_scalar(xf, x.rows, k, w, bias, y, n0, n1);
  });
}

}  // namespace llmaccel
