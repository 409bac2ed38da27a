// gemm_w4a16_sp24 and gemm_sp24, AVX-512: 2:4 sparse weights as bf16 pairs.
//
// The trick: a group's two kept weights are one bf16 pair (w_a, w_b) per 32-bit lane, and their
// activations x[pos_a], x[pos_b] are fetched for all 16 rows at once by vpermw from a register
// holding the chunk's 32 activations as bf16 words; the permute reads the low 5 bits of each
// 16-bit index, which is 4j + pos. One vpdbf16ps then adds w_a·x_a + w_b·x_b per row. Per group
// and 16 rows: shift + vpternlogd (the index), vpermw (the activations), [shift + vpermw (int4
// codes → bf16 pair)], vdpbf16ps; fp32 x adds a second permute + product for its lo part. With
// one row of x (decode), each group permutes a register of its own 4 activations repeated
// instead, and the index is the shifted positions alone (group_x).
// Without AVX512_BF16 the pair product is emulated by two fp32 FMAs on the widened halves.
#include <immintrin.h>

#include <cstring>

#include "common/avx512_util.h"
#include "sparse/gemm_sp24.h"

namespace llmaccel::detail {
namespace {

template <bool kNative>
inline void dot_pairs(__m512& acc, __m512i a, __m512i b) {
  if constexpr (kNative) {
    // Inline asm: this file is compiled without -mavx512bf16 (see gemm_w4a16_avx512.cpp).
    __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  } else {
    const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)),
                          _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), acc);
    acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(a, hi_mask)),
                          _mm512_castsi512_ps(_mm512_and_si512(b, hi_mask)), acc);
  }
}

// The 16-bit permute indices of group j: 4j + pos_a in the low word, 4j + pos_b in the high.
inline __m512i group_index(__m512i pos, int j) {
  const __m512i two_bits = _mm512_set1_epi32(0x00030003);
  const __m512i base = _mm512_set1_epi32((4 * j) | ((4 * j) << 16));
  return _mm512_ternarylogic_epi32(_mm512_srli_epi32(pos, 2 * j), two_bits, base, 0xEA);
}

// int4 code c (low 4 bits of a word; bit 4 belongs to the next code) → bf16(c − 8).
inline __m512i code_lut() {
  alignas(64) uint16_t t[32];
  for (int i = 0; i < 32; ++i) t[i] = f32_to_bf16(static_cast<float>((i & 15) - 8));
  return _mm512_load_si512(t);
}

// x[4j .. 4j+3] of a chunk (xc: its first activation; 4 bf16 words = 8 bytes) repeated across
// the register. vpermw indexes it with 16-bit words whose low 2 bits are a position: the bits
// above (the next groups' positions) select among identical copies, so no masking or 4j offset
// is needed.
inline __m512i group_x(const uint16_t* xc, int j) {
  int64_t v;
  std::memcpy(&v, xc + 4 * j, sizeof v);
  return _mm512_set1_epi64(v);
}

// One tile: MR rows of x × NR blocks of 16 output rows. kInt4: int4 codes with group scales;
// otherwise bf16 values. kLo: fp32 x, carried as hi + lo.
template <int MR, int NR, bool kInt4, bool kLo, bool kNative>
void tile(const uint16_t* xhi, const uint16_t* xlo, const uint8_t* data, const float* scales,
          int64_t k_pad, int64_t group_size, int64_t n, const float* bias, const Matrix& y,
          int64_t m0, int64_t b0) {
  constexpr int64_t kChunkBytes = kInt4 ? 192 : 576, kPosOffset = kInt4 ? 128 : 512;
  constexpr int64_t kAhead = (2048 + kChunkBytes - 1) / kChunkBytes * kChunkBytes;
  // One row of x: a repeated 4-word register per group (group_x) saves the index's masking and
  // offset, 1 of ~6 vector ops per group and 16 rows (hot in L2: 12-15 % faster at M = 1).
  // Several rows: one chunk register per row, shared by every group, is fewer loads and
  // registers; the index then carries 4j (group_index).
  constexpr bool kRepeatX = MR == 1;
  const int64_t chunks = k_pad / 32, block_bytes = chunks * kChunkBytes;
  const int64_t per_group = kInt4 ? group_size / 32 : chunks, n_groups = chunks / per_group;
  // Near the end of the blocks the prefetch distance lands in the next tile's block r, NR - 1
  // blocks further on: with small K (SmolLM2's 576 = 3.4 KiB per block) every tile otherwise
  // began with a cold DRAM round trip per stream (M = 1: 576→1536 15.9 → 13.3 µs, 2 threads).
  const int64_t hop = (NR - 1) * block_bytes;
  const __m512i lut = kInt4 ? code_lut() : _mm512_setzero_si512();
  const uint8_t* qb[NR];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) qb[r] = data + (b0 + r) * block_bytes;
  __m512 out[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) out[m][r] = _mm512_setzero_ps();
  // Eight pair products per chunk land on each accumulator: two chains (even / odd groups) so
  // consecutive vdpbf16ps do not wait on each other's result.
  for (int64_t g = 0; g < n_groups; ++g) {
    __m512 acc[2][MR][NR];
#pragma GCC unroll 8
    for (int c = 0; c < 2; ++c)
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) acc[c][m][r] = _mm512_setzero_ps();
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      __m512i pos[NR], codes[NR][2];
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const uint8_t* t = qb[r] + c * kChunkBytes;
        pos[r] = _mm512_loadu_si512(t + kPosOffset);
        if constexpr (kInt4) {
          codes[r][0] = _mm512_loadu_si512(t);
          codes[r][1] = _mm512_loadu_si512(t + 64);
        }
        // Each block's weights are a stream read exactly once: fetch ~2 KiB ahead, one line
        // per 64 bytes of chunk. Two chunks ahead (384 B) left DRAM latency exposed: at M = 1
        // the kernel read 37-42 GB/s where dense gemm_w4a16 read 52-55 (0.92-1.00x dense);
        // 1 KiB gave 1.23-1.34x, 2 KiB 1.27-1.35x (bench/bench_sparse.py, 4096-wide shapes).
        const int64_t at = c * kChunkBytes + kAhead;
        const char* ahead =
            reinterpret_cast<const char*>(t + kAhead + (at >= block_bytes ? hop : 0));
#pragma GCC unroll 9
        for (int64_t line = 0; line < kChunkBytes; line += 64)
          _mm_prefetch(ahead + line, _MM_HINT_T0);
      }
      __m512i xh[MR], xl[MR];
      if constexpr (!kRepeatX) {
#pragma GCC unroll 8
        for (int m = 0; m < MR; ++m) {
          xh[m] = _mm512_loadu_si512(xhi + (m0 + m) * k_pad + c * 32);
          if constexpr (kLo) xl[m] = _mm512_loadu_si512(xlo + (m0 + m) * k_pad + c * 32);
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        if constexpr (kRepeatX) {
          xh[0] = group_x(xhi + m0 * k_pad + c * 32, j);
          if constexpr (kLo) xl[0] = group_x(xlo + m0 * k_pad + c * 32, j);
        }
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) {
          const __m512i idx = !kRepeatX ? group_index(pos[r], j)
                              : j == 0  ? pos[r]
                                        : _mm512_srli_epi32(pos[r], 2 * j);
          __m512i wv;
          if constexpr (kInt4)
            wv = _mm512_permutexvar_epi16(_mm512_srli_epi32(codes[r][j / 4], 4 * (j % 4)), lut);
          else
            wv = _mm512_loadu_si512(qb[r] + c * kChunkBytes + 64 * j);
#pragma GCC unroll 8
          for (int m = 0; m < MR; ++m) {
            dot_pairs<kNative>(acc[j & 1][m][r], wv, _mm512_permutexvar_epi16(idx, xh[m]));
            if constexpr (kLo)
              dot_pairs<kNative>(acc[(j + 1) & 1][m][r], wv, _mm512_permutexvar_epi16(idx, xl[m]));
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const __m512 sc = kInt4 ? _mm512_loadu_ps(scales + ((b0 + r) * n_groups + g) * 16)
                              : _mm512_set1_ps(1.0f);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m)
        out[m][r] = _mm512_fmadd_ps(_mm512_add_ps(acc[0][m][r], acc[1][m][r]), sc, out[m][r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    const int64_t c = (b0 + r) * 16;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) avx512::store_out16(y, m0 + m, c, out[m][r], bias, n - c);
  }
}

template <int MR, bool kInt4, bool kLo, bool kNative>
void row_chunk(const uint16_t* xhi, const uint16_t* xlo, const uint8_t* data, const float* scales,
               int64_t k_pad, int64_t group_size, int64_t n, const float* bias, const Matrix& y,
               int64_t m0, int64_t nb0, int64_t nb1) {
  // Every block's codes and positions of a chunk stay in registers across its 8 groups: four
  // blocks fit beside one row's accumulators, two beside 2-4 rows' (four spilled at M = 2).
  constexpr int NR = MR == 1 ? 4 : 2;
  int64_t b = nb0;
  for (; b + NR <= nb1; b += NR)
    tile<MR, NR, kInt4, kLo, kNative>(xhi, xlo, data, scales, k_pad, group_size, n, bias, y, m0, b);
  for (; b < nb1; ++b)
    tile<MR, 1, kInt4, kLo, kNative>(xhi, xlo, data, scales, k_pad, group_size, n, bias, y, m0, b);
}

template <bool kInt4, bool kLo, bool kNative>
void run(const uint16_t* xhi, const uint16_t* xlo, int64_t M, const uint8_t* data,
         const float* scales, int64_t k_pad, int64_t group_size, int64_t n, const float* bias,
         const Matrix& y, int64_t nb0, int64_t nb1) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4)
    row_chunk<4, kInt4, kLo, kNative>(xhi, xlo, data, scales, k_pad, group_size, n, bias, y, m,
                                      nb0, nb1);
  switch (M - m) {
    case 3: return row_chunk<3, kInt4, kLo, kNative>(xhi, xlo, data, scales, k_pad, group_size,
                                                     n, bias, y, m, nb0, nb1);
    case 2: return row_chunk<2, kInt4, kLo, kNative>(xhi, xlo, data, scales, k_pad, group_size,
                                                     n, bias, y, m, nb0, nb1);
    case 1: return row_chunk<1, kInt4, kLo, kNative>(xhi, xlo, data, scales, k_pad, group_size,
                                                     n, bias, y, m, nb0, nb1);
    default: return;
  }
}

template <bool kInt4>
void dispatch(const uint16_t* xhi, const uint16_t* xlo, int64_t M, const uint8_t* data,
              const float* scales, int64_t k_pad, int64_t group_size, int64_t n,
              const float* bias, const Matrix& y, int64_t nb0, int64_t nb1, bool native) {
  if (native) {
    if (xlo) return run<kInt4, true, true>(xhi, xlo, M, data, scales, k_pad, group_size, n, bias, y, nb0, nb1);
    return run<kInt4, false, true>(xhi, xlo, M, data, scales, k_pad, group_size, n, bias, y, nb0, nb1);
  }
  if (xlo) return run<kInt4, true, false>(xhi, xlo, M, data, scales, k_pad, group_size, n, bias, y, nb0, nb1);
  run<kInt4, false, false>(xhi, xlo, M, data, scales, k_pad, group_size, n, bias, y, nb0, nb1);
}

}  // namespace

void split_bf16_avx512(const float* xf, int64_t count, uint16_t* hi, uint16_t* lo) {
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 m = avx512::tail_mask(count - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, xf + i);
    const __m256i h = avx512::f32_to_bf16(x);
    _mm256_mask_storeu_epi16(hi + i, m, h);
    if (lo) {
      const __m512 back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      _mm256_mask_storeu_epi16(lo + i, m, avx512::f32_to_bf16(_mm512_sub_ps(x, back)));
    }
  }
}

void gemm_w4a16_sp24_avx512(const uint16_t* xhi, const uint16_t* xlo, int64_t m,
                            const PackedW4Sp24& w, const float* bias, const Matrix& y,
                            int64_t nb0, int64_t nb1, bool native_bf16) {
  dispatch<true>(xhi, xlo, m, w.qweight, w.scales, w.k_pad, w.group_size, w.n, bias, y, nb0, nb1,
                 native_bf16);
}

void gemm_sp24_avx512(const uint16_t* xhi, const uint16_t* xlo, int64_t m, const PackedSp24& w,
                      const float* bias, const Matrix& y, int64_t nb0, int64_t nb1,
                      bool native_bf16) {
  dispatch<false>(xhi, xlo, m, w.packed, nullptr, w.k_pad, 0, w.n, bias, y, nb0, nb1,
                  native_bf16);
}

}  // namespace llmaccel::detail
