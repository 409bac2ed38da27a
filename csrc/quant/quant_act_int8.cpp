#include "quant/quant_act_int8.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/cpu_features.h"
#include "common/parallel.h"

namespace llmaccel {
namespace detail {

void quant_act_int8_scalar(const Matrix& x, const QuantAct& out, int64_t m_begin, int64_t m_end) {
  const int64_t K = x.cols, n_blocks = out.k_pad / out.block;
  for (int64_t m = m_begin; m < m_end; ++m) {
    int8_t* q = out.q + m * out.k_pad;
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t k0 = b * out.block, k1 = std::min(K, k0 + out.block);
      float amax = 0.f;
      bool finite = true;
      for (int64_t k = k0; k < k1; ++k) {
        const float a = std::fabs(load_act(x, m, k));
        finite &= a <= std::numeric_limits<float>::max();  // false for inf and NaN
        amax = std::max(amax, a);
      }
      const float inv = finite && amax >= kQuantActMinAbsMax ? 127.f / amax : 0.f;
      int32_t sum = 0;
      for (int64_t k = k0; k < k0 + out.block; ++k) {
        int32_t v = 0;
        if (k < k1 && inv != 0.f) {
          v = static_cast<int32_t>(std::nearbyint(load_act(x, m, k) * inv));
          v = std::clamp(v, -127, 127);
        }
        q[k] = static_cast<int8_t>(v);
        sum += v;
      }
      out.scale[m * n_blocks + b] = !finite ? std::numeric_limits<float>::quiet_NaN()
                                    : inv == 0.f ? 0.f : amax / 127.f;
      out.qsum[m * n_blocks + b] = sum;
    }
  }
}

}  // namespace detail

void quant_act_int8(const Matrix& x, const QuantAct& out, int num_threads) {
  const bool simd = cpu_isa_avx512(), simd2 = cpu_isa_avx2();
  parallel_for(x.rows, num_threads, [&](int64_t b, int64_t e) {
#ifdef LLMACCEL_HAVE_AVX512
    if (simd) return detail::quant_act_int8_avx512(x, out, b, e);
#endif
#ifdef LLMACCEL_HAVE_AVX2
    if (simd2) return detail::quant_act_int8_avx2(x, out, b, e);
#endif
    (void)simd, (void)simd2;
    detail::quant_act_int8_scalar(x, out, b, e);
  });
}

}  // namespace llmaccel
