// gemm_w4a8, AVX-512 VNNI: int4 group-wise weights × int8 activations (per token and group).
//
// A 64-byte load of int4_tile16x8 holds 16 output rows × 8 columns. Masking the low nibbles
// gives columns 0..3 and shifting out the high nibbles gives columns 4..7: two ready vpdpbusd
// operands (unsigned codes 0..15, four per int32 lane) for two broadcasts of four activation
// bytes, with no shuffles. The int32 sums stay exact within a group; once per group the zero
// point is removed in integer arithmetic (Σ xq·q − zero·Σ xq) and the result is scaled by
// scale_w · scale_x into an fp32 tile kept in L1, which frees registers for a 6×3 tile of int32
// accumulators: each weight vector feeds 6 rows and each broadcast 3 blocks of 16 outputs.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "common/avx512_util.h"
#include "gemm/gemm_w4a8.h"

namespace llmaccel::detail {
namespace {

constexpr int64_t kPanelRows = 48;

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

template <int MR, int NR, bool kAsym>
void tile(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y, int64_t m0,
          int64_t b0) {
  const int64_t k_pad = w.k_pad, n_groups = w.n_groups(), steps_per_group = w.group_size / 8;
  const uint8_t* qb[NR];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) qb[r] = w.qweight + (b0 + r) * k_pad * 8;
  alignas(64) float out[MR][NR][16] = {};
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const int8_t* xr = xq.q + m0 * k_pad;

  for (int64_t g = 0; g < n_groups; ++g) {
    __m512i acc[MR][NR];
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) acc[m][r] = _mm512_setzero_si512();
    for (int64_t s = g * steps_per_group; s < (g + 1) * steps_per_group; ++s) {
      __m512i lo[NR], hi[NR];
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const __m512i v = _mm512_loadu_si512(qb[r] + s * 64);
        _mm_prefetch(reinterpret_cast<const char*>(qb[r] + s * 64 + 1024), _MM_HINT_T0);
        lo[r] = _mm512_and_si512(v, low4);
        hi[r] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      }
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m512i x_lo = bcast4(xr + m * k_pad + 8 * s);
        const __m512i x_hi = bcast4(xr + m * k_pad + 8 * s + 4);
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) {
          avx512::dpbusd(acc[m][r], lo[r], x_lo);
          avx512::dpbusd(acc[m][r], hi[r], x_hi);
        }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const int64_t meta = ((b0 + r) * n_groups + g) * 16;
      const __m512 sw = _mm512_loadu_ps(w.scales + meta);
      __m512i zero = _mm512_set1_epi32(8);
      if constexpr (kAsym)
        zero = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.zeros + meta)));
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const int64_t am = (m0 + m) * n_groups + g;
        const __m512i centered =
            _mm512_sub_epi32(acc[m][r], _mm512_mullo_epi32(zero, _mm512_set1_epi32(xq.qsum[am])));
        const __m512 s = _mm512_mul_ps(_mm512_set1_ps(xq.scale[am]), sw);
        _mm512_store_ps(out[m][r],
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(centered), s, _mm512_load_ps(out[m][r])));
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    const int64_t c = (b0 + r) * 16;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
      avx512::store_out16(y, m0 + m, c, _mm512_load_ps(out[m][r]), bias, w.n - c);
  }
}

// Every row of x against blocks [b, b + NR): the weight tile stays in L1/L2 while the quantized
// activations stream past it.
template <int NR, bool kAsym>
void block_group(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y,
                 int64_t b, int64_t m, int64_t m_end) {
  for (; m + 6 <= m_end; m += 6) tile<6, NR, kAsym>(xq, w, bias, y, m, b);
  switch (m_end - m) {
    case 5: tile<4, NR, kAsym>(xq, w, bias, y, m, b); tile<1, NR, kAsym>(xq, w, bias, y, m + 4, b); break;
    case 4: tile<4, NR, kAsym>(xq, w, bias, y, m, b); break;
    case 3: tile<3, NR, kAsym>(xq, w, bias, y, m, b); break;
    case 2: tile<2, NR, kAsym>(xq, w, bias, y, m, b); break;
    case 1: tile<1, NR, kAsym>(xq, w, bias, y, m, b); break;
    default: break;
  }
}

template <bool kAsym>
void run(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y, int64_t nb0,
         int64_t nb1) {
  // Rows in panels of kPanelRows: one panel of x and one block group of weights stay in L2
  // together, so large M does not evict the weights once per 6 rows.
  for (int64_t m0 = 0; m0 < xq.m; m0 += kPanelRows) {
    const int64_t m1 = std::min(xq.m, m0 + kPanelRows);
    int64_t b = nb0;
    for (; b + 3 <= nb1; b += 3) block_group<3, kAsym>(xq, w, bias, y, b, m0, m1);
    for (; b < nb1; ++b) block_group<1, kAsym>(xq, w, bias, y, b, m0, m1);
  }
}

}  // namespace

void gemm_w4a8_avx512(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y,
                      int64_t nb0, int64_t nb1) {
  if (w.zeros) return run<true>(xq, w, bias, y, nb0, nb1);
  run<false>(xq, w, bias, y, nb0, nb1);
}

}  // namespace llmaccel::detail
