#include "gemm/gemm_w4a8.h"

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "gemm/gemm_common.h"

namespace llmaccel {
namespace detail {

void gemm_w4a8_scalar(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1) {
  const int64_t G = w.group_size, n_groups = w.n_groups(), steps = w.k_pad / 8;
  for (int64_t b = nb0; b < nb1; ++b) {
    const uint8_t* qb = w.qweight + b * steps * 64;
    for (int l = 0; l < 16; ++l) {
      const int64_t n = b * 16 + l;
      if (n >= w.n) break;
      for (int64_t m = 0; m < xq.m; ++m) {
        const int8_t* xr = xq.q + m * xq.k_pad;
        float acc = 0.f;
        for (int64_t g = 0; g < n_groups; ++g) {
          const int64_t meta = (b * n_groups + g) * 16 + l;
          const int32_t zero = w.zeros ? w.zeros[meta] : 8;
          int32_t dot = 0;
          for (int64_t s = g * G / 8; s < (g + 1) * G / 8; ++s) {
            const uint8_t* bytes = qb + (s * 16 + l) * 4;
            for (int j = 0; j < 4; ++j)
              dot += xr[8 * s + j] * (bytes[j] & 15) + xr[8 * s + 4 + j] * (bytes[j] >> 4);
          }
          const int32_t centered = dot - zero * xq.qsum[m * n_groups + g];
          acc += static_cast<float>(centered) * (xq.scale[m * n_groups + g] * w.scales[meta]);
        }
        store_out(y, m, n, bias ? acc + bias[n] : acc);
      }
    }
  }
}

}  // namespace detail

void gemm_w4a8(const Matrix& x, const PackedW4& w, const float* bias, const Matrix& y,
               int num_threads) {
  const QuantAct xq = stage_act_int8(x, w.k_pad, w.group_size, num_threads);
  const bool simd = cpu_isa_avx512(), simd2 = cpu_isa_avx2();
  parallel_for(w.n_pad / 16, num_threads, [&](int64_t b, int64_t e) {
#ifdef LLMACCEL_HAVE_AVX512
    if (simd) return detail::gemm_w4a8_avx512(xq, w, bias, y, b, e);
#endif
#ifdef LLMACCEL_HAVE_AVX2
    if (simd2) return detail::gemm_w4a8_avx2(xq, w, bias, y, b, e);
#endif
    (void)simd, (void)simd2;
    detail::gemm_w4a8_scalar(xq, w, bias, y, b, e);
  });
}

}  // namespace llmaccel
