// 2:4 sparse GEMMs: y = x · Wᵀ + bias where every group of 4 consecutive columns of a row of W
// keeps 2 weights (formats int4_sp24_tile16x32 and bf16_sp24_tile16x32, formats/sp24.py).
//   x (M, K) fp32 or bf16; y (M, N) in x's dtype; bias fp32 (N) or null.
//   gemm_w4a16_sp24: W = (q − 8) · scale[n][group], symmetric int4, 3 bits per weight + scales.
//   gemm_sp24:       W in bf16, 9 bits per weight.
// Why they are faster than dense at decode: M = 1 streams the weights once, and these formats
// are 25 % (int4) and 44 % (bf16) fewer bytes than their dense forms; each kept pair costs one
// permute to fetch its two activations and one bf16 pair product, fewer instructions per dense
// weight than the dense kernels need.
// Precision: fp32 accumulation; every product of bf16 values is exact in fp32.
//   gemm_w4a16_sp24 consumes x rounded to bf16 (nearest even) on every path: with 4-bit weights
//   that rounding (2⁻⁹ relative) is far below the weights' own (half a step of 16 levels), and
//   carrying fp32 x as a hi + lo pair would cost one more 512-bit word permute per group, the
//   instruction this kernel is bound by (measured: 0.7x dense with the pair, 1.3x without).
//   gemm_sp24 (bf16 weights) carries fp32 x as hi + lo on the AVX-512 paths (|x − hi − lo| ≤
//   2⁻¹⁸|x|) and exactly on the AVX2 and portable paths; bf16 x is always exact.
// vdpbf16ps treats subnormal inputs as zero.
//
// gemm_w4a8_sp24: the int4 weights of gemm_w4a16_sp24 × x quantized to int8 on the fly, per
// token and weight group (quant_act_int8.h, as gemm_w4a8), for prefill-sized M where the float
// kernel is compute-bound:
//   y[m][n] = Σ_g sx[m][g] · scale[n][g] · Σ_{k∈g, kept} xq[m][k] · (q[n][k] − 8) + bias[n]
// with exact integer sums per group (fp32 from 256 columns on: sums over slices of 256 columns
// of a group are exact integers added in fp32). Group sizes up to 2^20, as gemm_w4a8. The
// AVX-512 (vpermb + vpdpbusd; needs VBMI) and AVX2 (vpshufb + vpmaddubsw) kernels compute the
// same sums.
#pragma once
#include <cstring>

#include "common/tensor_view.h"

namespace llmaccel {

void gemm_w4a16_sp24(const Matrix& x, const PackedW4Sp24& w, const float* bias, const Matrix& y,
                     int num_threads);
void gemm_sp24(const Matrix& x, const PackedSp24& w, const float* bias, const Matrix& y,
               int num_threads);
void gemm_w4a8_sp24(const Matrix& x, const PackedW4Sp24& w, const float* bias, const Matrix& y,
                    int num_threads);

namespace detail {
// Row `lane`'s 32-bit word of a 64-byte plane (16 little-endian uint32 lanes, as formats/sp24.py
// writes them).
inline uint32_t lane_word(const uint8_t* plane, int lane) {
  uint32_t v;
  std::memcpy(&v, plane + 4 * lane, 4);
  return v;
}

// Activations staged per row as bf16 words (M, k_pad): hi = round(x), lo = round(x − hi); lo is
// null when x arrived as bf16 (exact). Row blocks [nb0, nb1).
void gemm_w4a16_sp24_avx512(const uint16_t* xhi, const uint16_t* xlo, int64_t m,
                            const PackedW4Sp24& w, const float* bias, const Matrix& y,
                            int64_t nb0, int64_t nb1, bool native_bf16);
// hi = round(x), lo = round(x − hi) as bf16 words, 16 at a time (lo may be null).
void split_bf16_avx512(const float* xf, int64_t count, uint16_t* hi, uint16_t* lo);
void gemm_sp24_avx512(const uint16_t* xhi, const uint16_t* xlo, int64_t m, const PackedSp24& w,
                      const float* bias, const Matrix& y, int64_t nb0, int64_t nb1,
                      bool native_bf16);
// AVX2: x staged as fp32 (M, k_pad), already rounded to bf16 for gemm_w4a16_sp24. Row blocks
// [nb0, nb1).
void gemm_w4a16_sp24_avx2(const float* xf, int64_t m, const PackedW4Sp24& w, const float* bias,
                          const Matrix& y, int64_t nb0, int64_t nb1);
void gemm_sp24_avx2(const float* xf, int64_t m, const PackedSp24& w, const float* bias,
                    const Matrix& y, int64_t nb0, int64_t nb1);
// xq: x quantized per token and group; xu: the same codes + 128 as unsigned bytes (M, k_pad).
void gemm_w4a8_sp24_avx2(const QuantAct& xq, const uint8_t* xu, const PackedW4Sp24& w,
                         const float* bias, const Matrix& y, int64_t nb0, int64_t nb1);
// AVX-512 (VNNI + VBMI): x + 128 repacked per panel of kSw4a8PanelRows rows (the last may be
// shorter) as 64-byte windows, window-major within the panel: panel p at byte
// p · kSw4a8PanelRows · n_windows · 64, its row r's window j at (j · rows + r) · 64 from there,
// n_windows = ceil(k_pad / 64); M · n_windows · 64 bytes in all, 64-byte aligned.
// The first call packs all of x; the second computes row blocks [nb0, nb1).
constexpr int64_t kSw4a8PanelRows = 48;
void gemm_w4a8_sp24_avx512_pack(const QuantAct& xq, uint8_t* xp);
void gemm_w4a8_sp24_avx512(const QuantAct& xq, const uint8_t* xp, const PackedW4Sp24& w,
                           const float* bias, const Matrix& y, int64_t nb0, int64_t nb1);

// The w4a8 kernels decode a run of chunks in one burst of reads and then compute on it, too
// bursty for the hardware prefetcher; they ask for the next run's bytes [p, p + bytes) in L2
// while they compute (stopping at the weight's end). With weights from DRAM, M = 16, Llama
// shapes: AVX2 path 1.02-1.15 -> 1.36-1.41x the dense layer (bench_sparse, before and after);
// AVX-512 0.65 -> 0.84x at 4096 -> 14336 (a scratch A/B outside bench/).
inline void prefetch_l2(const uint8_t* p, int64_t bytes, const uint8_t* end) {
  for (const uint8_t* q = p; q < end && q < p + bytes; q += 64) __builtin_prefetch(q, 0, 2);
}
}  // namespace detail
}  // namespace llmaccel
