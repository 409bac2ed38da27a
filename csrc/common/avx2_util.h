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

}  // namespace llmaccel::avx2
