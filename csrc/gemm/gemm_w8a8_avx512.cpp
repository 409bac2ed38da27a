// gemm_w8a8, AVX-512 VNNI: int8 activations (per token) × int8 weights (per channel).
//
// vpdpbusd multiplies unsigned by signed bytes, four per int32 lane. A 64-byte load of
// int8_tile16x4 is 16 output rows × 4 columns, exactly one vpdpbusd operand with each row in its
// own lane; the four activation bytes x[m][4s..4s+3] are broadcast to every lane. Weights are
// made unsigned by flipping the sign bit (w ^ 0x80 = w + 128), and the extra 128·Σx is removed
// once per row in the epilogue: Σ x·(w+128) − 128·Σ x = Σ x·w, exact in int32 for K ≤ 65536.
// The MR×NR register tile reuses each weight vector MR times and each broadcast NR times.
#include <immintrin.h>

#include "common/avx512_util.h"
#include "gemm/gemm_w8a8.h"

#include <algorithm>
#include <cstring>

namespace llmaccel::detail {
namespace {

constexpr int64_t kPanelRows = 48;

template <int MR, int NR>
void tile(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y, int64_t m0,
          int64_t b0) {
  const int64_t k_pad = w.k_pad, steps = k_pad / 4;
  const int8_t* qb[NR];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) qb[r] = w.qweight + (b0 + r) * steps * 64;
  __m512i acc[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[m][r] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int8_t* xr = xq.q + m0 * xq.k_pad;
  for (int64_t s = 0; s < steps; ++s) {
    __m512i v[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      v[r] = _mm512_xor_si512(_mm512_loadu_si512(qb[r] + s * 64), flip);
      _mm_prefetch(reinterpret_cast<const char*>(qb[r] + s * 64 + 1024), _MM_HINT_T0);
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      int32_t quad;
      std::memcpy(&quad, xr + m * xq.k_pad + 4 * s, 4);
      const __m512i xb = _mm512_set1_epi32(quad);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) avx512::dpbusd(acc[m][r], v[r], xb);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
    // One scale per token: the activation block is all of K.
    const __m512i offset = _mm512_set1_epi32(128 * xq.qsum[m0 + m]);
    const __m512 sx = _mm512_set1_ps(xq.scale[m0 + m]);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const int64_t c = (b0 + r) * 16;
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[m][r], offset));
      const __m512 s = _mm512_mul_ps(sx, _mm512_loadu_ps(w.scales + c));
      avx512::store_out16(y, m0 + m, c, _mm512_mul_ps(dot, s), bias, w.n - c);
    }
  }
}

// One activation block [s0, s1) of k4-steps for rows [m0, m0 + MR): fout += sx_b · Σ xq·q.
// Its own (not inlined) function with the accumulators local to it: written inside a loop over
// blocks, GCC 12 kept the accumulator tile in memory and the kernel ran at half speed. The step
// loop repeats tile()'s on purpose: routing the per-token path through this function too cost
// 5-20 % (one more call and tile store per row tile; measured at 4096x4096 and 576x1536).
template <int MR, int NR>
__attribute__((noinline)) void tile_block(const QuantAct& xq, const PackedW8& w, int64_t m0,
                                          int64_t b0, int64_t blk, float* fout) {
  const int64_t steps = w.k_pad / 4, n_blocks = xq.k_pad / xq.block;
  const int64_t s0 = blk * (xq.block / 4);
  // A trip count from zero, not a [s0, s1) range: with the range GCC 12 spilled the tile.
  const int64_t len = std::min(steps - s0, xq.block / 4);
  const int8_t* qb[NR];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) qb[r] = w.qweight + (b0 + r) * steps * 64;
  __m512i acc[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[m][r] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int8_t* xr = xq.q + m0 * xq.k_pad;
  for (int64_t i = 0; i < len; ++i) {
    const int64_t s = s0 + i;
    __m512i v[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      v[r] = _mm512_xor_si512(_mm512_loadu_si512(qb[r] + s * 64), flip);
      _mm_prefetch(reinterpret_cast<const char*>(qb[r] + s * 64 + 1024), _MM_HINT_T0);
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      int32_t quad;
      std::memcpy(&quad, xr + m * xq.k_pad + 4 * s, 4);
      const __m512i xb = _mm512_set1_epi32(quad);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) avx512::dpbusd(acc[m][r], v[r], xb);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
    const int64_t am = (m0 + m) * n_blocks + blk;
    const __m512i offset = _mm512_set1_epi32(128 * xq.qsum[am]);
    const __m512 sx = _mm512_set1_ps(xq.scale[am]);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      float* f = fout + (m * NR + r) * 16;
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[m][r], offset));
      _mm512_store_ps(f, _mm512_fmadd_ps(dot, sx, _mm512_load_ps(f)));
    }
  }
}

// Blocked activations: y = s · Σ_b sx_b · dot_b + bias, block by block into an fp32 tile in L1.
template <int MR, int NR>
void tile_blocked(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                  int64_t m0, int64_t b0) {
  alignas(64) float fout[MR * NR * 16] = {};
  const int64_t steps = w.k_pad / 4, block_steps = xq.block / 4;
  for (int64_t blk = 0; blk * block_steps < steps; ++blk)
    tile_block<MR, NR>(xq, w, m0, b0, blk, fout);
  for (int r = 0; r < NR; ++r) {
    const int64_t c = (b0 + r) * 16;
    const __m512 sw = _mm512_loadu_ps(w.scales + c);
    for (int m = 0; m < MR; ++m)
      avx512::store_out16(y, m0 + m, c, _mm512_mul_ps(_mm512_load_ps(fout + (m * NR + r) * 16), sw),
                          bias, w.n - c);
  }
}

template <int MR, int NR, bool kBlocked>
void any_tile(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
              int64_t m0, int64_t b0) {
  if constexpr (kBlocked) tile_blocked<MR, NR>(xq, w, bias, y, m0, b0);
  else tile<MR, NR>(xq, w, bias, y, m0, b0);
}

// Runs every row of x against blocks [b, b + NR): the weight tile stays in L1/L2 while the
// (smaller) quantized activations stream past it.
template <int NR, bool kBlocked>
void block_group(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                 int64_t b, int64_t m, int64_t m_end) {
  for (; m + 6 <= m_end; m += 6) any_tile<6, NR, kBlocked>(xq, w, bias, y, m, b);
  switch (m_end - m) {
    case 5: any_tile<4, NR, kBlocked>(xq, w, bias, y, m, b); any_tile<1, NR, kBlocked>(xq, w, bias, y, m + 4, b); break;
    case 4: any_tile<4, NR, kBlocked>(xq, w, bias, y, m, b); break;
    case 3: any_tile<3, NR, kBlocked>(xq, w, bias, y, m, b); break;
    case 2: any_tile<2, NR, kBlocked>(xq, w, bias, y, m, b); break;
    case 1: any_tile<1, NR, kBlocked>(xq, w, bias, y, m, b); break;
    default: break;
  }
}

template <bool kBlocked>
void run(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y, int64_t nb0,
         int64_t nb1) {
  for (int64_t m0 = 0; m0 < xq.m; m0 += kPanelRows) {
    const int64_t m1 = std::min(xq.m, m0 + kPanelRows);
    int64_t b = nb0;
    for (; b + 3 <= nb1; b += 3) block_group<3, kBlocked>(xq, w, bias, y, b, m0, m1);
    for (; b < nb1; ++b) block_group<1, kBlocked>(xq, w, bias, y, b, m0, m1);
  }
}

}  // namespace

void gemm_w8a8_avx512(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1) {
  // NR = 3 keeps 6×3 int32 accumulators + 3 weight vectors + 1 broadcast within 32 registers.
  // Rows go in panels of kPanelRows so that one panel of x plus one block group of weights
  // (48 × K bytes each) stay in L2 together; without panels, large M evicts the weights from L2
  // once per 6 rows and the kernel waits on L3.
  if (xq.k_pad > xq.block) return run<true>(xq, w, bias, y, nb0, nb1);
  run<false>(xq, w, bias, y, nb0, nb1);
}

}  // namespace llmaccel::detail
