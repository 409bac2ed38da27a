// quant_act_int8, AVX2: the same fp32 operations as the scalar path (absmax, one true division
// 127/absmax, multiply, round-half-even by vcvtps2dq under the default MXCSR), so the result is
// bit-identical; only the order of the max reduction differs, and max is exact. Columns past the
// last multiple of 8 in a block take the scalar steps.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/avx2_util.h"
#include "quant/quant_act_int8.h"

namespace llmaccel::detail {
namespace {

inline __m256 load8(const Matrix& x, int64_t m, int64_t k) {
  if (x.dtype == DType::F32) return _mm256_loadu_ps(static_cast<const float*>(x.data) + m * x.ld + k);
  const __m128i h = _mm_loadu_si128(
      reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x.data) + m * x.ld + k));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline int32_t hsum8(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1)));
}

}  // namespace

void quant_act_int8_avx2(const Matrix& x, const QuantAct& out, int64_t m_begin, int64_t m_end) {
  const int64_t K = x.cols, n_blocks = out.k_pad / out.block;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 fmax = _mm256_set1_ps(std::numeric_limits<float>::max());
  for (int64_t m = m_begin; m < m_end; ++m) {
    int8_t* q = out.q + m * out.k_pad;
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t k0 = b * out.block, k1 = std::min(K, k0 + out.block);
      __m256 vmax = _mm256_setzero_ps(), nonfinite = _mm256_setzero_ps();
      int64_t k = k0;
      for (; k + 8 <= k1; k += 8) {
        const __m256 a = _mm256_and_ps(load8(x, m, k), abs_mask);
        // vmaxps drops a NaN operand, so non-finite values are tracked on their own.
        nonfinite = _mm256_or_ps(nonfinite, _mm256_cmp_ps(a, fmax, _CMP_NLE_UQ));
        vmax = _mm256_max_ps(vmax, a);
      }
      float amax = avx2::reduce_max8(vmax);
      bool finite = _mm256_movemask_ps(nonfinite) == 0;
      for (; k < k1; ++k) {
        const float a = std::fabs(load_act(x, m, k));
        finite &= a <= std::numeric_limits<float>::max();
        amax = std::max(amax, a);
      }
      const float inv = finite && amax >= kQuantActMinAbsMax ? 127.f / amax : 0.f;
      int32_t sum = 0;
      k = k0;
      if (inv != 0.f) {
        const __m256 vinv = _mm256_set1_ps(inv);
        __m256i vsum = _mm256_setzero_si256();
        for (; k + 8 <= k1; k += 8) {
          __m256i qi = _mm256_cvtps_epi32(_mm256_mul_ps(load8(x, m, k), vinv));
          qi = _mm256_max_epi32(_mm256_min_epi32(qi, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
          vsum = _mm256_add_epi32(vsum, qi);
          const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
          _mm_storel_epi64(reinterpret_cast<__m128i*>(q + k), _mm_packs_epi16(w16, w16));
        }
        sum = hsum8(vsum);
        for (; k < k1; ++k) {
          const int32_t v = std::clamp(static_cast<int32_t>(std::nearbyint(load_act(x, m, k) * inv)), -127, 127);
          q[k] = static_cast<int8_t>(v);
          sum += v;
        }
      }
      std::fill(q + k, q + k0 + out.block, int8_t{0});
      out.scale[m * n_blocks + b] = !finite ? std::numeric_limits<float>::quiet_NaN()
                                    : inv == 0.f ? 0.f : amax / 127.f;
      out.qsum[m * n_blocks + b] = sum;
    }
  }
}

}  // namespace llmaccel::detail
