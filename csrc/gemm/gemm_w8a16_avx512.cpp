// gemm_w8a16, AVX-512: int8 per-channel weights × fp32 activations, fp32 FMA accumulation.
//
// One 64-byte load of int8_tile16x4 holds 16 output rows × 4 columns, each row in its own
// dword lane. Column j is sign-extended in place by a left shift to the top byte and an
// arithmetic right shift (column 3 needs only the right shift), converted to fp32 and FMA'd with
// a broadcast x[m][4s+j]: no horizontal sums, no shuffles. The per-channel scale is applied once
// at the end. NR blocks stream side by side (NR prefetch streams, x broadcast reused NR×MR times).
#include <immintrin.h>

#include "common/avx512_util.h"
#include "gemm/gemm_w8a16.h"

#include <type_traits>

namespace llmaccel::detail {
namespace {

template <int J>
inline __m512 column(__m512i v) {
  if constexpr (J == 3) return _mm512_cvtepi32_ps(_mm512_srai_epi32(v, 24));
  else return _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * J), 24));
}

template <int MR, int NR>
void tile(const float* xf, const PackedW8& w, const float* bias, const Matrix& y, int64_t m0,
          int64_t b0) {
  const int64_t k_pad = w.k_pad, steps = k_pad / 4;
  const int8_t* qb[NR];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) qb[r] = w.qweight + (b0 + r) * steps * 64;
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[m][r] = _mm512_setzero_ps();
  const float* xr = xf + m0 * k_pad;
  for (int64_t s = 0; s < steps; ++s) {
    __m512i v[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      v[r] = _mm512_loadu_si512(qb[r] + s * 64);
      // Weights are read exactly once: fetch the stream ~1 KiB ahead of use.
      _mm_prefetch(reinterpret_cast<const char*>(qb[r] + s * 64 + 1024), _MM_HINT_T0);
    }
    const float* xk = xr + 4 * s;
    auto step = [&](auto j_const) {
      constexpr int J = decltype(j_const)::value;
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const __m512 wv = column<J>(v[r]);
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m)
          acc[m][r] = _mm512_fmadd_ps(wv, _mm512_set1_ps(xk[m * k_pad + J]), acc[m][r]);
      }
    };
    step(std::integral_constant<int, 0>{});
    step(std::integral_constant<int, 1>{});
    step(std::integral_constant<int, 2>{});
    step(std::integral_constant<int, 3>{});
  }
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    const int64_t c = (b0 + r) * 16;
    const __m512 sc = _mm512_loadu_ps(w.scales + c);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
      avx512::store_out16(y, m0 + m, c, _mm512_mul_ps(acc[m][r], sc), bias, w.n - c);
  }
}

template <int MR>
void row_chunk(const float* xf, const PackedW8& w, const float* bias, const Matrix& y, int64_t m0,
               int64_t nb0, int64_t nb1) {
  constexpr int NR = MR <= 2 ? 4 : 2;
  int64_t b = nb0;
  for (; b + NR <= nb1; b += NR) tile<MR, NR>(xf, w, bias, y, m0, b);
  for (; b < nb1; ++b) tile<MR, 1>(xf, w, bias, y, m0, b);
}

}  // namespace

void gemm_w8a16_avx512(const float* xf, int64_t M, const PackedW8& w, const float* bias,
                       const Matrix& y, int64_t nb0, int64_t nb1) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) row_chunk<4>(xf, w, bias, y, m, nb0, nb1);
  switch (M - m) {
    case 3: row_chunk<3>(xf, w, bias, y, m, nb0, nb1); break;
    case 2: row_chunk<2>(xf, w, bias, y, m, nb0, nb1); break;
    case 1: row_chunk<1>(xf, w, bias, y, m, nb0, nb1); break;
    default: break;
  }
}

}  // namespace llmaccel::detail
