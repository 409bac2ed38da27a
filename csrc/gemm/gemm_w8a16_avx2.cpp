// gemm_w8a16, AVX2 + FMA: int8 per-channel weights × fp32 activations, fp32 FMA accumulation,
// for x86-64 CPUs without AVX-512.
//
// The int8_tile16x4 blocks are read as 8-row strips (common/avx2_util.h): one 32-byte load is
// 8 output rows × 4 columns, each row in its own dword lane. Column j is brought to the top byte
// (column 3 is there already, column 0 needs only the shift), where int32 conversion reads it as
// signed, and FMA'd with a broadcast x[m][4s+j]. The per-channel scale is applied once at the end.
#include <immintrin.h>

#include <type_traits>

#include "common/avx2_util.h"
#include "gemm/gemm_w8a16.h"

namespace llmaccel::detail {
namespace {

// Column J of a strip's step as floats, w · 2^24: each byte is moved to (or masked at) the top
// of its lane, where it is already signed, so no arithmetic shift back is needed (the 2^−24 is
// applied with the scale). Vector shifts are the scarce instructions here (gemm_w4a16_avx2.cpp).
template <int J>
inline __m256 column(__m256i v) {
  const __m256i top = _mm256_set1_epi32(static_cast<int>(0xFF000000u));
  if constexpr (J == 3) return _mm256_cvtepi32_ps(_mm256_and_si256(v, top));
  else if constexpr (J == 0) return _mm256_cvtepi32_ps(_mm256_slli_epi32(v, 24));
  else return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_slli_epi32(v, 24 - 8 * J), top));
}

template <int MR, int NS>
void tile(const float* xf, const PackedW8& w, const float* bias, const Matrix& y, int64_t m0,
          int64_t s0) {
  const int64_t k_pad = w.k_pad, steps = k_pad / 4;
  const int8_t* qs[NS];
#pragma GCC unroll 8
  for (int r = 0; r < NS; ++r) qs[r] = avx2::strip_base(w.qweight, steps * 64, s0 + r);
  // Four FMAs per step land on each accumulator; one or two rows of x alternate two accumulator
  // sets so that the FMA latency chains overlap.
  constexpr int kChains = MR <= 2 ? 2 : 1;
  __m256 acc[kChains][MR][NS];
#pragma GCC unroll 8
  for (int c = 0; c < kChains; ++c)
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
      for (int r = 0; r < NS; ++r) acc[c][m][r] = _mm256_setzero_ps();
  const float* xr = xf + m0 * k_pad;
  for (int64_t s = 0; s < steps; ++s) {
    __m256i v[NS];
#pragma GCC unroll 8
    for (int r = 0; r < NS; ++r) {
      v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs[r] + s * 64));
      // Weights are read exactly once: fetch the stream ~1 KiB ahead of use.
      _mm_prefetch(reinterpret_cast<const char*>(qs[r] + s * 64 + 1024), _MM_HINT_T0);
    }
    const float* xk = xr + 4 * s;
    auto step = [&](auto j_const) {
      constexpr int J = decltype(j_const)::value;
#pragma GCC unroll 8
      for (int r = 0; r < NS; ++r) {
        const __m256 wv = column<J>(v[r]);
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m)
          acc[J % kChains][m][r] =
              _mm256_fmadd_ps(wv, _mm256_broadcast_ss(xk + m * k_pad + J), acc[J % kChains][m][r]);
      }
    };
    step(std::integral_constant<int, 0>{});
    step(std::integral_constant<int, 1>{});
    step(std::integral_constant<int, 2>{});
    step(std::integral_constant<int, 3>{});
  }
#pragma GCC unroll 8
  for (int r = 0; r < NS; ++r) {
    const int64_t c = (s0 + r) * 8;
    const __m256 sc = _mm256_loadu_ps(w.scales + c);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      __m256 sum = acc[0][m][r];
#pragma GCC unroll 4
      for (int k = 1; k < kChains; ++k) sum = _mm256_add_ps(sum, acc[k][m][r]);
      // sum · 2^−24 is exact: the products carried w · 2^24.
      avx2::store_out8(y, m0 + m, c, _mm256_mul_ps(_mm256_mul_ps(sum, _mm256_set1_ps(0x1p-24f)), sc),
                       bias, w.n - c);
    }
  }
}

template <int MR>
void row_chunk(const float* xf, const PackedW8& w, const float* bias, const Matrix& y, int64_t m0,
               int64_t sb0, int64_t sb1) {
  // Accumulators (8 or 12) + weight vectors + one decoded column + one broadcast: 16 registers.
  constexpr int NS = MR == 1 ? 4 : 2;
  int64_t s = sb0;
  for (; s + NS <= sb1; s += NS) tile<MR, NS>(xf, w, bias, y, m0, s);
  for (; s < sb1; ++s) tile<MR, 1>(xf, w, bias, y, m0, s);
}

}  // namespace

void gemm_w8a16_avx2(const float* xf, int64_t M, const PackedW8& w, const float* bias,
                     const Matrix& y, int64_t nb0, int64_t nb1) {
  const int64_t sb0 = 2 * nb0, sb1 = 2 * nb1;
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) row_chunk<4>(xf, w, bias, y, m, sb0, sb1);
  switch (M - m) {
    case 3: row_chunk<3>(xf, w, bias, y, m, sb0, sb1); break;
    case 2: row_chunk<2>(xf, w, bias, y, m, sb0, sb1); break;
    case 1: row_chunk<1>(xf, w, bias, y, m, sb0, sb1); break;
    default: break;
  }
}

}  // namespace llmaccel::detail
