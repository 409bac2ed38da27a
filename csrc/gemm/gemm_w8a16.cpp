#include "gemm/gemm_w8a16.h"

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "gemm/gemm_common.h"

namespace llmaccel {
namespace detail {

void gemm_w8a16_scalar(const float* xf, int64_t M, const PackedW8& w, const float* bias,
                       const Matrix& y, int64_t nb0, int64_t nb1) {
  const int64_t steps = w.k_pad / 4;
  for (int64_t b = nb0; b < nb1; ++b) {
    const int8_t* qb = w.qweight + b * steps * 64;
    for (int l = 0; l < 16; ++l) {
      const int64_t n = b * 16 + l;
      if (n >= w.n) break;
      for (int64_t m = 0; m < M; ++m) {
        const float* xr = xf + m * w.k_pad;
        float acc = 0.f;
        for (int64_t s = 0; s < steps; ++s)
          for (int j = 0; j < 4; ++j) acc += xr[4 * s + j] * static_cast<float>(qb[(s * 16 + l) * 4 + j]);
        acc *= w.scales[n];
        store_out(y, m, n, bias ? acc + bias[n] : acc);
      }
    }
  }
}

}  // namespace detail

void gemm_w8a16(const Matrix& x, const PackedW8& w, const float* bias, const Matrix& y,
                int num_threads) {
  const float* xf = stage_act_f32(x, w.k_pad);
  const bool simd = cpu_isa_avx512(), simd2 = cpu_isa_avx2();
  parallel_for(w.n_pad / 16, num_threads, [&](int64_t b, int64_t e) {
#ifdef LLMACCEL_HAVE_AVX512
    if (simd) return detail::gemm_w8a16_avx512(xf, x.rows, w, bias, y, b, e);
#endif
#ifdef LLMACCEL_HAVE_AVX2
    if (simd2) return detail::gemm_w8a16_avx2(xf, x.rows, w, bias, y, b, e);
#endif
    (void)simd, (void)simd2;
    detail::gemm_w8a16_scalar(xf, x.rows, w, bias, y, b, e);
  });
}

}  // namespace llmaccel
