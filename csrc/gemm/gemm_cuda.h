// CUDA GEMMs over the device weight layouts (formats/cuda.py: int4_cuda_mma16x32,
// int8_cuda_mma16x32).
// Torch-free: raw device pointers, sizes and a cudaStream_t passed as void*. Launches are
// asynchronous on that stream, allocate nothing and never synchronize (CUDA-graph capturable).
// Each throws std::invalid_argument on a bad size and std::runtime_error on a launch failure.
//
// Activations x are (m, k) rows of ldx elements, k a multiple of 8 and x, ldx 16-byte aligned
// (the Python op pads otherwise); out is (m, n) rows of ldo elements in x's type.
#pragma once
#include <cstdint>

namespace llmaccel::cuda {

// gemm_w4a16 at M ≤ kDecodeMaxM runs a decode kernel: on sm_90 the K-slice kernel
// (gemm_decode_kslice.cuh: fixed K slices per warp, bulk-copy ring) for every grouping it takes,
// else the stream-K kernel (gemm_decode.cuh: the weight stream split evenly over all resident
// warps). Both finish tiles shared by several warps or blocks through this workspace. counters:
// n_counters int32, zero before the first call and left zero by every call (so one workspace
// serves a stream's calls one after another, never two calls at once); partials: scratch.
// LLMACCEL_DECODE_KERNEL=stream forces the stream-K kernel (benchmarks compare the two).
struct DecodeWorkspace {
  int* counters = nullptr;
  int64_t n_counters = 0;
  void* partials = nullptr;
  int64_t partial_bytes = 0;
};
constexpr int64_t kDecodeMaxM = 16;
// Which decode kernel gemm_w4a16 runs on the current device for this int4 grouping (16-byte
// aligned weights, as QuantLinear's are): "kslice" or "stream".
const char* decode_kernel(int64_t chunks_per_group);
// The workspace a gemm_w4a16 call with these sizes needs on the current device;
// chunks_per_group: the group size / 32. Above kDecodeMaxM: the opt-in tiled kernel's split
// partial sums (LLMACCEL_W4_TILED, gemm_tiled_w4.cuh), or nothing.
void decode_workspace(int64_t m, int64_t n_tiles, int64_t nk, int64_t chunks_per_group,
                      int64_t* n_counters, int64_t* partial_bytes);

// int4 group-wise weights (n_tiles × nk chunks of 32 columns), scales/zeros in int4_tile16x8's
// (n_tiles, n_groups, 16) layout, zeros null for symmetric (zero 8). x_dtype: kF16 or kBF16.
// y = x · ((q − zero) · scale)ᵀ + bias. m ≤ kDecodeMaxM: exact integers q − zero in the MMA,
// fp32 sums per group times the fp32 scale. Larger m: the swapped small-M kernel over blocks of
// up to 32 rows (grid.y), each block reading the weights again, the scaled weight rounded to
// x's type; it is meant for m ≤ kSwapAbMaxM, above which the Python op dequantizes and calls
// cuBLAS instead. With LLMACCEL_W4_TILED=<max M> (opt-in, not yet run on a GPU), M above the
// decode range up to that bound runs the tiled kernel (gemm_tiled_w4.cuh) in its place, with
// the workspace decode_workspace sizes.
void gemm_w4a16(const void* x, int x_dtype, int64_t m, int64_t k, int64_t ldx, const uint32_t* w,
                int64_t n_tiles, int64_t nk, const float* scales, const uint8_t* zeros,
                int64_t n_groups, int64_t group, int64_t n, const float* bias, void* out,
                int64_t ldo, const DecodeWorkspace& ws, void* stream);

// int8 per-channel weights: y = (x · qᵀ) · scale + bias, exact integer weights in the MMA.
void gemm_w8a16(const void* x, int x_dtype, int64_t m, int64_t k, int64_t ldx, const uint32_t* w,
                int64_t n_tiles, int64_t nk, const float* scales, int64_t n, const float* bias,
                void* out, int64_t ldo, void* stream);

// int8 × int8: xq (m, nk·32) int8 rows of ldx bytes, zero beyond k, one scale per row;
// y = (Σ xq·q) · (xscale[m] · scale[n]) + bias in out_dtype (kF16 / kBF16), exact int32 sums.
// m ≤ 64: the swapped small-M kernel; larger: a 128×128 tiled int8 tensor-core GEMM.
void gemm_w8a8(const int8_t* xq, int64_t m, int64_t ldx, const float* xscale, const uint32_t* w,
               int64_t n_tiles, int64_t nk, const float* scales, int64_t n, const float* bias,
               void* out, int out_dtype, int64_t ldo, void* stream);

// gemm_w8a8 for m > 64 on sm_90a (the ops' default there; gemm_w8a8_wgmma.cuh): the same
// product from x already quantized into the tiled image quant_act_int8_tiles writes (kt_count =
// ceil(nk / 4) blocks of 128 columns). Throws unless w8a8_wgmma_available(): a compute
// capability 9.0 device running this build's sm_90a code.
// When the tiles alone would leave SMs idle, K is split and the splits' sums meet in `partial`
// (w8a8_wgmma_partial_bytes for the call's sizes on the current device; 0: no workspace).
// after_image: the caller launched the kernel writing x's image (quant_act_int8_tiles,
// x_tiles_16bit) right before, on `stream`, as the ops do. Both wgmma GEMMs are then
// programmatic dependent launches: they read the weights, scales and everything but x before
// that kernel has finished (the kernels before it had completed when it started). false: a
// plain launch.
bool w8a8_wgmma_available();
int64_t w8a8_wgmma_partial_bytes(int64_t m, int64_t n_tiles, int64_t nk);
void gemm_w8a8_wgmma(const int8_t* xt, int64_t m, int64_t kt_count, const float* xscale,
                     const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales,
                     int64_t n, const float* bias, void* out, int out_dtype, int64_t ldo,
                     void* partial, int64_t partial_bytes, bool after_image, void* stream);

// gemm_w4a16 on sm_90a (the ops' default at M = 17-512; gemm_w4a16_wgmma.cu): the same product
// as gemm_w4a16 (each scaled weight rounded to x's type, fp32 sums) from x already laid out by
// x_tiles_16bit (kt_count = ceil(nk / 2) blocks of 64 columns). Throws unless w4a16_wgmma_available().
// The plan a wgmma call of these sizes gets on the current device (x16: the 16-bit-x kernels,
// gemm_w4a16 and gemm_w8a16; else gemm_w8a8): x rows per block, K splits, blocks per cluster,
// the partial-sum workspace. For tests and benchmarks that must know which variant ran.
struct WgmmaPlanInfo {
  int x_rows, splits, cluster;
  int64_t partial_bytes;
  int w_warps;   // weights warps taking the copy groups in turn (LLMACCEL_WGMMA_WWARPS)
  bool x_warp;   // x copies from a producer warp of their own (LLMACCEL_WGMMA_XCOPY=warp)
  int x_pieces;  // copies per x stage (LLMACCEL_WGMMA_XPIECES)
  bool x_tma;    // x copies through a tensor map (LLMACCEL_WGMMA_XTMA=1)
};
WgmmaPlanInfo wgmma_plan_info(bool x16, int64_t m, int64_t n_tiles, int64_t nk);
bool w4a16_wgmma_available();
int64_t w4a16_wgmma_partial_bytes(int64_t m, int64_t n_tiles, int64_t nk);
void gemm_w4a16_wgmma(const int8_t* xt, int x_dtype, int64_t m, int64_t kt_count,
                      const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales,
                      const uint8_t* zeros, int64_t n_groups, int64_t group, int64_t n,
                      const float* bias, void* out, int64_t ldo, void* partial,
                      int64_t partial_bytes, bool after_image, void* stream);
// gemm_w8a16 on sm_90a (the ops' default at M = 17-512; gemm_w8a16_wgmma.cuh): the same product as
// gemm_w8a16 (exact integer weights, fp32 sums, the per-channel scale on the sums) from x laid
// out by x_tiles_16bit, as gemm_w4a16_wgmma (its plan and w4a16_wgmma_partial_bytes too).
bool w8a16_wgmma_available();
void gemm_w8a16_wgmma(const int8_t* xt, int x_dtype, int64_t m, int64_t kt_count,
                      const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales,
                      int64_t n, const float* bias, void* out, int64_t ldo, void* partial,
                      int64_t partial_bytes, bool after_image, void* stream);
// 16-bit x (m, k) rows of ldx elements (k, ldx multiples of 8, 16-byte aligned) → the wgmma
// image (gemm_wgmma_xtiles.h): kt_count blocks of 64 columns, zero past k; the padding rows from
// m up to the next multiple of 256 are not written (they only meet outputs never stored).
void x_tiles_16bit(const void* x, int64_t m, int64_t k, int64_t ldx, int8_t* xt, int64_t kt_count,
                   void* stream);

// Dynamic symmetric int8 quantization per row and block of `block` columns, bit-exact with
// quant_act_int8 on the CPU (see quant/quant_act_int8.h): x (m, k) in x_dtype (kF16, kBF16,
// kF32) → q (m, k_out = n_blocks·block) rows of ldq, zero past k; scale and qsum (m, n_blocks),
// qsum may be null.
void quant_act_int8(const void* x, int x_dtype, int64_t m, int64_t k, int64_t ldx, int64_t block,
                    int64_t n_blocks, int8_t* q, int64_t ldq, float* scale, int32_t* qsum,
                    void* stream);

// quant_act_int8 per token (one block of kt_count·128 columns) written as gemm_w8a8_wgmma's x
// image: per 256 rows and 128 columns one 32 KB block of 128-byte rows whose 16-byte pieces are
// swizzled (piece c of row r at c ^ (r % 8)), rows ordered by (row block, column block, row);
// zero past k and in the rows from m up to the next multiple of 256. scale: (m,), as above.
void quant_act_int8_tiles(const void* x, int x_dtype, int64_t m, int64_t k, int64_t ldx,
                          int8_t* q, int64_t kt_count, float* scale, void* stream);

// Device layouts → (n, k) rows of ldo in out_dtype (kF32, kF16, kBF16): (q − zero)·scale and
// q·scale computed in fp32 exactly as the CPU dequant, then rounded to out_dtype.
void dequant_w4(const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales,
                const uint8_t* zeros, int64_t n_groups, int64_t group, int64_t n, int64_t k,
                void* out, int out_dtype, int64_t ldo, void* stream);
void dequant_w8(const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales, int64_t n,
                int64_t k, void* out, int out_dtype, int64_t ldo, void* stream);

// Largest m one swapped small-M launch takes (8-row tiles × 8).
constexpr int64_t kSwapAbMaxM = 64;

}  // namespace llmaccel::cuda
