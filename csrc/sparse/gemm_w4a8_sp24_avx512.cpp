// gemm_w4a8_sp24, AVX-512 VNNI + VBMI: 2:4 sparse int4 weights × int8 activations, for
// prefill-sized M.
//
// The AVX2 kernel's scheme (gemm_w4a8_sp24_avx2.cpp) on 512-bit registers, where one register
// holds a whole 16-row block of a value or position plane:
// - x, as unsigned bytes x + 128, is read in 64-byte windows (2 chunks of 32 columns), and
//   vpermb picks per output row the 4 activations its 4 kept weights of 2 groups need (index
//   bytes 4i + pos, + 16 per half, + 32 for the window's second chunk);
// - vpdpbusd multiplies them by the weights as signed bytes q − 8 and adds the 4 products into
//   the row's int32 lane (AVX2 needs vpmaddubsw + vpmaddwd + an add for that);
// - Σ (q − 8)(x + 128) = Σ (q − 8) x + 128 Σ (q − 8): the second term is a weight constant per
//   row and slice, the accumulators' starting value.
// Per chunk, 16 output rows and row of x, 256 kept products cost 4 vpermb and 4 vpdpbusd;
// dense gemm_w4a8_avx512 spends 8 vpdpbusd on the same 512 weights of the dense layer. On Zen 5
// both kinds issue 2 a cycle and ~2.5 a cycle mixed (port test: 1.5 cycles per 2 vpermb +
// 2 dependent vpdpbusd), so the inner loop can run ~1.25x the dense kernel's at best.
// Why vpermb on a window, not the AVX2 kernel's vpshufb on a 16-byte broadcast: the broadcast
// takes a shuffle-pipe slot of its own on Zen 5 (port test: 2 broadcasts + 4 vpshufb +
// 4 vpdpbusd per row and chunk ~3.8 cycles; 1 load + 8 vpermb + 8 vpdpbusd per two chunks ~6).
//
// The index and weight vectors depend on the weights only: a span of up to 32 chunks of one
// block is decoded once into L1 (512 bytes a chunk) and read by every row tile of a panel of x.
// x is repacked per call (gemm_w4a8_sp24_avx512_pack) so that a tile's windows are consecutive
// cache lines.
// Measured through the layers (bench/bench_sparse.py, Zen 5, 2 threads, weights from DRAM):
// 0.83-1.05x QuantLinear's dense gemm_w4a8 at M = 16-256 and 1.2-1.9x gemm_w4a16_sp24, the
// float kernel 2:4 layers ran before. In a harness: ~8.4 cycles per row and two chunks at
// 4096 → 4096, against ~6.5 for the inner loop alone (the rest: decode, the per-group epilogue,
// the accumulator spills GCC makes).
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "common/avx512_util.h"
#include "sparse/gemm_sp24.h"

namespace llmaccel::detail {
namespace {

constexpr int64_t kSpanChunks = 32;  // chunks decoded at once (16 KB, in L1)
constexpr int64_t kSliceChunks = 8;  // chunks summed in int32: sums exact in fp32 (< 2^24)
constexpr int64_t kChunkBytes = 192, kPosOffset = 128;
// Rows of x per tile: each index and weight vector is loaded once for kMR rows. 6 rows × (an
// int32 and an fp32 accumulator and a window) + 4 index/weight vectors fit in 32 registers
// (two int32 accumulators per row spilled).
constexpr int kMR = 6;

// One chunk of one 16-row block, decoded: for each 16-column half p of the chunk (value plane
// p), the permute indices and signed weights of its two vectors. As in the AVX2 kernel, vector
// lo of a row holds groups 0 and 2 of the half as bytes [a0, a2, b0, b2], vector hi groups 1 and
// 3 as [a1, a3, b1, b3]: the order of the low and high nibbles of the value dword.
struct alignas(64) ChunkBlock {
  __m512i idx[2][2];  // [half][lo, hi]
  __m512i w[2][2];
};

// Decodes chunk c of a block (ptr: its 192 bytes; its window holds it at byte 32 · (c % 2)) and
// adds Σ q of each row (its 16 unsigned codes; Σ (q − 8) = Σ q − 128) to qsum.
inline void decode(const uint8_t* ptr, int64_t c, ChunkBlock& d, __m512i& qsum) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
  const __m512i low2 = _mm512_set1_epi8(0x03);
  const __m512i pos = _mm512_loadu_si512(ptr + kPosOffset);
  __m512i codes = _mm512_setzero_si512();  // bytes: the sum of 4 codes of a row, ≤ 60
  for (int p = 0; p < 2; ++p) {
    const __m512i v = _mm512_loadu_si512(ptr + 64 * p);
    const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    d.w[p][0] = _mm512_sub_epi8(lo, eight);
    d.w[p][1] = _mm512_sub_epi8(hi, eight);
    codes = _mm512_add_epi8(codes, _mm512_add_epi8(lo, hi));
    // Positions of this half's groups i = 0..3: slot a at bits 2i, slot b at 16 + 2i. As nibble
    // pairs, bytes [a0 + 4 a1, a2 + 4 a3, b0 + 4 b1, b2 + 4 b3] in their low nibbles (one
    // vpternlogd, mask ? q : q << 4; the high nibbles are never read), then split: lo [a0, a2 + 8,
    // b0, b2 + 8]; hi [a1 + 4, a3 + 12, b1 + 4, b3 + 12], each + the half's place in the window.
    const __m512i q = p == 0 ? pos : _mm512_srli_epi32(pos, 8);
    const __m512i pairs = _mm512_ternarylogic_epi32(_mm512_set1_epi32(0x000F000F), q,
                                                    _mm512_slli_epi32(q, 4), 0xCA);
    const int base = static_cast<int>(32 * (c % 2) + 16 * p) * 0x01010101;
    d.idx[p][0] = _mm512_ternarylogic_epi32(pairs, low2, _mm512_set1_epi32(base | 0x08000800), 0xEA);
    d.idx[p][1] = _mm512_ternarylogic_epi32(_mm512_srli_epi32(pairs, 2), low2,
                                            _mm512_set1_epi32(base | 0x0C040C04), 0xEA);
  }
  avx512::dpbusd(qsum, codes, _mm512_set1_epi8(1));
}

// vpermb (AVX512_VBMI): bytes of table picked by the low 6 bits of each index byte. Inline asm:
// this file is compiled without -mavx512vbmi, which would let the compiler emit VBMI anywhere.
inline __m512i permute_bytes(__m512i index, __m512i table) {
  __m512i r;
  __asm__("vpermb %2, %1, %0" : "=v"(r) : "v"(index), "v"(table));
  return r;
}

// A run of ≤ kSliceChunks chunks of one group: its int32 sums are exact, and exact in fp32.
struct Slice {
  __m512i start;  // −128 Σ (q − 8) per row of the block: the accumulators' starting value
  __m512 sw;      // the block's scales of the slice's group
  int64_t first, end, group;  // chunks [first, end) of the span
};

// One chunk for MR rows: x is the 64-byte window that holds it (MR rows, 64 apart); d's indices
// already point into the window's half where the chunk lies. (Two chunks per window load, with
// head and tail cases for slices that start or end mid-window, measured no faster: 8.7 against
// 8.4 cycles per row and two chunks, Zen 5, 4096 → 4096.)
template <int MR>
__attribute__((always_inline)) inline void chunk(const uint8_t* x, const ChunkBlock& d,
                                                 __m512i (&acc)[MR]) {
  __m512i xw[MR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) xw[m] = _mm512_load_si512(x + 64 * m);
#pragma GCC unroll 2
  for (int p = 0; p < 2; ++p) {
    const __m512i i0 = _mm512_load_si512(&d.idx[p][0]), i1 = _mm512_load_si512(&d.idx[p][1]);
    const __m512i w0 = _mm512_load_si512(&d.w[p][0]), w1 = _mm512_load_si512(&d.w[p][1]);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      avx512::dpbusd(acc[m], permute_bytes(i0, xw[m]), w0);
      avx512::dpbusd(acc[m], permute_bytes(i1, xw[m]), w1);
    }
  }
}

// MR rows of packed x (the tile's first window of the span; windows `wstride` bytes apart)
// against a decoded span: out rows += Σ_slices Σ (q − 8) x · sx · sw. The fp32 sums stay in
// registers across the span's slices (at g128 a slice is 4 chunks).
template <int MR>
__attribute__((always_inline)) inline void rows(const uint8_t* x, int64_t wstride,
                                                const ChunkBlock* d, const Slice* slices,
                                                int64_t n_slices, const float* sx,
                                                int64_t n_groups, float (*out)[16]) {
  __m512 o[MR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) o[m] = _mm512_load_ps(out[m]);
  for (int64_t si = 0; si < n_slices; ++si) {
    const Slice& sl = slices[si];
    __m512i acc[MR];
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) acc[m] = sl.start;
    for (int64_t c = sl.first; c < sl.end; ++c) chunk<MR>(x + c / 2 * wstride, d[c], acc);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m512 s = _mm512_mul_ps(_mm512_set1_ps(sx[m * n_groups + sl.group]), sl.sw);
      o[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[m]), s, o[m]);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) _mm512_store_ps(out[m], o[m]);
}

// The rows [m0, m0 + rows) of a panel (packed at xp) against 16-row block b, one span at a
// time: decoded once, then read by every row tile.
void panel_block(const QuantAct& xq, const uint8_t* xp, int64_t m0, int64_t rows_in_panel,
                 const PackedW4Sp24& w, const float* bias, const Matrix& y, int64_t b) {
  const int64_t n_groups = w.n_groups(), per_group = w.group_size / 32;
  const int64_t n_chunks = w.k_pad / 32, wstride = rows_in_panel * 64;
  const uint8_t* block = w.qweight + b * n_chunks * kChunkBytes;
  const uint8_t* weight_end = w.qweight + w.n_pad / 16 * n_chunks * kChunkBytes;
  alignas(64) ChunkBlock d[kSpanChunks];
  alignas(64) Slice slices[kSpanChunks];
  alignas(64) float out[kSw4a8PanelRows][16] = {};

  for (int64_t c0 = 0; c0 < n_chunks; c0 += kSpanChunks) {
    const int64_t c1 = std::min(n_chunks, c0 + kSpanChunks);
    int64_t n_slices = 0;
    for (int64_t c = c0; c < c1;) {
      const int64_t g = c / per_group;
      const int64_t end = std::min({c1, (g + 1) * per_group, c + kSliceChunks});
      __m512i qsum = _mm512_setzero_si512();
      for (int64_t cc = c; cc < end; ++cc) decode(block + cc * kChunkBytes, cc, d[cc - c0], qsum);
      Slice& sl = slices[n_slices++];
      sl.start = _mm512_slli_epi32(
          _mm512_sub_epi32(_mm512_set1_epi32(static_cast<int>(128 * (end - c))), qsum), 7);
      sl.sw = _mm512_loadu_ps(w.scales + (b * n_groups + g) * 16);
      sl.first = c - c0;
      sl.end = end - c0;
      sl.group = g;
      c = end;
    }
    // The next span's weights (this block's, or the next block's: blocks are consecutive).
    prefetch_l2(block + c1 * kChunkBytes, kSpanChunks * kChunkBytes, weight_end);
    const uint8_t* xs = xp + c0 / 2 * wstride;  // c0 is even: the span starts a window
    int64_t m = 0;
    auto tile = [&](auto mr) {
      rows<decltype(mr)::value>(xs + m * 64, wstride, d, slices, n_slices,
                                xq.scale + (m0 + m) * n_groups, n_groups, out + m);
      m += decltype(mr)::value;
    };
    while (m + kMR <= rows_in_panel) tile(std::integral_constant<int, kMR>{});
    static_assert(kMR == 6, "the remainder cases below are written for 6-row tiles");
    switch (rows_in_panel - m) {
      case 5: tile(std::integral_constant<int, 5>{}); break;
      case 4: tile(std::integral_constant<int, 4>{}); break;
      case 3: tile(std::integral_constant<int, 3>{}); break;
      case 2: tile(std::integral_constant<int, 2>{}); break;
      case 1: tile(std::integral_constant<int, 1>{}); break;
      default: break;
    }
  }
  for (int64_t m = 0; m < rows_in_panel; ++m)
    avx512::store_out16(y, m0 + m, 16 * b, _mm512_load_ps(out[m]), bias, w.n - 16 * b);
}

}  // namespace

void gemm_w4a8_sp24_avx512_pack(const QuantAct& xq, uint8_t* xp) {
  const int64_t n_windows = (xq.k_pad + 63) / 64;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t m0 = 0; m0 < xq.m; m0 += kSw4a8PanelRows) {
    const int64_t rows = std::min(kSw4a8PanelRows, xq.m - m0);
    uint8_t* panel = xp + m0 * n_windows * 64;
    for (int64_t r = 0; r < rows; ++r) {
      const int8_t* src = xq.q + (m0 + r) * xq.k_pad;
      for (int64_t j = 0; j < n_windows; ++j) {
        // k_pad is a multiple of 32: a last window of 32 bytes is padded (never indexed).
        const __mmask64 valid = xq.k_pad - 64 * j >= 64 ? ~__mmask64(0) : __mmask64(0xFFFFFFFFu);
        const __m512i v = _mm512_maskz_loadu_epi8(valid, src + 64 * j);
        _mm512_store_si512(panel + (j * rows + r) * 64, _mm512_xor_si512(v, flip));
      }
    }
  }
}

void gemm_w4a8_sp24_avx512(const QuantAct& xq, const uint8_t* xp, const PackedW4Sp24& w,
                           const float* bias, const Matrix& y, int64_t nb0, int64_t nb1) {
  const int64_t n_windows = (xq.k_pad + 63) / 64;
  for (int64_t m0 = 0; m0 < xq.m; m0 += kSw4a8PanelRows) {
    const int64_t rows = std::min(kSw4a8PanelRows, xq.m - m0);
    const uint8_t* panel = xp + m0 * n_windows * 64;
    for (int64_t b = nb0; b < nb1; ++b) panel_block(xq, panel, m0, rows, w, bias, y, b);
  }
}

}  // namespace llmaccel::detail
