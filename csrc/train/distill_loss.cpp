#include "train/distill_loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/cpu_features.h"
#include "common/exp_poly.h"
#include "common/parallel.h"

namespace llmaccel {
namespace detail {
namespace {

struct RowStats {
  float max;       // of the row's logits
  float log_norm;  // log Σ exp((x − max) / T)
};

RowStats row_stats(const Matrix& x, int64_t r, float inv_t) {
  const int64_t v = x.cols;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < v; ++j) mx = std::max(mx, load_act(x, r, j));
  float sum = 0.f;
  for (int64_t j = 0; j < v; ++j) sum += exp_poly((load_act(x, r, j) - mx) * inv_t);
  return {mx, std::log(sum)};
}

}  // namespace

void distill_loss_rows_scalar(const DistillLossArgs& a, int64_t r_begin, int64_t r_end) {
  const int64_t v = a.student.cols;
  const float t = a.temperature, inv_t = 1.f / t;
  const bool soft = a.alpha > 0.f, hard = a.alpha < 1.f;
  const float w_soft = a.alpha * t * a.scale, w_hard = (1.f - a.alpha) * a.scale;
  for (int64_t r = r_begin; r < r_end; ++r) {
    const RowStats s = row_stats(a.student, r, inv_t);
    const RowStats u = soft ? row_stats(a.teacher, r, inv_t) : RowStats{0.f, 0.f};
    // The hard loss's softmax is at T = 1: its own normaliser unless T is 1.
    const RowStats s1 = hard && t != 1.f ? row_stats(a.student, r, 1.f) : s;
    const int64_t label = hard ? a.labels[r] : -1;
    float kl = 0.f;
    for (int64_t j = 0; j < v; ++j) {
      const float z = load_act(a.student, r, j);
      const float log_q = (z - s.max) * inv_t - s.log_norm;
      const float q = exp_poly(log_q);
      float g = 0.f;
      if (soft) {
        const float log_p = (load_act(a.teacher, r, j) - u.max) * inv_t - u.log_norm;
        const float p = exp_poly(log_p);
        kl += p * (log_p - log_q);
        g = w_soft * (q - p);
      }
      if (hard) {
        const float q1 = t == 1.f ? q : exp_poly(z - s1.max - s1.log_norm);
        g += w_hard * (q1 - (j == label ? 1.f : 0.f));
      }
      store_out(a.grad, r, j, g);
    }
    if (soft) a.kl[r] = kl;
    if (hard) a.nll[r] = -(load_act(a.student, r, label) - s1.max - s1.log_norm);
  }
}

}  // namespace detail

void distill_loss_rows(const DistillLossArgs& a, int num_threads) {
  const bool avx512 = cpu_isa_avx512(), avx2 = cpu_isa_avx2();
  parallel_for(a.student.rows, num_threads, [&](int64_t b, int64_t e) {
#ifdef LLMACCEL_HAVE_AVX512
    if (avx512) return detail::distill_loss_rows_avx512(a, b, e);
#endif
#ifdef LLMACCEL_HAVE_AVX2
    if (avx2) return detail::distill_loss_rows_avx2(a, b, e);
#endif
    (void)avx512;
    (void)avx2;
    detail::distill_loss_rows_scalar(a, b, e);
  });
}

}  // namespace llmaccel
