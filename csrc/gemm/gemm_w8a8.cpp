#include "gemm/gemm_w8a8.h"

#include <algorithm>

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "gemm/gemm_common.h"

namespace llmaccel {
namespace detail {

void gemm_w8a8_scalar(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1) {
  const int64_t steps = w.k_pad / 4;
  for (int64_t b = nb0; b < nb1; ++b) {
    const int8_t* qb = w.qweight + b * steps * 64;
    for (int l = 0; l < 16; ++l) {
      const int64_t n = b * 16 + l;
      if (n >= w.n) break;
      for (int64_t m = 0; m < xq.m; ++m) {
        const int8_t* xr = xq.q + m * xq.k_pad;
        const int64_t n_blocks = xq.k_pad / xq.block, block_steps = xq.block / 4;
        float acc = 0.f;
        for (int64_t blk = 0; blk < n_blocks; ++blk) {
          int32_t dot = 0;
          for (int64_t s = blk * block_steps; s < std::min(steps, (blk + 1) * block_steps); ++s)
            for (int j = 0; j < 4; ++j) dot += xr[4 * s + j] * qb[(s * 16 + l) * 4 + j];
          if (n_blocks == 1)
            acc = static_cast<float>(dot) * (xq.scale[m] * w.scales[n]);
          else
            acc += static_cast<float>(dot) * xq.scale[m * n_blocks + blk];
        }
        if (n_blocks > 1) acc *= w.scales[n];
        store_out(y, m, n, bias ? acc + bias[n] : acc);
      }
    }
  }
}

}  // namespace detail

void gemm_w8a8(const Matrix& x, const PackedW8& w, const float* bias, const Matrix& y,
               int num_threads, int64_t act_block) {
  // Blocks may overhang k_pad; the overhang is zero and never read by the kernels.
  const int64_t block = act_block > 0 ? act_block : w.k_pad;
  const QuantAct xq = stage_act_int8(x, (w.k_pad + block - 1) / block * block, block, num_threads);
  const bool simd = cpu_isa_avx512(), simd2 = cpu_isa_avx2();
  parallel_for(w.n_pad / 16, num_threads, [&](int64_t b, int64_t e) {
#ifdef LLMACCEL_HAVE_AVX512
    if (simd) return detail::gemm_w8a8_avx512(xq, w, bias, y, b, e);
#endif
#ifdef LLMACCEL_HAVE_AVX2
    if (simd2) return detail::gemm_w8a8_avx2(xq, w, bias, y, b, e);
#endif
    (void)simd, (void)simd2;
    detail::gemm_w8a8_scalar(xq, w, bias, y, b, e);
  });
}

}  // namespace llmaccel
