// gemm_f32, AVX2 + FMA: gemm_f32_avx512.cpp's scheme (each weight row streamed once, NR rows side
// by side with a software prefetch ahead in each stream, one horizontal sum per output at the
// end) in 8-wide chunks, for CPUs without AVX-512. 16 ymm registers hold 2 activation rows × 4
// weight rows of accumulators; K's tail is a masked load (vmaskmovps), so rows are read in place.
#include <immintrin.h>

#include <algorithm>

#include "common/avx2_util.h"
#include "gemm/gemm_common.h"
#include "gemm/gemm_f32.h"

namespace llmaccel::detail {
namespace {

template <int MR, int NR>
void tile(const float* xf, int64_t K, const float* w, const float* bias, const Matrix& y,
          int64_t m0, int64_t n, int64_t n_end) {
  const float* wr[NR];
  for (int r = 0; r < NR; ++r) wr[r] = w + std::min(n + r, n_end - 1) * K;  // clamp: rows past
  __m256 acc[MR][NR];                                                      // the end are unused
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_setzero_ps();
  // 2 KiB ahead in every stream, continuing into the next tile's rows (see the AVX-512 file).
  constexpr int64_t kAhead = 512;
  const int64_t hop = (NR - 1) * K, k_full = K / 8 * 8;
  auto step = [&](int64_t k, auto load) {
    __m256 wv[NR];
    const int64_t at = k + kAhead;
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      wv[r] = load(wr[r] + k);
      _mm_prefetch(reinterpret_cast<const char*>(wr[r] + at + (at >= K ? hop : 0)), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = load(xf + (m0 + i) * K + k);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
    }
  };
  for (int64_t k = 0; k < k_full; k += 8) step(k, [](const float* p) { return _mm256_loadu_ps(p); });
  if (k_full < K) {
    const __m256i mk = avx2::tail_mask8(K - k_full);
    step(k_full, [mk](const float* p) { return _mm256_maskload_ps(p, mk); });
  }
  // Reduced in fully unrolled loops, as in the AVX-512 file (runtime-bounded indexing of acc
  // kept the accumulators in memory).
  float sums[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) sums[i][r] = avx2::reduce_add8(acc[i][r]);
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR && n + r < n_end; ++r)
      store_out(y, m0 + i, n + r, bias ? sums[i][r] + bias[n + r] : sums[i][r]);
}

}  // namespace

void gemm_f32_avx2(const float* xf, int64_t M, int64_t K, const float* w, const float* bias,
                   const Matrix& y, int64_t n0, int64_t n1) {
  // Row blocks outside, activation rows inside: for M > 2 the 4 weight rows are re-read from
  // L1/L2 for each pair of activation rows, not streamed from DRAM again.
  for (int64_t n = n0; n < n1; n += 4) {
    for (int64_t m0 = 0; m0 < M; m0 += 2) {
      if (M - m0 == 1) tile<1, 4>(xf, K, w, bias, y, m0, n, n1);
      else tile<2, 4>(xf, K, w, bias, y, m0, n, n1);
    }
  }
}

}  // namespace llmaccel::detail
