// AVX2 path of distill_loss_rows (contract in distill_loss.h): the scalar path's three passes,
// 8 logits at a time. AVX2 has no masked 16-bit loads or stores, so a row's last partial
// vector goes through an 8-wide copy; fp32 tails use vmaskmovps.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "common/avx2_util.h"
#include "train/distill_loss.h"

namespace llmaccel {
namespace detail {
namespace {

using avx2::exp8;
using avx2::tail_mask8;

// Logits j..j+7 of row r as fp32; lanes past `valid` read as `fill`.
inline __m256 load8(const Matrix& x, int64_t r, int64_t j, int64_t valid, float fill) {
  if (x.dtype == DType::F32) {
    const float* p = static_cast<const float*>(x.data) + r * x.ld + j;
    if (valid >= 8) return _mm256_loadu_ps(p);
    const __m256i m = tail_mask8(valid);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  const uint16_t* p = static_cast<const uint16_t*>(x.data) + r * x.ld + j;
  __m128i h;
  if (valid >= 8) {
    h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  } else {
    alignas(16) uint16_t t[8] = {};
    std::memcpy(t, p, sizeof(uint16_t) * valid);
    h = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
  }
  const __m256 v = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  if (valid >= 8) return v;
  return _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(tail_mask8(valid)));
}

// fp32 → bf16, round to nearest even, NaN kept quiet: the same rule as f32_to_bf16.
inline __m128i f32_to_bf16(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb);
  __m256i r = _mm256_srli_epi32(rounded, 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  r = _mm256_blendv_epi8(r, quiet, nan);
  // Each lane's value is < 2^16: packus keeps it; it interleaves the 128-bit halves, so
  // gather them back in order.
  const __m256i packed = _mm256_packus_epi32(r, r);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

// Gradient entries j..j+7 of row r (the first `valid`).
inline void store8(const Matrix& g, int64_t r, int64_t j, __m256 v, int64_t valid) {
  if (g.dtype == DType::F32) {
    float* p = static_cast<float*>(g.data) + r * g.ld + j;
    if (valid >= 8) return _mm256_storeu_ps(p, v);
    return _mm256_maskstore_ps(p, tail_mask8(valid), v);
  }
  uint16_t* p = static_cast<uint16_t*>(g.data) + r * g.ld + j;
  const __m128i h = f32_to_bf16(v);
  if (valid >= 8) return _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
  alignas(16) uint16_t t[8];
  _mm_store_si128(reinterpret_cast<__m128i*>(t), h);
  std::memcpy(p, t, sizeof(uint16_t) * valid);
}

struct RowStats {
  float max, log_norm;
};

RowStats row_stats(const Matrix& x, int64_t r, float inv_t) {
  const int64_t v = x.cols;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  __m256 mx = _mm256_set1_ps(neg_inf);
  for (int64_t j = 0; j < v; j += 8) mx = _mm256_max_ps(mx, load8(x, r, j, v - j, neg_inf));
  const float top = avx2::reduce_max8(mx);
  const __m256 vtop = _mm256_set1_ps(top), vinv = _mm256_set1_ps(inv_t);
  __m256 sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < v; j += 8) {
    // Lanes past the row read as −inf: exp8 clamps its argument at −87, so mask them out.
    const __m256 e = exp8(_mm256_mul_ps(_mm256_sub_ps(load8(x, r, j, v - j, 0.f), vtop), vinv));
    sum = _mm256_add_ps(
        sum, v - j >= 8 ? e : _mm256_and_ps(e, _mm256_castsi256_ps(tail_mask8(v - j))));
  }
  return {top, std::log(avx2::reduce_add8(sum))};
}

}  // namespace

void distill_loss_rows_avx2(const DistillLossArgs& a, int64_t r_begin, int64_t r_end) {
  const int64_t v = a.student.cols;
  const float t = a.temperature, inv_t = 1.f / t;
  const bool soft = a.alpha > 0.f, hard = a.alpha < 1.f, t_is_1 = t == 1.f;
  const __m256 vinv = _mm256_set1_ps(inv_t);
  const __m256 w_soft = _mm256_set1_ps(a.alpha * t * a.scale);
  const __m256 w_hard = _mm256_set1_ps((1.f - a.alpha) * a.scale);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t r = r_begin; r < r_end; ++r) {
    const RowStats s = row_stats(a.student, r, inv_t);
    const RowStats u = soft ? row_stats(a.teacher, r, inv_t) : RowStats{0.f, 0.f};
    const RowStats s1 = hard && !t_is_1 ? row_stats(a.student, r, 1.f) : s;
    const int64_t label = hard ? a.labels[r] : -1;
    const __m256 s_max = _mm256_set1_ps(s.max), s_norm = _mm256_set1_ps(s.log_norm);
    const __m256 u_max = _mm256_set1_ps(u.max), u_norm = _mm256_set1_ps(u.log_norm);
    const __m256 s1_shift = _mm256_set1_ps(s1.max + s1.log_norm);
    const __m256i vlabel = _mm256_set1_epi32(static_cast<int>(label));
    __m256 kl = _mm256_setzero_ps();
    for (int64_t j = 0; j < v; j += 8) {
      const int64_t valid = v - j;
      const __m256 z = load8(a.student, r, j, valid, 0.f);
      const __m256 log_q = _mm256_sub_ps(_mm256_mul_ps(_mm256_sub_ps(z, s_max), vinv), s_norm);
      const __m256 q = exp8(log_q);
      __m256 g = _mm256_setzero_ps();
      if (soft) {
        const __m256 log_p = _mm256_sub_ps(
            _mm256_mul_ps(_mm256_sub_ps(load8(a.teacher, r, j, valid, 0.f), u_max), vinv), u_norm);
        const __m256 p = exp8(log_p);
        __m256 term = _mm256_mul_ps(p, _mm256_sub_ps(log_p, log_q));
        if (valid < 8) term = _mm256_and_ps(term, _mm256_castsi256_ps(tail_mask8(valid)));
        kl = _mm256_add_ps(kl, term);
        g = _mm256_mul_ps(w_soft, _mm256_sub_ps(q, p));
      }
      if (hard) {
        __m256 q1 = t_is_1 ? q : exp8(_mm256_sub_ps(z, s1_shift));
        const __m256 is_label = _mm256_castsi256_ps(_mm256_cmpeq_epi32(
            _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(j))), vlabel));
        q1 = _mm256_sub_ps(q1, _mm256_and_ps(is_label, _mm256_set1_ps(1.f)));
        g = _mm256_fmadd_ps(w_hard, q1, g);
      }
      store8(a.grad, r, j, g, valid);
    }
    if (soft) a.kl[r] = avx2::reduce_add8(kl);
    if (hard) a.nll[r] = -(load_act(a.student, r, label) - s1.max - s1.log_norm);
  }
}

}  // namespace detail
}  // namespace llmaccel
