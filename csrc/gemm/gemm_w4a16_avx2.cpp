// gemm_w4a16, AVX2 + FMA: int4 weights × fp32 activations, fp32 FMA accumulation, for x86-64
// CPUs without AVX-512.
//
// Why it is shaped this way (16 ymm registers, no embedded broadcasts, no 16-entry permute):
// - The int4_tile16x8 blocks are read as 8-row strips (common/avx2_util.h): one 32-byte load is
//   8 output rows × 8 columns, each row in its own lane, so no horizontal sums are needed.
// - Nibble → float takes two instructions per 8 weights: the nibble is masked where it lies and
//   converted, giving q · 2^shift exactly (the top nibble is shifted down instead, as its field
//   reaches the sign bit). The activations were scaled by 2^−shift per column beforehand
//   (stage_nibble_scaled, exact), and the zero point, 8 for symmetric weights, is removed once per
//   group through Σ x: Σ x·(q − z) = Σ x·q − z·Σ x. Sign-extending by a shift pair instead
//   (three instructions, two of them shifts) ran at 15 Gweights/s per core on an L2-resident
//   M = 1 call, this at 20-21 (Zen 3, 4 runs each).
// - The accumulators live in registers for one group; the group's scale is applied into an fp32
//   tile in L1, since 16 registers cannot also hold the running outputs.
#include <immintrin.h>

#include <type_traits>
#include <vector>

#include "common/avx2_util.h"
#include "gemm/gemm_w4a16.h"

namespace llmaccel::detail {
namespace {

// Shift that brings the nibble of column 8s+t to bits 0..3 of its lane's dword (low nibbles of
// bytes 0..3 hold columns 0..3, high nibbles columns 4..7).
constexpr int kNibbleShift[8] = {0, 8, 16, 24, 4, 12, 20, 28};

// Column T of a strip's step as floats: q · 2^kNibbleShift[T], except q for the top nibble.
template <int T>
inline __m256 column(__m256i v) {
  constexpr int kShift = kNibbleShift[T];
  if constexpr (kShift == 28) return _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 28));
  return _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15 << kShift)));
}

// 2^−kNibbleShift[t], the factor column t of x carries (1 for the top nibble, shifted down).
inline float column_scale(int t) {
  return t == 7 ? 1.0f : 1.0f / static_cast<float>(1 << kNibbleShift[t]);
}

void group_sums(const float* xf, int64_t M, int64_t k_pad, int64_t G, float* out) {
  const int64_t n_groups = k_pad / G;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t g = 0; g < n_groups; ++g) {
      __m256 s = _mm256_setzero_ps();
      for (int64_t k = g * G; k < (g + 1) * G; k += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(xf + m * k_pad + k));
      alignas(32) float t[8];
      _mm256_store_ps(t, s);
      out[m * n_groups + g] = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
    }
}

// MR rows of x × NS strips starting at strip s0.
template <int MR, int NS, bool kAsym>
void tile(const float* xs, const float* xsum, const PackedW4& w, const float* bias,
          const Matrix& y, int64_t m0, int64_t s0) {
  const int64_t k_pad = w.k_pad, n_groups = w.n_groups(), steps_per_group = w.group_size / 8;
  const uint8_t* qs[NS];
#pragma GCC unroll 8
  for (int r = 0; r < NS; ++r) qs[r] = avx2::strip_base(w.qweight, k_pad * 8, s0 + r);
  alignas(32) float out[MR][NS][8] = {};
  // Eight FMAs per step land on each accumulator; with one row of x that is a serial chain of
  // FMA latencies, so a single row splits the columns over two accumulator sets.
  constexpr int kChains = MR == 1 ? 2 : 1;
  const float* xr = xs + m0 * k_pad;

  for (int64_t g = 0; g < n_groups; ++g) {
    __m256 acc[kChains][MR][NS];
#pragma GCC unroll 8
    for (int c = 0; c < kChains; ++c)
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
        for (int r = 0; r < NS; ++r) acc[c][m][r] = _mm256_setzero_ps();
    for (int64_t s = g * steps_per_group; s < (g + 1) * steps_per_group; ++s) {
      __m256i v[NS];
#pragma GCC unroll 8
      for (int r = 0; r < NS; ++r) {
        v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs[r] + s * 64));
        // Weights are read exactly once: fetch the stream ~1 KiB ahead of use.
        _mm_prefetch(reinterpret_cast<const char*>(qs[r] + s * 64 + 1024), _MM_HINT_T0);
      }
      const float* xk = xr + s * 8;
      auto step = [&](auto t_const) {
        constexpr int T = decltype(t_const)::value;
#pragma GCC unroll 8
        for (int r = 0; r < NS; ++r) {
          const __m256 wv = column<T>(v[r]);
#pragma GCC unroll 8
          for (int m = 0; m < MR; ++m)
            acc[T % kChains][m][r] = _mm256_fmadd_ps(wv, _mm256_broadcast_ss(xk + m * k_pad + T),
                                                     acc[T % kChains][m][r]);
        }
      };
      step(std::integral_constant<int, 0>{});
      step(std::integral_constant<int, 1>{});
      step(std::integral_constant<int, 2>{});
      step(std::integral_constant<int, 3>{});
      step(std::integral_constant<int, 4>{});
      step(std::integral_constant<int, 5>{});
      step(std::integral_constant<int, 6>{});
      step(std::integral_constant<int, 7>{});
    }
#pragma GCC unroll 8
    for (int r = 0; r < NS; ++r) {
      const int64_t meta = avx2::strip_meta(s0 + r, n_groups, g);
      const __m256 sc = _mm256_loadu_ps(w.scales + meta);
      __m256 z = _mm256_set1_ps(8.0f);
      if constexpr (kAsym)
        z = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.zeros + meta))));
      const __m256 zs = _mm256_mul_ps(z, sc);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        __m256 sum = acc[0][m][r];
#pragma GCC unroll 4
        for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c][m][r]);
        const __m256 o = _mm256_fmadd_ps(sum, sc, _mm256_load_ps(out[m][r]));
        _mm256_store_ps(out[m][r],
                        _mm256_fnmadd_ps(zs, _mm256_set1_ps(xsum[(m0 + m) * n_groups + g]), o));
      }
    }
  }
  avx2::store_tile8(y, out, m0, s0, bias, w.n);
}

template <int MR, bool kAsym>
void row_chunk(const float* xs, const float* xsum, const PackedW4& w, const float* bias,
               const Matrix& y, int64_t m0, int64_t sb0, int64_t sb1) {
  // Accumulators + weight vectors + one decoded column + one broadcast fit 16 registers.
  constexpr int NS = MR <= 2 ? 4 : 2;
  int64_t s = sb0;
  for (; s + NS <= sb1; s += NS) tile<MR, NS, kAsym>(xs, xsum, w, bias, y, m0, s);
  for (; s < sb1; ++s) tile<MR, 1, kAsym>(xs, xsum, w, bias, y, m0, s);
}

template <bool kAsym>
void run(const float* xs, int64_t M, const float* xsum, const PackedW4& w, const float* bias,
         const Matrix& y, int64_t sb0, int64_t sb1) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) row_chunk<4, kAsym>(xs, xsum, w, bias, y, m, sb0, sb1);
  switch (M - m) {
    case 3: row_chunk<3, kAsym>(xs, xsum, w, bias, y, m, sb0, sb1); break;
    case 2: row_chunk<2, kAsym>(xs, xsum, w, bias, y, m, sb0, sb1); break;
    case 1: row_chunk<1, kAsym>(xs, xsum, w, bias, y, m, sb0, sb1); break;
    default: break;
  }
}

}  // namespace

void stage_nibble_scaled(const float* xf, int64_t M, int64_t k_pad, float* xs) {
  alignas(32) float f[8];
  for (int t = 0; t < 8; ++t) f[t] = column_scale(t);
  const __m256 scale = _mm256_load_ps(f);
  for (int64_t i = 0; i < M * k_pad; i += 8)
    _mm256_storeu_ps(xs + i, _mm256_mul_ps(_mm256_loadu_ps(xf + i), scale));
}

void gemm_w4a16_avx2(const float* xf, const float* xs, int64_t M, const PackedW4& w,
                     const float* bias, const Matrix& y, int64_t nb0, int64_t nb1) {
  thread_local std::vector<float> xsum;
  xsum.resize(M * w.n_groups());
  group_sums(xf, M, w.k_pad, w.group_size, xsum.data());
  if (w.zeros) return run<true>(xs, M, xsum.data(), w, bias, y, 2 * nb0, 2 * nb1);
  run<false>(xs, M, xsum.data(), w, bias, y, 2 * nb0, 2 * nb1);
}

}  // namespace llmaccel::detail
