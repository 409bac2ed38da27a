// gemm_w4a16_sp24 and gemm_sp24, AVX2 + FMA: 2:4 sparse weights × fp32 activations, for x86-64
// CPUs without AVX-512.
//
// The AVX-512 kernels fetch both activations of a kept pair with one 16-bit permute (vpermw)
// and multiply them with one vdpbf16ps; AVX2 has neither, so here each slot of a group is its
// own fp32 vector over an 8-row strip (common/avx2_util.h: a 64-byte plane holds rows 0..7 in
// its first 32 bytes, rows 8..15 in the second, one dword lane per row):
// - the group's 4 activations are broadcast to both 128-bit halves of a register, and the
//   in-lane vpermilps picks x[pos] per row with the position word shifted right by 2j (slot a)
//   or 16 + 2j (b) as the index: it reads only the index's low 2 bits, so no mask is needed.
//   The lane-crossing vpermps did the same 1.15-1.2x slower (Zen 3, M = 1, L2-resident);
//   without any permute the kernel ran 1.65x faster: the permutes are its largest cost;
// - the slot's weight is an fp32 vector: bf16 values widen by a shift (a) or a mask (b); int4
//   codes, xor 8 once per plane so that each nibble is q − 8 in two's complement, are shifted
//   to the top of the dword and arithmetic-shifted down, then converted (exact);
// - one FMA per slot. fp32 x is multiplied exactly (no hi + lo split as on AVX-512), and
//   gemm_w4a16_sp24's x arrives rounded to bf16 (its contract, staged by gemm_sp24.cpp).
// Per group and strip at M = 1: 2 index shifts, 2 permutes, 2 FMAs, and 2 (bf16) or ~6 (int4)
// to widen the weights; with several rows of x the index and weight work is shared.
#include <immintrin.h>

#include <type_traits>

#include "common/avx2_util.h"
#include "sparse/gemm_sp24.h"

namespace llmaccel::detail {
namespace {

// Slots a and b of group i (0..3) of one value plane, as floats. kInt4: v holds the plane's
// codes xor 0x88888888 (q_a of group i at bits 4i.., q_b at 16 + 4i..); else v is the bf16 pair.
template <bool kInt4, int I>
inline void slot_values(__m256i v, __m256& wa, __m256& wb) {
  if constexpr (kInt4) {
    wa = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v, 28 - 4 * I), 28));
    const __m256i hi = I == 3 ? v : _mm256_slli_epi32(v, 12 - 4 * I);
    wb = _mm256_cvtepi32_ps(_mm256_srai_epi32(hi, 28));
  } else {
    wa = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    wb = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
}

// One tile: MR rows of x × the two 8-row strips of 16-row block b, so every 64-byte line of a
// plane is read by one tile. kInt4: int4 codes with group scales; else bf16 values.
template <int MR, bool kInt4>
void tile(const float* xf, const uint8_t* data, const float* scales, int64_t k_pad,
          int64_t group_size, int64_t n, const float* bias, const Matrix& y, int64_t m0,
          int64_t b) {
  constexpr int64_t kChunkBytes = kInt4 ? 192 : 576, kPosOffset = kInt4 ? 128 : 512;
  // The weights are a stream read once: fetch ~2 KiB ahead, as the AVX-512 kernel does; past
  // the block's end that is the next block, the next tile's.
  constexpr int64_t kAhead = (2048 + kChunkBytes - 1) / kChunkBytes * kChunkBytes;
  const int64_t chunks = k_pad / 32, block_bytes = chunks * kChunkBytes;
  const int64_t per_group = kInt4 ? group_size / 32 : chunks, n_groups = chunks / per_group;
  const uint8_t* block = data + b * block_bytes;
  alignas(32) float out[MR][2][8] = {};
  // With one row of x, each strip's FMAs would form one chain of 16 per chunk, 4 cycles each:
  // slots a and b get an accumulator each (measured on Zen 3: one chain is 12 % slower).
  constexpr int kChains = MR == 1 ? 2 : 1;

  for (int64_t g = 0; g < n_groups; ++g) {
    __m256 acc[kChains][MR][2];
#pragma GCC unroll 8
    for (int c = 0; c < kChains; ++c)
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m)
        for (int r = 0; r < 2; ++r) acc[c][m][r] = _mm256_setzero_ps();
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      const float* xc = xf + m0 * k_pad + c * 32;
      const uint8_t* t = block + c * kChunkBytes;
#pragma GCC unroll 9
      for (int64_t line = 0; line < kChunkBytes; line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(t + kAhead + line), _MM_HINT_T0);
      for (int r = 0; r < 2; ++r) {
        const uint8_t* ts = t + 32 * r;  // strip r: the second half of every 64-byte plane
        const __m256i pos = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ts + kPosOffset));
        __m256i v = _mm256_setzero_si256();
        auto group = [&](auto j_const) {
          constexpr int J = decltype(j_const)::value;
          if constexpr (kInt4) {
            if constexpr (J % 4 == 0)
              v = _mm256_xor_si256(
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ts + 64 * (J / 4))),
                  _mm256_set1_epi32(static_cast<int>(0x88888888u)));
          } else {
            v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ts + 64 * J));
          }
          __m256 wa, wb;
          slot_values<kInt4, J % 4>(v, wa, wb);
          const __m256i ia = J == 0 ? pos : _mm256_srli_epi32(pos, 2 * J);
          const __m256i ib = _mm256_srli_epi32(pos, 16 + 2 * J);
#pragma GCC unroll 8
          for (int m = 0; m < MR; ++m) {
            const __m256 x4 =
                _mm256_broadcast_ps(reinterpret_cast<const __m128*>(xc + m * k_pad + 4 * J));
            acc[0][m][r] = _mm256_fmadd_ps(wa, _mm256_permutevar_ps(x4, ia), acc[0][m][r]);
            acc[kChains - 1][m][r] =
                _mm256_fmadd_ps(wb, _mm256_permutevar_ps(x4, ib), acc[kChains - 1][m][r]);
          }
        };
        group(std::integral_constant<int, 0>{});
        group(std::integral_constant<int, 1>{});
        group(std::integral_constant<int, 2>{});
        group(std::integral_constant<int, 3>{});
        group(std::integral_constant<int, 4>{});
        group(std::integral_constant<int, 5>{});
        group(std::integral_constant<int, 6>{});
        group(std::integral_constant<int, 7>{});
      }
    }
    for (int r = 0; r < 2; ++r) {
      const __m256 sc = kInt4 ? _mm256_loadu_ps(scales + avx2::strip_meta(2 * b + r, n_groups, g))
                              : _mm256_set1_ps(1.0f);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m256 sum = kChains == 1 ? acc[0][m][r] : _mm256_add_ps(acc[0][m][r], acc[1][m][r]);
        _mm256_store_ps(out[m][r], _mm256_fmadd_ps(sum, sc, _mm256_load_ps(out[m][r])));
      }
    }
  }
  avx2::store_tile8(y, out, m0, 2 * b, bias, n);
}

// Rows of x four at a time (8 accumulators), then the 1-3 left, block by block.
template <bool kInt4>
void run(const float* xf, int64_t M, const uint8_t* data, const float* scales, int64_t k_pad,
         int64_t group_size, int64_t n, const float* bias, const Matrix& y, int64_t nb0,
         int64_t nb1) {
  for (int64_t b = nb0; b < nb1; ++b) {
    int64_t m = 0;
    for (; m + 4 <= M; m += 4)
      tile<4, kInt4>(xf, data, scales, k_pad, group_size, n, bias, y, m, b);
    switch (M - m) {
      case 3: tile<3, kInt4>(xf, data, scales, k_pad, group_size, n, bias, y, m, b); break;
      case 2: tile<2, kInt4>(xf, data, scales, k_pad, group_size, n, bias, y, m, b); break;
      case 1: tile<1, kInt4>(xf, data, scales, k_pad, group_size, n, bias, y, m, b); break;
      default: break;
    }
  }
}

}  // namespace

void gemm_w4a16_sp24_avx2(const float* xf, int64_t m, const PackedW4Sp24& w, const float* bias,
                          const Matrix& y, int64_t nb0, int64_t nb1) {
  run<true>(xf, m, w.qweight, w.scales, w.k_pad, w.group_size, w.n, bias, y, nb0, nb1);
}

void gemm_sp24_avx2(const float* xf, int64_t m, const PackedSp24& w, const float* bias,
                    const Matrix& y, int64_t nb0, int64_t nb1) {
  run<false>(xf, m, w.packed, nullptr, w.k_pad, 0, w.n, bias, y, nb0, nb1);
}

}  // namespace llmaccel::detail
