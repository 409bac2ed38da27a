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

// Runs every row of x against blocks [b, b + NR): the weight tile stays in L1/L2 while the
// (smaller) quantized activations stream past it.
template <int NR>
void block_group(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                 int64_t b, int64_t m, int64_t m_end) {
  for (; m + 6 <= m_end; m += 6) tile<6, NR>(xq, w, bias, y, m, b);
  switch (m_end - m) {
    case 5: tile<4, NR>(xq, w, bias, y, m, b); tile<1, NR>(xq, w, bias, y, m + 4, b); break;
    case 4: tile<4, NR>(xq, w, bias, y, m, b); break;
    case 3: tile<3, NR>(xq, w, bias, y, m, b); break;
    case 2: tile<2, NR>(xq, w, bias, y, m, b); break;
    case 1: tile<1, NR>(xq, w, bias, y, m, b); break;
    default: break;
  }
}

}  // namespace

void gemm_w8a8_avx512(const QuantAct& xq, const PackedW8& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1) {
  // NR = 3 keeps 6×3 int32 accumulators + 3 weight vectors + 1 broadcast within 32 registers.
  // Rows go in panels of kPanelRows so that one panel of x plus one block group of weights
  // (48 × K bytes each) stay in L2 together; without panels, large M evicts the weights from L2
  // once per 6 rows and the kernel waits on L3.
  for (int64_t m0 = 0; m0 < xq.m; m0 += kPanelRows) {
    const int64_t m1 = std::min(xq.m, m0 + kPanelRows);
    int64_t b = nb0;
    for (; b + 3 <= nb1; b += 3) block_group<3>(xq, w, bias, y, b, m0, m1);
    for (; b < nb1; ++b) block_group<1>(xq, w, bias, y, b, m0, m1);
  }
}

}  // namespace llmaccel::detail
