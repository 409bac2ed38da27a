// gemm_w4a8_sp24, AVX2: 2:4 sparse int4 weights × int8 activations, for prefill-sized M.
//
// gemm_w4a16_sp24 spends a permute and an fp32 FMA per kept weight and row of x; from a few rows
// of x on, the dense layer's int8 path (gemm_w4a8: 4 products per vpmaddubsw lane) outruns it.
// Here a kept pair costs a byte shuffle and half a vpmaddubsw lane:
// - a 16-byte slice of x (4 groups of 4 columns), as unsigned bytes x + 128, is broadcast to
//   both 128-bit halves, and vpshufb picks per output row the 4 activations its 4 kept weights
//   of 2 groups need (index bytes 4i + pos, built from the position plane);
// - vpmaddubsw multiplies them by the weights as signed bytes q − 8 (−8..7) and adds pairs
//   (no saturation: |(q − 8) · (x + 128)| ≤ 8 · 255, a pair ≤ 4080); the two int16 vectors of
//   a 16-column half are added (≤ 8160) before vpmaddwd widens them to int32;
// - Σ (q − 8)(x + 128) = Σ (q − 8) x + 128 Σ (q − 8): the second term is a weight constant per
//   row and slice (from the sum of the codes: Σ (q − 8) = Σ q − 128 per chunk), subtracted in
//   the epilogue, so x + 128 needs no per-row correction.
// The index and weight bytes depend on the weights only: a slice of up to 8 chunks of one
// 16-row block is decoded once into L1 (512 bytes per chunk) and reused by every row of a panel
// of x. Decoding costs ~35 instructions and 8 stores per chunk and strip, ~40 % of the time at
// M = 3 (perf, one thread, 4096→4096); dense gemm_w4a8 needs 3 per 32 bytes of weights, which
// is why it stays ahead at M = 3-4. Per chunk
// (32 columns), 8-row strip and row of x, 128 kept products cost 2 broadcasts,
// 4 vpshufb, 4 vpmaddubsw, 2 vpmaddwd and 4 adds; gemm_w4a8 spends 8 vpmaddubsw, 4 vpmaddwd and
// 8 adds on the same 256 weights of the dense layer. On Zen 3 both multiplies share 2 pipes and
// the shuffles and broadcasts another 2 (llvm-mca: ~4.3 cycles for the 16 instructions).
// Measured through the layers (bench/bench_sparse.py, 2 threads): 1.20-1.39x QuantLinear's
// gemm_w4a8 on Llama-3-8B shapes at M = 16 and 256.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "common/avx2_util.h"
#include "sparse/gemm_sp24.h"

namespace llmaccel::detail {
namespace {

constexpr int64_t kPanelRows = 48;  // rows of x kept in L1/L2 against one decoded slice
constexpr int64_t kSliceChunks = 8;  // chunks decoded at once: int32 sums exact in fp32 (< 2^24)
constexpr int64_t kChunkBytes = 192, kPosOffset = 128;
// Rows of x per tile. Measured (2 threads, M = 64-256): 3 rows beat 4 (up to 1.2x, at
// 576→576) and 6 (up to 1.1x, at 4096→4096); with 6, GCC spills accumulators.
constexpr int kMR = 3;

// One chunk of one 8-row strip, decoded: for each 16-column half p of the chunk (value plane
// p), the shuffle indices and signed weights of its two vectors. Vector lo of a row holds
// groups 0 and 2 of the half as bytes [a0, a2, b0, b2] (slot a, slot b), vector hi groups 1 and
// 3 as [a1, a3, b1, b3]: the order the low and high nibbles of the value dword already have,
// so the weights need no byte permute; the indices are built in that order instead.
struct alignas(32) ChunkStrip {
  __m256i idx[2][2];  // [half][lo, hi]
  __m256i w[2][2];
};

// Decodes one chunk's strip (ts: its 32-byte lanes of the value and position planes) and adds
// Σ q of each row (its 16 unsigned codes; Σ (q − 8) = Σ q − 128) to qsum (int32 per row lane).
inline void decode(const uint8_t* ts, ChunkStrip& d, __m256i& qsum) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
  const __m256i low2 = _mm256_set1_epi8(0x03);
  const __m256i pos = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ts + kPosOffset));
  __m256i codes = _mm256_setzero_si256();  // bytes: the sum of 4 codes of a row, ≤ 60
  for (int p = 0; p < 2; ++p) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ts + 64 * p));
    const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    d.w[p][0] = _mm256_sub_epi8(lo, eight);
    d.w[p][1] = _mm256_sub_epi8(hi, eight);
    codes = _mm256_add_epi8(codes, _mm256_add_epi8(lo, hi));
    // Positions of this half's groups i = 0..3: slot a at bits 2i, slot b at 16 + 2i. First as
    // nibble pairs, bytes [a0 + 4 a1, a2 + 4 a3, b0 + 4 b1, b2 + 4 b3], then split:
    // lo: [a0, a2 + 8, b0, b2 + 8]; hi: [a1 + 4, a3 + 12, b1 + 4, b3 + 12].
    const __m256i q = p == 0 ? pos : _mm256_srli_epi32(pos, 8);
    const __m256i pairs =
        _mm256_or_si256(_mm256_and_si256(q, _mm256_set1_epi32(0x000F000F)),
                        _mm256_and_si256(_mm256_slli_epi32(q, 4), _mm256_set1_epi32(0x0F000F00)));
    d.idx[p][0] = _mm256_or_si256(_mm256_and_si256(pairs, low2), _mm256_set1_epi32(0x08000800));
    d.idx[p][1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(pairs, 2), low2),
                                  _mm256_set1_epi32(0x0C040C04));
  }
  qsum = _mm256_add_epi32(qsum, _mm256_madd_epi16(
      _mm256_maddubs_epi16(codes, _mm256_set1_epi8(1)), _mm256_set1_epi16(1)));
}

// MR rows of x (unsigned bytes, k_pad apart, at the slice's first column) against strip r of
// a decoded slice of `chunks` chunks; adds (Σ − 128 wsum) · sx · sw to out rows. Each index and
// weight vector is loaded once for the MR rows: as memory operands of every row's shuffle and
// vpmaddubsw they were the bound (Zen 3 feeds 2 vector loads a cycle).
template <int MR>
inline void rows(const uint8_t* xu, int64_t k_pad, const ChunkStrip (*d)[2], int r,
                 int64_t chunks, __m256i wsum128, const float* sx, int64_t sx_stride, __m256 sw,
                 float (*out)[2][8]) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256i acc[MR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) acc[m] = _mm256_setzero_si256();
  for (int64_t c = 0; c < chunks; ++c) {
#pragma GCC unroll 2
    for (int p = 0; p < 2; ++p) {
      const ChunkStrip& s = d[c][r];
      const __m256i i0 = _mm256_load_si256(&s.idx[p][0]), i1 = _mm256_load_si256(&s.idx[p][1]);
      const __m256i w0 = _mm256_load_si256(&s.w[p][0]), w1 = _mm256_load_si256(&s.w[p][1]);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m256i t = _mm256_broadcastsi128_si256(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(xu + m * k_pad + 32 * c + 16 * p)));
        const __m256i h = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_shuffle_epi8(t, i0), w0),
                                           _mm256_maddubs_epi16(_mm256_shuffle_epi8(t, i1), w1));
        acc[m] = _mm256_add_epi32(acc[m], _mm256_madd_epi16(h, ones16));
      }
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
    const __m256 s = _mm256_mul_ps(_mm256_set1_ps(sx[m * sx_stride]), sw);
    const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[m], wsum128));
    _mm256_store_ps(out[m][r], _mm256_fmadd_ps(v, s, _mm256_load_ps(out[m][r])));
  }
}

// Rows [m0, m1) of x against 16-row block b: slices decoded once, rows four at a time.
void panel_block(const QuantAct& xq, const uint8_t* xu, const PackedW4Sp24& w, const float* bias,
                 const Matrix& y, int64_t m0, int64_t m1, int64_t b) {
  const int64_t k_pad = w.k_pad, n_groups = w.n_groups(), per_group = w.group_size / 32;
  const uint8_t* block = w.qweight + b * (k_pad / 32) * kChunkBytes;
  const uint8_t* weight_end = w.qweight + w.n_pad / 16 * (k_pad / 32) * kChunkBytes;
  alignas(32) ChunkStrip d[kSliceChunks][2];
  alignas(32) float out[kPanelRows][2][8] = {};

  for (int64_t g = 0; g < n_groups; ++g) {
    __m256 sw[2];
    for (int r = 0; r < 2; ++r) sw[r] = _mm256_loadu_ps(w.scales + avx2::strip_meta(2 * b + r, n_groups, g));
    for (int64_t c0 = g * per_group; c0 < (g + 1) * per_group; c0 += kSliceChunks) {
      const int64_t chunks = std::min(kSliceChunks, (g + 1) * per_group - c0);
      __m256i wsum128[2];  // 128 Σ (q − 8) per row
      for (int r = 0; r < 2; ++r) {
        __m256i qsum = _mm256_setzero_si256();
        for (int64_t c = 0; c < chunks; ++c)
          decode(block + (c0 + c) * kChunkBytes + 32 * r, d[c][r], qsum);
        const __m256i wsum = _mm256_sub_epi32(qsum, _mm256_set1_epi32(static_cast<int>(128 * chunks)));
        wsum128[r] = _mm256_slli_epi32(wsum, 7);
      }
      prefetch_l2(block + (c0 + chunks) * kChunkBytes, kSliceChunks * kChunkBytes, weight_end);
      const uint8_t* xs = xu + c0 * 32;
      const float* sx = xq.scale + g;
      for (int r = 0; r < 2; ++r) {
        int64_t m = m0;
        auto tile = [&](auto mr) {
          rows<decltype(mr)::value>(xs + m * k_pad, k_pad, d, r, chunks, wsum128[r],
                                    sx + m * n_groups, n_groups, sw[r], out + (m - m0));
        };
        for (; m + kMR <= m1; m += kMR) tile(std::integral_constant<int, kMR>{});
        static_assert(kMR == 3, "the remainder cases below are written for 3-row tiles");
        if (m1 - m == 2) tile(std::integral_constant<int, 2>{});
        if (m1 - m == 1) tile(std::integral_constant<int, 1>{});
      }
    }
  }
  for (int64_t m = m0; m < m1; ++m)
    for (int r = 0; r < 2; ++r)
      avx2::store_out8(y, m, (2 * b + r) * 8, _mm256_load_ps(out[m - m0][r]), bias, w.n - (2 * b + r) * 8);
}

}  // namespace

void gemm_w4a8_sp24_avx2(const QuantAct& xq, const uint8_t* xu, const PackedW4Sp24& w,
                         const float* bias, const Matrix& y, int64_t nb0, int64_t nb1) {
  for (int64_t m0 = 0; m0 < xq.m; m0 += kPanelRows) {
    const int64_t m1 = std::min(xq.m, m0 + kPanelRows);
    for (int64_t b = nb0; b < nb1; ++b) panel_block(xq, xu, w, bias, y, m0, m1, b);
  }
}

}  // namespace llmaccel::detail
