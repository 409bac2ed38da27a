// Small AVX-512 helpers shared by the *_avx512.cpp files. Include only from files compiled with
// the AVX-512 flags (see CMakeLists.txt).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "common/tensor_view.h"

namespace llmaccel::avx512 {

// acc += Σ_{j<4} a.u8[4i+j] · b.s8[4i+j] per int32 lane (vpdpbusd), accumulating in place.
// Inline asm because GCC 12 does not tie the accumulator of _mm512_dpbusd_epi32 to its output
// register in a register tile: it copied every accumulator once per step (measured: the 6×3 w8a8
// tile ran at 65 % of the rate oneDNN reaches on the same cores).
inline void dpbusd(__m512i& acc, __m512i a_u8, __m512i b_s8) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a_u8), "v"(b_s8));
}

// e^x, 16 lanes: exp_poly's Cephes polynomial (common/exp_poly.h); 2^n applied by vscalefps.
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

inline __mmask16 tail_mask(int64_t valid) {
  return valid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1u);
}

// fp32 → bf16, round to nearest even, NaN kept quiet: the same rule as f32_to_bf16.
inline __m256i f32_to_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

// Stores 16 consecutive outputs of row r starting at column c (the first `valid` of them),
// adding bias when given.
inline void store_out16(const Matrix& y, int64_t r, int64_t c, __m512 v, const float* bias,
                        int64_t valid) {
  const __mmask16 mask = tail_mask(valid);
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias + c));
  if (y.dtype == DType::F32) {
    _mm512_mask_storeu_ps(static_cast<float*>(y.data) + r * y.ld + c, mask, v);
  } else {
    _mm256_mask_storeu_epi16(static_cast<uint16_t*>(y.data) + r * y.ld + c, mask, f32_to_bf16(v));
  }
}

}  // namespace llmaccel::avx512
