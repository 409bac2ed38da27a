// Small AVX2 helpers shared by the *_avx2.cpp files. Include only from files compiled with the
// AVX2 flags (see CMakeLists.txt).
//
// The AVX2 kernels read the same 16-row blocks as the AVX-512 ones (formats/dense.py), as two
// strips of 8 output rows: a 64-byte step of a block holds rows 0..7 in its first 32 bytes and
// rows 8..15 in the second, each row in its own dword lane, so a strip is one ymm load per step
// with every output in its own fp32/int32 lane, exactly as a block is one zmm load.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "common/tensor_view.h"

namespace llmaccel::avx2 {

// Strip i covers output rows 8i..8i+7: block i/2, byte offset 32·(i%2) in each 64-byte step.
template <typename T>
inline const T* strip_base(const T* qweight, int64_t block_bytes, int64_t strip) {
  return qweight + (strip >> 1) * block_bytes + (strip & 1) * 32;
}

// Index of strip i's first row in per-block metadata laid out [block][group][16].
inline int64_t strip_meta(int64_t strip, int64_t n_groups, int64_t g) {
  return ((strip >> 1) * n_groups + g) * 16 + (strip & 1) * 8;
}

// Stores 8 consecutive outputs of row r starting at column c (the first `valid` of them, none
// when valid <= 0), adding bias when given. Called once per output, outside the K loop, so the
// partial and bf16 cases go through a scalar copy.
inline void store_out8(const Matrix& y, int64_t r, int64_t c, __m256 v, const float* bias,
                       int64_t valid) {
  if (valid <= 0) return;
  if (valid >= 8 && y.dtype == DType::F32) {
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + c));
    _mm256_storeu_ps(static_cast<float*>(y.data) + r * y.ld + c, v);
    return;
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int64_t i = 0; i < valid && i < 8; ++i) store_out(y, r, c + i, bias ? t[i] + bias[c + i] : t[i]);
}

// Stores an MR × NS tile of 8-output strips kept in L1 (out[m][r] is row m0 + m, strip s0 + r)
// to rows of y, adding bias; outputs past n are dropped.
template <int MR, int NS>
inline void store_tile8(const Matrix& y, const float (&out)[MR][NS][8], int64_t m0, int64_t s0,
                        const float* bias, int64_t n) {
#pragma GCC unroll 8
  for (int r = 0; r < NS; ++r) {
    const int64_t c = (s0 + r) * 8;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
      store_out8(y, m0 + m, c, _mm256_load_ps(out[m][r]), bias, n - c);
  }
}

// Lane mask for vmaskmovps: the first `valid` of 8 lanes (none when valid <= 0, all from 8).
inline __m256i tail_mask8(int64_t valid) {
  alignas(32) static const int32_t kOnes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t v = valid < 0 ? 0 : valid > 8 ? 8 : valid;
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnes + 8 - v));
}

inline float reduce_add8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

inline float reduce_max8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps(s, s, 1)));
}

// e^x, 8 lanes: exp_poly's Cephes polynomial (common/exp_poly.h); 2^n through the exponent bits
// (the clamp keeps n in [-126, 127], so 2^n is a normal float).
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

}  // namespace llmaccel::avx2
