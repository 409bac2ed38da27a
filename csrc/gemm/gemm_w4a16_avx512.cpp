// gemm_w4a16, AVX-512: int4 weights × fp32 activations, fp32 FMA accumulation.
//
// Why it is shaped this way (Zen 4 / Ice Lake class cores):
// - One 64-byte load of the int4_tile16x8 layout holds 16 output rows × 8 columns. Every output
//   row sits in its own fp32 lane, so results need no horizontal sums and x is consumed as
//   scalar broadcasts folded into the FMA ({1to16} memory operands).
// - Nibble → float conversion is a single vpermps: the permute reads only the low 4 bits of
//   each index lane, so shifting the packed dword right by 0, 4, 8, … selects the next nibble
//   with no masking, and the 16-entry table turns the code into (q − 8) or q directly.
// - Each output block is a contiguous stream; NR blocks are read side by side so the hardware
//   prefetchers run NR streams and each broadcast of x feeds NR × MR FMAs.
// - Scales are applied once per group (acc_group · scale), not per weight.
// - With AVX512_BF16 (kMode = kBf16*), the nibbles become bf16 pairs instead: vpermw reads the low
//   5 bits of each 16-bit lane, so one permute of the packed dword yields the pair (column j,
//   column j+2), and shifts by 4, 8, 12 yield the other three pairs; vdpbf16ps then does 32
//   multiply-accumulates per instruction against a broadcast pair of activations, twice the
//   fp32 FMA rate. Codes and (q − 8) are exact in bf16. fp32 activations are carried as a
//   bf16 hi + lo pair (|x − hi − lo| ≤ 2⁻¹⁸|x|), bf16 activations exactly (no lo term).
#include <immintrin.h>

#include <vector>

#include "common/avx512_util.h"
#include "gemm/gemm_w4a16.h"

namespace llmaccel::detail {
namespace {

// Shift that brings the nibble of column 8s+t to bits 0..3 of its lane's dword (low nibbles of
// bytes 0..3 hold columns 0..3, high nibbles columns 4..7).
constexpr int kNibbleShift[8] = {0, 8, 16, 24, 4, 12, 20, 28};

// Group sums of x, for the zero-point term of asymmetric weights: Σ x·(q − z) = Σ x·q − z·Σ x.
void group_sums(const float* xf, int64_t M, int64_t k_pad, int64_t G, float* out) {
  const int64_t n_groups = k_pad / G;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t g = 0; g < n_groups; ++g) {
      __m512 s = _mm512_setzero_ps();
      for (int64_t k = g * G; k < (g + 1) * G; k += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(xf + m * k_pad + k));
      out[m * n_groups + g] = _mm512_reduce_add_ps(s);
    }
}

// How activations are consumed: fp32 FMAs, or bf16 pair dot products without/with a lo term.
enum Mode { kFp32 = 0, kBf16 = 1, kBf16HiLo = 2 };

// acc += Σ pairs a·b (vdpbf16ps). Inline asm: the file is compiled without -mavx512bf16, so the
// compiler can never place a bf16 instruction on a path that runs on a CPU without it; this
// function is reached only when cpuid reports AVX512_BF16.
inline void dpbf16(__m512& acc, __m512i a, __m512i b) {
  __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

// 16 codes as bf16, twice (vpermw indexes 32 words with the low 5 bits of each lane).
inline __m512i bf16_lut(bool asym) {
  alignas(64) uint16_t t[32];
  for (int i = 0; i < 32; ++i) t[i] = f32_to_bf16(static_cast<float>((i & 15) - (asym ? 0 : 8)));
  return _mm512_load_si512(t);
}

template <int MR, int NR, bool kAsym, int kMode>
void tile(const float* xf, const uint32_t* xpairs, const float* xsum, const PackedW4& w,
          const float* bias, const Matrix& y, int64_t m0, int64_t b0) {
  const int64_t k_pad = w.k_pad, G = w.group_size, n_groups = w.n_groups();
  const int64_t steps_per_group = G / 8, block_bytes = k_pad * 8;
  const __m512i lut16 = kMode == kFp32 ? _mm512_setzero_si512() : bf16_lut(kAsym);
  const __m512 lut = kAsym ? _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
                           : _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
  const uint8_t* qb[NR];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) qb[r] = w.qweight + (b0 + r) * block_bytes;
  __m512 out[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) out[m][r] = _mm512_setzero_ps();

  // Eight FMAs per step land on each accumulator; with one row of x that is a serial chain of
  // FMA latencies, so a single row splits the columns over two accumulator sets.
  constexpr int kChains = MR == 1 ? 2 : 1;
  for (int64_t g = 0; g < n_groups; ++g) {
    __m512 acc[kChains][MR][NR];
#pragma GCC unroll 8
    for (int c = 0; c < kChains; ++c)
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) acc[c][m][r] = _mm512_setzero_ps();
    for (int64_t s = g * steps_per_group; s < (g + 1) * steps_per_group; ++s) {
      __m512i v[NR];
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        v[r] = _mm512_loadu_si512(qb[r] + s * 64);
        // Weights are read exactly once: fetch the stream ~1 KiB ahead of use.
        _mm_prefetch(reinterpret_cast<const char*>(qb[r] + s * 64 + 1024), _MM_HINT_T0);
      }
      if constexpr (kMode != kFp32) {
        // Pairs of step s for row m: xpairs[m][8s .. 8s+3] (hi), [8s+4 .. 8s+7] (lo); pair j
        // matches the weights decoded by a shift of 4j.
        const uint32_t* xp = xpairs + m0 * k_pad + s * 8;
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j) {
            const __m512i wp = _mm512_permutexvar_epi16(_mm512_srli_epi16(v[r], 4 * j), lut16);
#pragma GCC unroll 8
            for (int m = 0; m < MR; ++m) {
              dpbf16(acc[j % kChains][m][r], wp, _mm512_set1_epi32(xp[m * k_pad + j]));
              if constexpr (kMode == kBf16HiLo)
                dpbf16(acc[(j + 1) % kChains][m][r], wp,
                       _mm512_set1_epi32(xp[m * k_pad + 4 + j]));
            }
          }
      } else {
        const float* xk = xf + m0 * k_pad + s * 8;
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t)
#pragma GCC unroll 8
          for (int r = 0; r < NR; ++r) {
            const __m512 wv = _mm512_permutexvar_ps(_mm512_srli_epi32(v[r], kNibbleShift[t]), lut);
#pragma GCC unroll 8
            for (int m = 0; m < MR; ++m)
              acc[t % kChains][m][r] =
                  _mm512_fmadd_ps(wv, _mm512_set1_ps(xk[m * k_pad + t]), acc[t % kChains][m][r]);
          }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const int64_t meta = ((b0 + r) * n_groups + g) * 16;
      const __m512 sc = _mm512_loadu_ps(w.scales + meta);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        __m512 sum = acc[0][m][r];
#pragma GCC unroll 4
        for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c][m][r]);
        out[m][r] = _mm512_fmadd_ps(sum, sc, out[m][r]);
      }
      if constexpr (kAsym) {
        const __m512 z = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.zeros + meta))));
        const __m512 zs = _mm512_mul_ps(z, sc);
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m)
          out[m][r] = _mm512_fnmadd_ps(zs, _mm512_set1_ps(xsum[(m0 + m) * n_groups + g]), out[m][r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    const int64_t c = (b0 + r) * 16;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) avx512::store_out16(y, m0 + m, c, out[m][r], bias, w.n - c);
  }
}

template <int MR, bool kAsym, int kMode>
void row_chunk(const float* xf, const uint32_t* xpairs, const float* xsum, const PackedW4& w,
               const float* bias, const Matrix& y, int64_t m0, int64_t nb0, int64_t nb1) {
  constexpr int NR = MR <= 2 ? 4 : 2;
  int64_t b = nb0;
  for (; b + NR <= nb1; b += NR) tile<MR, NR, kAsym, kMode>(xf, xpairs, xsum, w, bias, y, m0, b);
  for (; b < nb1; ++b) tile<MR, 1, kAsym, kMode>(xf, xpairs, xsum, w, bias, y, m0, b);
}

template <bool kAsym, int kMode>
void run(const float* xf, const uint32_t* xpairs, int64_t M, const float* xsum, const PackedW4& w,
         const float* bias, const Matrix& y, int64_t nb0, int64_t nb1) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) row_chunk<4, kAsym, kMode>(xf, xpairs, xsum, w, bias, y, m, nb0, nb1);
  switch (M - m) {
    case 3: row_chunk<3, kAsym, kMode>(xf, xpairs, xsum, w, bias, y, m, nb0, nb1); break;
    case 2: row_chunk<2, kAsym, kMode>(xf, xpairs, xsum, w, bias, y, m, nb0, nb1); break;
    case 1: row_chunk<1, kAsym, kMode>(xf, xpairs, xsum, w, bias, y, m, nb0, nb1); break;
    default: break;
  }
}

template <int kMode>
void dispatch(const float* xf, const uint32_t* xpairs, int64_t M, const PackedW4& w,
              const float* bias, const Matrix& y, int64_t nb0, int64_t nb1) {
  if (!w.zeros) return run<false, kMode>(xf, xpairs, M, nullptr, w, bias, y, nb0, nb1);
  thread_local std::vector<float> xsum;
  xsum.resize(M * w.n_groups());
  group_sums(xf, M, w.k_pad, w.group_size, xsum.data());
  run<true, kMode>(xf, xpairs, M, xsum.data(), w, bias, y, nb0, nb1);
}

}  // namespace

void stage_bf16_pairs(const float* xf, int64_t M, int64_t k_pad, uint32_t* out) {
  // Within each step of 8 columns, pair j (j = 0..3) is (column c_j, column c_j + 2) with
  // c = {0, 4, 1, 5}: the order in which shifts 0, 4, 8, 12 expose the weight nibbles.
  constexpr int kFirst[4] = {0, 4, 1, 5};
  for (int64_t m = 0; m < M; ++m)
    for (int64_t s = 0; s < k_pad / 8; ++s) {
      const float* x = xf + m * k_pad + 8 * s;
      uint32_t* o = out + m * k_pad + 8 * s;
      for (int j = 0; j < 4; ++j) {
        uint32_t hi = 0, lo = 0;
        for (int e = 0; e < 2; ++e) {
          const float v = x[kFirst[j] + 2 * e];
          const uint16_t h = f32_to_bf16(v);
          hi |= static_cast<uint32_t>(h) << (16 * e);
          lo |= static_cast<uint32_t>(f32_to_bf16(v - bf16_to_f32(h))) << (16 * e);
        }
        o[j] = hi;
        o[4 + j] = lo;
      }
    }
}

void gemm_w4a16_avx512(const float* xf, int64_t M, const PackedW4& w, const float* bias,
                       const Matrix& y, int64_t nb0, int64_t nb1) {
  dispatch<kFp32>(xf, nullptr, M, w, bias, y, nb0, nb1);
}

void gemm_w4a16_avx512bf16(const float* xf, const uint32_t* xpairs, bool exact_bf16, int64_t M,
                           const PackedW4& w, const float* bias, const Matrix& y, int64_t nb0,
                           int64_t nb1) {
  if (exact_bf16) return dispatch<kBf16>(xf, xpairs, M, w, bias, y, nb0, nb1);
  dispatch<kBf16HiLo>(xf, xpairs, M, w, bias, y, nb0, nb1);
}

}  // namespace llmaccel::detail
