// AVX2 decode kernels (contract in decode_kernels.h), for CPUs without AVX-512: the AVX-512 set
// (decode_kernels_avx512.cpp, which says why these are intrinsics) in 8 lanes, with vmaskmovps
// for rows whose length is not a multiple of 8. Measured before it existed (portable code on a
// Zen 3 VM, default model, 128-160 cached positions): attention 2.6 ms and the rest 0.9 ms of a
// 13.4 ms token.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "common/avx2_util.h"
#include "decode/decode_kernels.h"

namespace llmaccel {
namespace {

using avx2::exp8;
using avx2::reduce_add8;
using avx2::reduce_max8;
using avx2::tail_mask8;

inline __m256 load(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
inline void store(float* p, __m256i m, __m256 v) { _mm256_maskstore_ps(p, m, v); }

inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    acc = _mm256_fmadd_ps(load(a + i, m), load(b + i, m), acc);
  }
  return reduce_add8(acc);
}

void rms_norm(const float* x, const float* w, float eps, int64_t n, float* y) {
  const __m256 inv = _mm256_set1_ps(1.0f / std::sqrt(dot(x, x, n) / static_cast<float>(n) + eps));
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = tail_mask8(n - i);
    store(y + i, m, _mm256_mul_ps(_mm256_mul_ps(load(x + i, m), inv), load(w + i, m)));
  }
}

void rotate(float* v, const float* rot, int64_t heads, int64_t head_dim) {
  // Lanes hold (re, im) pairs: re·c − im·s in even lanes, re·s + im·c in odd ones (fmaddsub).
  for (int64_t h = 0; h < heads; ++h) {
    float* p = v + h * head_dim;
    for (int64_t i = 0; i < head_dim; i += 8) {
      const __m256i m = tail_mask8(head_dim - i);
      const __m256 x = load(p + i, m), r = load(rot + i, m);
      const __m256 swapped = _mm256_permute_ps(x, 0xB1);  // (im, re) per pair
      store(p + i, m, _mm256_fmaddsub_ps(x, _mm256_moveldup_ps(r),
                                         _mm256_mul_ps(swapped, _mm256_movehdup_ps(r))));
    }
  }
}

void softmax_inplace(float* s, int64_t len) {
  __m256 mx = _mm256_set1_ps(-INFINITY);
  for (int64_t t = 0; t < len; t += 8) {
    const __m256i m = tail_mask8(len - t);
    // Lanes past the end read as −inf, which no max picks.
    mx = _mm256_max_ps(mx, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), load(s + t, m),
                                            _mm256_castsi256_ps(m)));
  }
  const __m256 top = _mm256_set1_ps(reduce_max8(mx));
  __m256 sum = _mm256_setzero_ps();
  for (int64_t t = 0; t < len; t += 8) {
    const __m256i m = tail_mask8(len - t);
    const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(load(s + t, m), top)), _mm256_castsi256_ps(m));
    sum = _mm256_add_ps(sum, e);
    store(s + t, m, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / reduce_add8(sum));
  for (int64_t t = 0; t < len; t += 8) {
    const __m256i m = tail_mask8(len - t);
    store(s + t, m, _mm256_mul_ps(load(s + t, m), inv));
  }
}

void attend(const float* q, const float* k, const float* v, int64_t len, int64_t head_dim,
            int64_t group, float scale, float* scores, float* out) {
  // Scores: position-major, so each key row is loaded once for the whole group (L1-hot after).
  for (int64_t t = 0; t < len; ++t)
    for (int64_t h = 0; h < group; ++h)
      scores[h * len + t] = dot(q + h * head_dim, k + t * head_dim, head_dim) * scale;
  for (int64_t h = 0; h < group; ++h) softmax_inplace(scores + h * len, len);
  // Weighted sum of values: four independent accumulators (32 columns) per pass over positions,
  // so consecutive FMAs do not wait on each other.
  for (int64_t h = 0; h < group; ++h) {
    const float* p = scores + h * len;
    for (int64_t c = 0; c < head_dim; c += 32) {
      const __m256i m0 = tail_mask8(head_dim - c), m1 = tail_mask8(head_dim - c - 8),
                    m2 = tail_mask8(head_dim - c - 16), m3 = tail_mask8(head_dim - c - 24);
      const bool has1 = head_dim - c > 8, has2 = head_dim - c > 16, has3 = head_dim - c > 24;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t t = 0; t < len; ++t) {
        const __m256 pt = _mm256_set1_ps(p[t]);
        const float* row = v + t * head_dim + c;
        a0 = _mm256_fmadd_ps(pt, load(row, m0), a0);
        if (has1) a1 = _mm256_fmadd_ps(pt, load(row + 8, m1), a1);
        if (has2) a2 = _mm256_fmadd_ps(pt, load(row + 16, m2), a2);
        if (has3) a3 = _mm256_fmadd_ps(pt, load(row + 24, m3), a3);
      }
      float* o = out + h * head_dim + c;
      store(o, m0, a0);
      if (has1) store(o + 8, m1, a1);
      if (has2) store(o + 16, m2, a2);
      if (has3) store(o + 24, m3, a3);
    }
  }
}

void silu_mul(const float* gu, int64_t inter, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < inter; i += 8) {
    const __m256i m = tail_mask8(inter - i);
    const __m256 g = load(gu + i, m), u = load(gu + inter + i, m);
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    store(out + i, m, _mm256_mul_ps(silu, u));
  }
}

void add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = tail_mask8(n - i);
    store(x + i, m, _mm256_add_ps(load(x + i, m), load(y + i, m)));
  }
}

}  // namespace

namespace detail {
const DecodeKernels decode_kernels_avx2 = {rms_norm, rotate, attend, silu_mul, add};
}  // namespace detail
}  // namespace llmaccel
