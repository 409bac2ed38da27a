// gemm_w8a8, AVX2: int8 activations (per token, or per token and block of K) × int8 weights
// (per channel), for x86-64 CPUs without AVX-512.
//
// The int8_tile16x4 blocks are read as 8-row strips (common/avx2_util.h): one 32-byte load is 8
// output rows × 4 columns, each row in its own dword lane. Without VNNI the four-byte dot
// products take vpmaddubsw (u8 · s8 pairs summed to int16) and vpmaddwd against ones (int16
// pairs summed to int32). vpmaddubsw needs one unsigned operand, so the weights' signs move to
// the activations: |w| · sign(w)·x = w·x (vpabsb, vpsignb). That is exact: activations are
// quantized to [−127, 127] (quant_act_int8.h), so negating them cannot overflow, and a pair is
// at most 2 · 128 · 127 = 32512, below int16 saturation.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "common/avx2_util.h"
#include "gemm/gemm_w8a8.h"

namespace llmaccel::detail {
namespace {

constexpr int64_t kPanelRows = 48;

// Σ xq·w over activation block blk, for rows [m0, m0 + MR) × strips [s0, s0 + NS), converted
// to float into dot[MR][NS][8]. Its own (not inlined) function with the accumulators local to
// it, for the reason gemm_w8a8_avx512.cpp gives: inside a loop over blocks GCC 12 kept the
// accumulator tile in memory.
template <int MR, int NS>
__attribute__((noinline)) void block_dots(const QuantAct& xq, const PackedW8& w, int64_t m0,
                                          int64_t s0, int64_t blk, float* dot) {
  const int64_t steps = w.k_pad / 4, first = blk * (xq.block / 4);
  const int64_t len = std::min(steps - first, xq.block / 4);
  const int8_t* qs[NS];
#pragma GCC unroll 8
  for (int r = 0; r < NS; ++r) qs[r] = avx2::strip_base(w.qweight, steps * 64, s0 + r) + first * 64;
  __m256i acc[MR][NS];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < NS; ++r) acc[m][r] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* xr = xq.q + m0 * xq.k_pad + 4 * first;
  for (int64_t i = 0; i < len; ++i) {
    __m256i v[NS], mag[NS];
#pragma GCC unroll 8
    for (int r = 0; r < NS; ++r) {
      v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs[r] + i * 64));
      _mm_prefetch(reinterpret_cast<const char*>(qs[r] + i * 64 + 1024), _MM_HINT_T0);
      mag[r] = _mm256_abs_epi8(v[r]);
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      int32_t quad;
      std::memcpy(&quad, xr + m * xq.k_pad + 4 * i, 4);
      const __m256i xb = _mm256_set1_epi32(quad);
#pragma GCC unroll 8
      for (int r = 0; r < NS; ++r) {
        const __m256i pairs = _mm256_maddubs_epi16(mag[r], _mm256_sign_epi8(xb, v[r]));
        acc[m][r] = _mm256_add_epi32(acc[m][r], _mm256_madd_epi16(pairs, ones));
      }
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < NS; ++r) _mm256_store_ps(dot + (m * NS + r) * 8, _mm256_cvtepi32_ps(acc[m][r]));
}

// y = sx · sw · dot + bias with one activation block (per token), else y = sw · Σ_b sx_b · dot_b
// + bias: the same operations in the same order as gemm_w8a8_scalar.
template <int MR, int NS>
void tile(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y, int64_t m0,
          int64_t s0) {
  alignas(32) float dot[MR * NS * 8], fout[MR * NS * 8] = {};
  const int64_t n_blocks = xq.k_pad / xq.block, block_steps = xq.block / 4;
  const int64_t steps = w.k_pad / 4;
  for (int64_t blk = 0; blk * block_steps < steps; ++blk) {
    block_dots<MR, NS>(xq, w, m0, s0, blk, dot);
    for (int m = 0; m < MR; ++m) {
      const __m256 sx = _mm256_set1_ps(xq.scale[(m0 + m) * n_blocks + blk]);
      for (int r = 0; r < NS; ++r) {
        float* f = fout + (m * NS + r) * 8;
        const __m256 d = _mm256_load_ps(dot + (m * NS + r) * 8);
        if (n_blocks == 1)
          _mm256_store_ps(f, _mm256_mul_ps(d, _mm256_mul_ps(sx, _mm256_loadu_ps(w.scales + (s0 + r) * 8))));
        else
          _mm256_store_ps(f, _mm256_fmadd_ps(d, sx, _mm256_load_ps(f)));
      }
    }
  }
  for (int r = 0; r < NS; ++r) {
    const int64_t c = (s0 + r) * 8;
    const __m256 sw = _mm256_loadu_ps(w.scales + c);
    for (int m = 0; m < MR; ++m) {
      __m256 v = _mm256_load_ps(fout + (m * NS + r) * 8);
      if (n_blocks > 1) v = _mm256_mul_ps(v, sw);
      avx2::store_out8(y, m0 + m, c, v, bias, w.n - c);
    }
  }
}

// Every row of x against strips [s, s + NS): the weight strips stay in L1/L2 while the
// (smaller) quantized activations stream past them.
template <int NS>
void strip_group(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                 int64_t s, int64_t m, int64_t m_end) {
  // 4 × 2 int32 accumulators + 2 × 2 weight vectors + a broadcast + ones: 14 of 16 registers.
  for (; m + 4 <= m_end; m += 4) tile<4, NS>(xq, w, bias, y, m, s);
  switch (m_end - m) {
    case 3: tile<3, NS>(xq, w, bias, y, m, s); break;
    case 2: tile<2, NS>(xq, w, bias, y, m, s); break;
    case 1: tile<1, NS>(xq, w, bias, y, m, s); break;
    default: break;
  }
}

}  // namespace

void gemm_w8a8_avx2(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                    int64_t nb0, int64_t nb1) {
  // Rows go in panels of kPanelRows so that one panel of x plus one strip pair of weights stay
  // in L2 together; without panels, large M evicts the weights from L2 once per 4 rows.
  for (int64_t m0 = 0; m0 < xq.m; m0 += kPanelRows) {
    const int64_t m1 = std::min(xq.m, m0 + kPanelRows);
    int64_t s = 2 * nb0;
    for (; s + 2 <= 2 * nb1; s += 2) strip_group<2>(xq, w, bias, y, s, m0, m1);
    for (; s < 2 * nb1; ++s) strip_group<1>(xq, w, bias, y, s, m0, m1);
  }
}

}  // namespace llmaccel::detail
