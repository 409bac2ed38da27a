// The distillation trainer's loss and its gradient with respect to the student's logits, one
// row (token) at a time, in one kernel: the loss is a few exps per logit, but a 49k vocabulary
// makes every row 49k wide, and torch spends ~15 passes per row on it (both log_softmaxes, exp,
// the product, the sum, the gradient), measured 0.56 s per 1k tokens on this 2-core machine
// even chunked to stay in cache. Here: three passes over the row (max, the normalisers, then
// the loss terms and the gradient written once).
//
// For row r of student logits z (and teacher logits u when alpha > 0), temperature T,
// q = softmax(z / T), p = softmax(u / T), q1 = softmax(z):
//   kl[r]  = Σ_j p_j (log p_j − log q_j)                  (when alpha > 0; not scaled by T²)
//   nll[r] = −log q1[label[r]]                             (when alpha < 1)
//   g[r,j] = scale · (alpha · T · (q_j − p_j) + (1 − alpha) · (q1_j − [j == label[r]]))
// which is d/dz of scale · (alpha · T² · kl + (1 − alpha) · nll).
//
// Precision: fp32 with exp_poly / exp16 (relative error <= 2e-7, arguments clamped at -87, so
// a probability below ~1e-38 reads as that instead of 0); sums in 16 (AVX-512) or 8 (AVX2) fp32
// lanes. Every path agrees with the float64 reference to ~1e-6 relative, not bit for bit.
#pragma once
#include <cstdint>

#include "common/tensor_view.h"

namespace llmaccel {

struct DistillLossArgs {
  Matrix student;          // (rows, V) f32 or bf16
  Matrix teacher;          // (rows, V) f32 or bf16; data null when alpha == 0
  const int64_t* labels;   // (rows,) in [0, V); null when alpha == 1
  float alpha, temperature, scale;
  Matrix grad;             // (rows, V) f32 or bf16, written
  float* kl;               // (rows,) written when alpha > 0
  float* nll;              // (rows,) written when alpha < 1
};

void distill_loss_rows(const DistillLossArgs& a, int num_threads);

namespace detail {
void distill_loss_rows_scalar(const DistillLossArgs& a, int64_t r_begin, int64_t r_end);
void distill_loss_rows_avx512(const DistillLossArgs& a, int64_t r_begin, int64_t r_end);
void distill_loss_rows_avx2(const DistillLossArgs& a, int64_t r_begin, int64_t r_end);
}  // namespace detail
}  // namespace llmaccel
