// AVX2 decode kernels (contract in decode_kernels.h), for CPUs without AVX-512: the AVX-512 set
// (decode_kernels_avx512.cpp, which says why these are intrinsics) in 8 lanes, with vmaskmovps
// for rows whose length is not a multiple of 8. Measured before it existed (portable code on a
// Zen 3 VM, default model, 128-160 cached positions): attention 2.6 ms and the rest 0.9 ms of a
// 13.4 ms token. attend's scores now come 8 positions at a time and its weighted sum takes up to
// 3 heads per pass over the values: 1.7x the one-dot-at-a-time version at 64-160 positions,
// 1.27x at 512 (one thread, the default model's 30 × 3 KV heads of 64, same build).
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

// Scores of 8 consecutive positions t0.. for one query head: 8 dot products over head_dim,
// reduced together by a tree of hadds (9 instructions for 8 sums instead of ~5 each).
inline __m256 scores8(const float* qh, const float* k, int64_t t0, int64_t head_dim) {
  __m256 a[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 8 <= head_dim; d += 8) {
    const __m256 qd = _mm256_loadu_ps(qh + d);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      a[i] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + (t0 + i) * head_dim + d), a[i]);
  }
  if (d < head_dim) {
    const __m256i m = tail_mask8(head_dim - d);
    const __m256 qd = load(qh + d, m);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      a[i] = _mm256_fmadd_ps(qd, load(k + (t0 + i) * head_dim + d, m), a[i]);
  }
  const __m256 s0123 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 s4567 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  // Each 128-bit half holds the 4 positions' partial sums over its own half of the lanes.
  return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20),
                       _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

// out[h] = Σ_t p_h[t] · v[t] for HB heads at once over 8·NV columns from c: each value row is
// loaded once for all HB heads. kFull: all 8·NV columns lie inside head_dim (no masks).
template <int HB, int NV, bool kFull>
void weighted_values(const float* p, int64_t len, const float* v, int64_t head_dim, int64_t c,
                     float* out) {
  __m256i m[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) m[j] = tail_mask8(head_dim - c - 8 * j);
  __m256 acc[HB][NV];
#pragma GCC unroll 4
  for (int h = 0; h < HB; ++h)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[h][j] = _mm256_setzero_ps();
  for (int64_t t = 0; t < len; ++t) {
    const float* row = v + t * head_dim + c;
    __m256 vr[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      vr[j] = kFull ? _mm256_loadu_ps(row + 8 * j) : load(row + 8 * j, m[j]);
#pragma GCC unroll 4
    for (int h = 0; h < HB; ++h) {
      const __m256 pt = _mm256_broadcast_ss(p + h * len + t);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[h][j] = _mm256_fmadd_ps(pt, vr[j], acc[h][j]);
    }
  }
#pragma GCC unroll 4
  for (int h = 0; h < HB; ++h)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) store(out + h * head_dim + c + 8 * j, m[j], acc[h][j]);
}

template <int HB>
void weighted_values_heads(const float* p, int64_t len, const float* v, int64_t head_dim,
                           float* out) {
  for (int64_t c = 0; c < head_dim; c += 32) {
    if (c + 32 <= head_dim) weighted_values<HB, 4, true>(p, len, v, head_dim, c, out);
    else weighted_values<HB, 4, false>(p, len, v, head_dim, c, out);
  }
}

void attend(const float* q, const float* k, const float* v, int64_t len, int64_t head_dim,
            int64_t group, float scale, float* scores, float* out) {
  // Scores: blocks of 8 positions, every head of the group per block, so the block's key rows
  // stay in L1 across the group; the last len % 8 positions one dot product each.
  const __m256 vscale = _mm256_set1_ps(scale);
  int64_t t = 0;
  for (; t + 8 <= len; t += 8)
    for (int64_t h = 0; h < group; ++h)
      _mm256_storeu_ps(scores + h * len + t,
                       _mm256_mul_ps(scores8(q + h * head_dim, k, t, head_dim), vscale));
  for (; t < len; ++t)
    for (int64_t h = 0; h < group; ++h)
      scores[h * len + t] = dot(q + h * head_dim, k + t * head_dim, head_dim) * scale;
  for (int64_t h = 0; h < group; ++h) softmax_inplace(scores + h * len, len);
  // Weighted sum of values: up to 3 heads per pass over the value rows (3 heads × 32 columns
  // = 12 accumulators, each FMA independent of the next).
  int64_t h = 0;
  for (; h + 3 <= group; h += 3)
    weighted_values_heads<3>(scores + h * len, len, v, head_dim, out + h * head_dim);
  if (group - h == 2)
    weighted_values_heads<2>(scores + h * len, len, v, head_dim, out + h * head_dim);
  if (group - h == 1)
    weighted_values_heads<1>(scores + h * len, len, v, head_dim, out + h * head_dim);
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
