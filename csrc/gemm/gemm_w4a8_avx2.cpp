// gemm_w4a8, AVX2: int4 group-wise weights × int8 activations (per token and group), for
// x86-64 CPUs without AVX-512.
//
// The int4_tile16x8 blocks are read as 8-row strips (common/avx2_util.h): one 32-byte load is 8
// output rows × 8 columns. Masking the low nibbles gives columns 0..3 and shifting out the high
// nibbles columns 4..7, each as four unsigned bytes per row lane. Without VNNI the four-byte dot
// products take vpmaddubsw (u8 · s8 pairs summed to int16) and vpmaddwd against ones (int16 pairs
// summed to int32). Both are exact here: |q · x| ≤ 15 · 127, so a pair, and the low + high pair
// sum added in int16 before widening, stay below 4 · 15 · 127 = 7620, far from int16 saturation.
// Once per group the zero point is removed in integer arithmetic (Σ xq·q − zero·Σ xq) and the
// result is scaled by scale_w · scale_x into an fp32 tile in L1.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "common/avx2_util.h"
#include "gemm/gemm_w4a8.h"

namespace llmaccel::detail {
namespace {

constexpr int64_t kPanelRows = 48;

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

template <int MR, int NS, bool kAsym>
void tile(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y, int64_t m0,
          int64_t s0) {
  const int64_t k_pad = w.k_pad, n_groups = w.n_groups(), steps_per_group = w.group_size / 8;
  const uint8_t* qs[NS];
#pragma GCC unroll 8
  for (int r = 0; r < NS; ++r) qs[r] = avx2::strip_base(w.qweight, k_pad * 8, s0 + r);
  alignas(32) float out[MR][NS][8] = {};
  const __m256i low4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const int8_t* xr = xq.q + m0 * k_pad;

  for (int64_t g = 0; g < n_groups; ++g) {
    __m256i acc[MR][NS];
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
      for (int r = 0; r < NS; ++r) acc[m][r] = _mm256_setzero_si256();
    for (int64_t s = g * steps_per_group; s < (g + 1) * steps_per_group; ++s) {
      __m256i lo[NS], hi[NS];
#pragma GCC unroll 8
      for (int r = 0; r < NS; ++r) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs[r] + s * 64));
        _mm_prefetch(reinterpret_cast<const char*>(qs[r] + s * 64 + 1024), _MM_HINT_T0);
        lo[r] = _mm256_and_si256(v, low4);
        hi[r] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      }
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m256i x_lo = bcast4(xr + m * k_pad + 8 * s);
        const __m256i x_hi = bcast4(xr + m * k_pad + 8 * s + 4);
#pragma GCC unroll 8
        for (int r = 0; r < NS; ++r) {
          const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo[r], x_lo),
                                                 _mm256_maddubs_epi16(hi[r], x_hi));
          acc[m][r] = _mm256_add_epi32(acc[m][r], _mm256_madd_epi16(pairs, ones));
        }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NS; ++r) {
      const int64_t meta = avx2::strip_meta(s0 + r, n_groups, g);
      const __m256 sw = _mm256_loadu_ps(w.scales + meta);
      __m256i zero = _mm256_set1_epi32(8);
      if constexpr (kAsym)
        zero = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.zeros + meta)));
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const int64_t am = (m0 + m) * n_groups + g;
        const __m256i centered =
            _mm256_sub_epi32(acc[m][r], _mm256_mullo_epi32(zero, _mm256_set1_epi32(xq.qsum[am])));
        const __m256 s = _mm256_mul_ps(_mm256_set1_ps(xq.scale[am]), sw);
        _mm256_store_ps(out[m][r],
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(centered), s, _mm256_load_ps(out[m][r])));
      }
    }
  }
  avx2::store_tile8(y, out, m0, s0, bias, w.n);
}

// Every row of x against strips [s, s + NS): the weight strips stay in L1/L2 while the
// quantized activations stream past them.
template <int NS, bool kAsym>
void strip_group(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y,
                 int64_t s, int64_t m, int64_t m_end) {
  // 3 × 2 int32 accumulators + 2 × 2 weight vectors + 2 broadcasts + constants: 16 registers.
  for (; m + 3 <= m_end; m += 3) tile<3, NS, kAsym>(xq, w, bias, y, m, s);
  switch (m_end - m) {
    case 2: tile<2, NS, kAsym>(xq, w, bias, y, m, s); break;
    case 1: tile<1, NS, kAsym>(xq, w, bias, y, m, s); break;
    default: break;
  }
}

template <bool kAsym>
void run(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y, int64_t sb0,
         int64_t sb1) {
  // Rows in panels of kPanelRows: one panel of x and one strip pair of weights stay in L2
  // together, so large M does not evict the weights once per 3 rows.
  for (int64_t m0 = 0; m0 < xq.m; m0 += kPanelRows) {
    const int64_t m1 = std::min(xq.m, m0 + kPanelRows);
    int64_t s = sb0;
    for (; s + 2 <= sb1; s += 2) strip_group<2, kAsym>(xq, w, bias, y, s, m0, m1);
    for (; s < sb1; ++s) strip_group<1, kAsym>(xq, w, bias, y, s, m0, m1);
  }
}

}  // namespace

void gemm_w4a8_avx2(const QuantAct& xq, const PackedW4& w, const float* bias, const Matrix& y,
                    int64_t nb0, int64_t nb1) {
  if (w.zeros) return run<true>(xq, w, bias, y, 2 * nb0, 2 * nb1);
  run<false>(xq, w, bias, y, 2 * nb0, 2 * nb1);
}

}  // namespace llmaccel::detail
