// AVX-512 path of distill_loss_rows (contract in distill_loss.h): the scalar path's three
// passes, 16 logits at a time, masked at the row's end (49152 is a multiple of 16; other
// vocabularies are not).
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "common/avx512_util.h"
#include "train/distill_loss.h"

namespace llmaccel {
namespace detail {
namespace {

using avx512::exp16;
using avx512::tail_mask;

inline __m512 load16(const Matrix& x, int64_t r, int64_t j, __mmask16 m) {
  if (x.dtype == DType::F32)
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(x.data) + r * x.ld + j);
  const uint16_t* row = static_cast<const uint16_t*>(x.data) + r * x.ld;
  const __m256i h = _mm256_maskz_loadu_epi16(m, row + j);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

struct RowStats {
  float max, log_norm;
};

RowStats row_stats(const Matrix& x, int64_t r, float inv_t) {
  const int64_t v = x.cols;
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 mx = neg_inf;
  for (int64_t j = 0; j < v; j += 16) {
    const __mmask16 m = tail_mask(v - j);
    mx = _mm512_mask_max_ps(mx, m, mx, load16(x, r, j, m));
  }
  const float top = _mm512_reduce_max_ps(mx);
  const __m512 vtop = _mm512_set1_ps(top), vinv = _mm512_set1_ps(inv_t);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < v; j += 16) {
    const __mmask16 m = tail_mask(v - j);
    const __m512 e = exp16(_mm512_mul_ps(_mm512_sub_ps(load16(x, r, j, m), vtop), vinv));
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  return {top, std::log(_mm512_reduce_add_ps(sum))};
}

}  // namespace

void distill_loss_rows_avx512(const DistillLossArgs& a, int64_t r_begin, int64_t r_end) {
  const int64_t v = a.student.cols;
  const float t = a.temperature, inv_t = 1.f / t;
  const bool soft = a.alpha > 0.f, hard = a.alpha < 1.f, t_is_1 = t == 1.f;
  const __m512 vinv = _mm512_set1_ps(inv_t);
  const __m512 w_soft = _mm512_set1_ps(a.alpha * t * a.scale);
  const __m512 w_hard = _mm512_set1_ps((1.f - a.alpha) * a.scale);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t r = r_begin; r < r_end; ++r) {
    const RowStats s = row_stats(a.student, r, inv_t);
    const RowStats u = soft ? row_stats(a.teacher, r, inv_t) : RowStats{0.f, 0.f};
    const RowStats s1 = hard && !t_is_1 ? row_stats(a.student, r, 1.f) : s;
    const int64_t label = hard ? a.labels[r] : -1;
    const __m512 s_max = _mm512_set1_ps(s.max), s_norm = _mm512_set1_ps(s.log_norm);
    const __m512 u_max = _mm512_set1_ps(u.max), u_norm = _mm512_set1_ps(u.log_norm);
    const __m512 s1_shift = _mm512_set1_ps(s1.max + s1.log_norm);
    __m512 kl = _mm512_setzero_ps();
    for (int64_t j = 0; j < v; j += 16) {
      const __mmask16 m = tail_mask(v - j);
      const __m512 z = load16(a.student, r, j, m);
      const __m512 log_q = _mm512_sub_ps(_mm512_mul_ps(_mm512_sub_ps(z, s_max), vinv), s_norm);
      const __m512 q = exp16(log_q);
      __m512 g = _mm512_setzero_ps();
      if (soft) {
        const __m512 log_p = _mm512_sub_ps(
            _mm512_mul_ps(_mm512_sub_ps(load16(a.teacher, r, j, m), u_max), vinv), u_norm);
        const __m512 p = exp16(log_p);
        kl = _mm512_mask3_fmadd_ps(p, _mm512_sub_ps(log_p, log_q), kl, m);
        g = _mm512_mul_ps(w_soft, _mm512_sub_ps(q, p));
      }
      if (hard) {
        __m512 q1 = t_is_1 ? q : exp16(_mm512_sub_ps(z, s1_shift));
        const __mmask16 is_label =
            _mm512_cmpeq_epi32_mask(_mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(j))),
                                    _mm512_set1_epi32(static_cast<int>(label)));
        q1 = _mm512_mask_sub_ps(q1, is_label, q1, _mm512_set1_ps(1.f));
        g = _mm512_fmadd_ps(w_hard, q1, g);
      }
      avx512::store_out16(a.grad, r, j, g, nullptr, v - j);
    }
    if (soft) a.kl[r] = _mm512_reduce_add_ps(kl);
    if (hard) {
      a.nll[r] = -(load_act(a.student, r, label) - s1.max - s1.log_norm);
    }
  }
}

}  // namespace detail
}  // namespace llmaccel
