// gemm_f32, AVX-512: each weight row is streamed from memory once and FMA'd, for blocks of up to
// 4 activation rows, in 16-wide chunks into MR × NR accumulators (NR weight rows stream side by
// side, so the prefetchers see NR sequential streams per thread); one horizontal sum per output
// at the end.
// K's tail is a masked load, so rows of any length are read in place, never copied.
#include <immintrin.h>

#include <algorithm>

#include "gemm/gemm_common.h"
#include "gemm/gemm_f32.h"

namespace llmaccel::detail {
namespace {

template <int MR, int NR>
void tile(const float* xf, int64_t K, const float* w, const float* bias, const Matrix& y,
          int64_t m0, int64_t n, int64_t n_end) {
  const float* wr[NR];
  for (int r = 0; r < NR; ++r) wr[r] = w + std::min(n + r, n_end - 1) * K;  // clamp: rows past
  __m512 acc[MR][NR];                                                      // the end are unused
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  // Software prefetch 2 KiB ahead in every stream; past a row's end, at the same offset in the
  // next tile's row r (rows are contiguous, so NR - 1 rows further on). The hardware
  // prefetchers alone restart on each short row (576 floats = 2.3 KiB in SmolLM2): 24-45 GB/s at
  // M = 1 against 36-75 GB/s with this, in the same runs (2 threads, SmolLM2 shapes and its
  // 49152 × 576 lm_head). A clamped or past-the-end address is harmless: prefetches never fault.
  constexpr int64_t kAhead = 512;
  const int64_t hop = (NR - 1) * K;
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 mk = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1);
    __m512 wv[NR];
    const int64_t at = k + kAhead;
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      wv[r] = _mm512_maskz_loadu_ps(mk, wr[r] + k);
      _mm_prefetch(reinterpret_cast<const char*>(wr[r] + at + (at >= K ? hop : 0)), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mk, xf + (m0 + i) * K + k);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
    }
  }
  // Reduced in fully unrolled loops: indexing acc under the runtime bound below made GCC keep
  // the accumulators in memory, storing every one of them on every step of the loop above.
  float sums[MR][NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) sums[i][r] = _mm512_reduce_add_ps(acc[i][r]);
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < NR && n + r < n_end; ++r)
      store_out(y, m0 + i, n + r, bias ? sums[i][r] + bias[n + r] : sums[i][r]);
}

}  // namespace

void gemm_f32_avx512(const float* xf, int64_t M, int64_t K, const float* w, const float* bias,
                     const Matrix& y, int64_t n0, int64_t n1) {
  // 4 weight rows side by side: measured 21-23 GB/s at M = 1 (49152 x 576, 2 threads, DRAM
  // probe 35 GB/s) against 16 GB/s with 8 rows: more streams per core did not help. Row blocks
  // outside, activation rows inside: for M > 4 the 4 weight rows are re-read from L1/L2 for each
  // block of 4 activation rows, not streamed from DRAM again (batch-8 decode of an fp32 lm_head).
  for (int64_t n = n0; n < n1; n += 4) {
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const int64_t mr = std::min<int64_t>(4, M - m0);
      switch (mr) {
        case 1: tile<1, 4>(xf, K, w, bias, y, m0, n, n1); break;
        case 2: tile<2, 4>(xf, K, w, bias, y, m0, n, n1); break;
        case 3: tile<3, 4>(xf, K, w, bias, y, m0, n, n1); break;
        default: tile<4, 4>(xf, K, w, bias, y, m0, n, n1); break;
      }
    }
  }
}

}  // namespace llmaccel::detail
