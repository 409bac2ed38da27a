#include "gemm/gemm_w4a16.h"

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "gemm/gemm_common.h"

namespace llmaccel {
namespace detail {

void gemm_w4a16_scalar(const float* xf, int64_t M, const PackedW4& w, const float* bias,
                       const Matrix& y, int64_t nb0, int64_t nb1) {
  const int64_t G = w.group_size, n_groups = w.n_groups(), steps = w.k_pad / 8;
  for (int64_t b = nb0; b < nb1; ++b) {
    const uint8_t* qb = w.qweight + b * steps * 64;
    for (int l = 0; l < 16; ++l) {
      const int64_t n = b * 16 + l;
      if (n >= w.n) break;
      for (int64_t m = 0; m < M; ++m) {
        const float* xr = xf + m * w.k_pad;
        float acc = 0.f;
        for (int64_t g = 0; g < n_groups; ++g) {
          const int64_t meta = (b * n_groups + g) * 16 + l;
          const float zero = w.zeros ? w.zeros[meta] : 8.f;
          float part = 0.f;
          for (int64_t s = g * G / 8; s < (g + 1) * G / 8; ++s) {
            const uint8_t* bytes = qb + (s * 16 + l) * 4;
            for (int j = 0; j < 4; ++j) {
              part += xr[8 * s + j] * (static_cast<float>(bytes[j] & 15) - zero);
              part += xr[8 * s + 4 + j] * (static_cast<float>(bytes[j] >> 4) - zero);
            }
          }
          acc += part * w.scales[meta];
        }
        store_out(y, m, n, bias ? acc + bias[n] : acc);
      }
    }
  }
}

}  // namespace detail

void gemm_w4a16(const Matrix& x, const PackedW4& w, const float* bias, const Matrix& y,
                int num_threads) {
  const float* xf = stage_act_f32(x, w.k_pad);
  const CpuIsa isa = cpu_isa();
#ifdef LLMACCEL_HAVE_AVX512
  // bf16 pair dot products win when x is bf16 (no lo term) or a single fp32 row; from two fp32
  // rows on, the hi + lo products cost more than fp32 FMAs that share each decoded weight.
  const bool pairs = isa == CpuIsa::Avx512Bf16 && (x.dtype == DType::BF16 || x.rows == 1);
  const uint32_t* xpairs = nullptr;
  if (pairs) {
    auto* buf = static_cast<uint32_t*>(scratch(1).get(sizeof(uint32_t) * x.rows * w.k_pad));
    detail::stage_bf16_pairs(xf, x.rows, w.k_pad, buf);
    xpairs = buf;
  }
#endif
#ifdef LLMACCEL_HAVE_AVX2
  const float* xs = nullptr;
  if (isa == CpuIsa::Avx2) {
    auto* buf = static_cast<float*>(scratch(1).get(sizeof(float) * x.rows * w.k_pad));
    detail::stage_nibble_scaled(xf, x.rows, w.k_pad, buf);
    xs = buf;
  }
#endif
  parallel_for(w.n_pad / 16, num_threads, [&](int64_t b, int64_t e) {
#ifdef LLMACCEL_HAVE_AVX512
    if (pairs)
      return detail::gemm_w4a16_avx512bf16(xf, xpairs, x.dtype == DType::BF16, x.rows, w, bias,
                                           y, b, e);
    if (isa >= CpuIsa::Avx512) return detail::gemm_w4a16_avx512(xf, x.rows, w, bias, y, b, e);
#endif
#ifdef LLMACCEL_HAVE_AVX2
    if (isa == CpuIsa::Avx2) return detail::gemm_w4a16_avx2(xf, xs, x.rows, w, bias, y, b, e);
#endif
    detail::gemm_w4a16_scalar(xf, x.rows, w, bias, y, b, e);
  });
}

}  // namespace llmaccel
