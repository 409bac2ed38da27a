// quant_act_int8, AVX-512: the same fp32 operations as the scalar path (absmax, one true
// division 127/absmax, multiply, round-half-even by vcvtps2dq under the default MXCSR), so the
// result is bit-identical; only the order of the max reduction differs, and max is exact.
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "common/avx512_util.h"
#include "quant/quant_act_int8.h"

namespace llmaccel::detail {
namespace {

inline __m512 load16(const Matrix& x, int64_t m, int64_t k, __mmask16 mask) {
  if (x.dtype == DType::F32)
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(x.data) + m * x.ld + k);
  const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(x.data) + m * x.ld + k);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

}  // namespace

void quant_act_int8_avx512(const Matrix& x, const QuantAct& out, int64_t m_begin, int64_t m_end) {
  const int64_t K = x.cols, n_blocks = out.k_pad / out.block;
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t m = m_begin; m < m_end; ++m) {
    int8_t* q = out.q + m * out.k_pad;
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t k0 = b * out.block, k1 = std::min(K, k0 + out.block);
      __m512 vmax = _mm512_setzero_ps();
      __mmask16 nonfinite = 0;
      for (int64_t k = k0; k < k1; k += 16) {
        const __m512 a = _mm512_and_ps(load16(x, m, k, avx512::tail_mask(k1 - k)), abs_mask);
        // vmaxps drops a NaN operand, so non-finite values are tracked on their own.
        nonfinite |= _mm512_cmp_ps_mask(a, _mm512_set1_ps(std::numeric_limits<float>::max()),
                                        _CMP_NLE_UQ);
        vmax = _mm512_max_ps(vmax, a);
      }
      const float amax = _mm512_reduce_max_ps(vmax);
      const bool finite = nonfinite == 0;
      const float inv = finite && amax >= kQuantActMinAbsMax ? 127.f / amax : 0.f;
      const __m512 vinv = _mm512_set1_ps(inv);
      __m512i vsum = _mm512_setzero_si512();
      for (int64_t k = k0; k < k0 + out.block; k += 16) {
        const int64_t valid = std::max<int64_t>(0, k1 - k);
        // inv == 0 (zero, tiny or non-finite block) loads nothing, so q = 0 without NaN casts.
        const __mmask16 in = inv == 0.f ? __mmask16(0) : avx512::tail_mask(valid);
        __m512i qi = _mm512_cvtps_epi32(_mm512_mul_ps(load16(x, m, k, in), vinv));
        qi = _mm512_max_epi32(_mm512_min_epi32(qi, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
        vsum = _mm512_add_epi32(vsum, qi);
        _mm512_mask_cvtsepi32_storeu_epi8(q + k, avx512::tail_mask(k0 + out.block - k), qi);
      }
      out.scale[m * n_blocks + b] = !finite ? std::numeric_limits<float>::quiet_NaN()
                                    : inv == 0.f ? 0.f : amax / 127.f;
      out.qsum[m * n_blocks + b] = _mm512_reduce_add_epi32(vsum);
    }
  }
}

}  // namespace llmaccel::detail
