// gemm_w4a16 above the decode range on sm_90a: the wgmma skeleton of gemm_wgmma.cuh with int4
// weights dequantized in registers straight into wgmma's A fragments, fp32 accumulators.
//
// gemm_w4a16's path at M = 17-512 on compute capability 9.0 (ops/cuda.py WGMMA_M;
// LLMACCEL_W4_WGMMA=0 off, =all every M). It replaces the swapped kernel (M = 17-64: 0.47-0.80×
// bf16 on the H100) and dequantize + cuBLAS (M = 128-512: 0.42-0.60×; writing the dequantized
// bf16 weights alone costs ~50 µs at 4096→14336): 0.80-1.23× there (2026-11-23). Above M = 512
// dequantize + cuBLAS is faster again; in the decode range the K-slice kernel (18.8 against
// 36.7 µs at M = 1).
//
// A stage is 64 columns (x's image: 128-byte rows of 16-bit x, gemm_wgmma_xtiles.h): per weight
// tile 2 chunks of 256 bytes (512 B contiguous in int4_cuda_mma16x32), 4 KB for the block's 8
// tiles. A lane's 8 bytes of a chunk are two int4 words, one per k16 step, and dequant_w4_step
// (the swapped kernel's: (q − zero) · scale in T, bit tricks) turns each word into the four A
// registers of that step: four m64nNk16 per stage. The group scales (and zero points) of the
// next stage's chunks are loaded while this stage's wgmmas run (from L2: the producer pulls
// them in with the weights).
#pragma once
#include "gemm/gemm_dequant_frag.cuh"
#include "gemm/gemm_wgmma_consume.cuh"
#include "gemm/gemm_wgmma_produce.cuh"

namespace llmaccel::cuda {

constexpr int kW4WgChunks = 2, kW4WgChunkBytes = 256;  // 4 KB of weights per stage
constexpr int kW4WgMinRows = 16;  // x rows per block from 16 up (m64n16 .. m64n256)
template <int kN> using W4WgCfg = WgmmaCfg<kW4WgChunks, kW4WgChunkBytes, kN, true>;

// One chunk's dequantization constants for this lane's rows g and g + 8.
struct ChunkScales {
  uint32_t s_lo, s_hi, zp_lo, zp_hi;
};

// This lane's row of a weight tile's group scales and zero points ((n_tiles, n_groups, 16):
// row g of tile `tile`), so that a chunk's constants cost a 32-bit offset, not 64-bit address
// arithmetic, per stage.
struct TileScaleRows {
  const float* s;
  const uint8_t* z;
};
__device__ __forceinline__ TileScaleRows tile_scale_rows(const WgmmaParams& p, int tile, int g) {
  const int64_t row = int64_t(tile) * p.n_groups * 16 + g;
  return {p.scales + row, p.zeros ? p.zeros + row : nullptr};
}

// Chunk c's quantization group, clamped into the scales (chunks past nk: the last one's).
__device__ __forceinline__ int chunk_group(const WgmmaParams& p, int chunk) {
  return min(wgmma_chunk_group(p, min(chunk, p.nk - 1)), p.n_groups - 1);
}

template <class T, bool ZP>
__device__ __forceinline__ ChunkScales group_scales(const WgmmaParams& p, TileScaleRows rows,
                                                    int group) {
  using A = Act16<T>;
  const unsigned at = unsigned(group) * 16u;
  const float* sp = rows.s + at;  // rows g and g + 8: one address, two immediate offsets
  ChunkScales cs;
  cs.s_lo = as_u32(A::splat(__ldg(sp)));
  cs.s_hi = as_u32(A::splat(__ldg(sp + 8)));
  if constexpr (ZP) {
    const uint8_t* zp = rows.z + at;
    cs.zp_lo = A::kMagic | (uint32_t(__ldg(zp)) * 0x00010001u);
    cs.zp_hi = A::kMagic | (uint32_t(__ldg(zp + 8)) * 0x00010001u);
  } else {
    cs.zp_lo = cs.zp_hi = A::kMagic | 0x00080008u;
  }
  return cs;
}

// A consumer warp's fragments: a stage's weights dequantized straight into its A registers (in
// the skeleton's wgmma_mainloop: while the previous stage's wgmmas run), the next stage's group
// scales loaded meanwhile. One per work item (weight block wb). Where a stage lies in one group
// (p.stage_in_group: groups of an even number of chunks, or one group) the scales are loaded
// once per group: at g128, every second stage (the loads and their address arithmetic were a
// third of the instructions per stage).
template <class T, bool ZP, class Cfg> struct W4WgFill {
  static constexpr int kSteps = 2 * kW4WgChunks;  // two int4 words per chunk, one per k16 step
  const WgmmaParams& p;
  const uint8_t* wfrag;
  TileScaleRows srows;
  int kt1;
  int nxt_group;  // the group whose scales nxt holds (stage_in_group)
  ChunkScales cur[kW4WgChunks], nxt[kW4WgChunks];
  __device__ W4WgFill(const WgmmaParams& p_, const WgmmaSmem<Cfg>& sm, const WgmmaWork& work,
                      int wb)
      : p(p_), kt1(work.kt1), nxt_group(-1) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    wfrag = sm.ws + Cfg::w_tile(warp) + lane * 8;
    // padding tiles past n_tiles: any tile's scales (their outputs are never stored)
    srows = tile_scale_rows(p, min(wb * kWgWTiles + warp, p.n_tiles - 1), lane >> 2);
    load_next(work.kt0);
  }
  // The scales of k block kt's chunks into nxt (in flight until the fill that uses them).
  __device__ __forceinline__ void load_next(int kt) {
    if (p.stage_in_group) {
      const int g = chunk_group(p, kt * kW4WgChunks);
      if (g == nxt_group) return;
      nxt_group = g;
      nxt[0] = group_scales<T, ZP>(p, srows, g);
#pragma unroll
      for (int q = 1; q < kW4WgChunks; ++q) nxt[q] = nxt[0];
    } else {
#pragma unroll
      for (int q = 0; q < kW4WgChunks; ++q)
        nxt[q] = group_scales<T, ZP>(p, srows, chunk_group(p, kt * kW4WgChunks + q));
    }
  }
  __device__ __forceinline__ void operator()(unsigned s, int kt, uint32_t (&a)[kSteps][4]) {
#pragma unroll
    for (int q = 0; q < kW4WgChunks; ++q) {
      cur[q] = nxt[q];
      const uint2 v = *reinterpret_cast<const uint2*>(wfrag + Cfg::w_stage(s) + q * 256);
      dequant_w4_step<T>(v.x, cur[q].zp_lo, cur[q].zp_hi, cur[q].s_lo, cur[q].s_hi, a[2 * q]);
      dequant_w4_step<T>(v.y, cur[q].zp_lo, cur[q].zp_hi, cur[q].s_lo, cur[q].s_hi, a[2 * q + 1]);
    }
    if (kt + 1 < kt1) load_next(kt + 1);
  }
};

template <class T, bool ZP, int kN>
__global__ void __launch_bounds__(kWgThreads, W4WgCfg<kN>::kBlocksPerSm)
    gemm_w4a16_wgmma_kernel(const __grid_constant__ WgmmaParams p) {
#if defined(LLMACCEL_WGMMA_BODY)
  using Cfg = W4WgCfg<kN>;
  LLMACCEL_DYNAMIC_SMEM(smem_raw);
  const WgmmaSmem<Cfg> sm(smem_raw);
  LLMACCEL_TRACE(const TraceEntry trace_in = trace_entry());
  if (wgmma_block_start<Cfg>(p, sm)) return wgmma_cluster_sync(p);  // producer
  wgmma_consume<Cfg, T, false, float, W4WgFill<T, ZP, Cfg>>(p, sm);
  LLMACCEL_TRACE(trace_exit(trace_in, Cfg::kStages, Cfg::kG));
#elif defined(__CUDA_ARCH__)
  __trap();  // not an sm_90a build: the launchers never start it (wgmma_built_for_device)
#endif
}

// x (m, k) 16-bit rows → the kernel's image (gemm_wgmma_xtiles.h), one thread per (row, 32-column
// chunk) of x's m rows: the chunk's four 16-byte column runs 8t .. 8t+7 in, the four 16-byte
// image pieces out. Piece (s, h) holds word 2s + h of each run t (columns 8t + 4s + 2h, +1): a
// 4 × 4 transpose of 32-bit words. The padding rows past m are left as they are: an x row only
// meets its own output row, and those past m are never stored (at M = 1 writing them would be
// 2 MB of zeros per call at K = 4096).
__global__ void __launch_bounds__(256)
    x_tiles_16bit_kernel(const uint16_t* x, int64_t m, int64_t k, int64_t ldx,
                                     int8_t* xt, int64_t kt_count) {
  griddep_launch_dependents();  // the GEMM's blocks may start: they wait for x (wgmma_produce)
  const int64_t chunks = kt_count * 2;
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= m * chunks) return;
  const int64_t row = idx / chunks, chunk = idx % chunks;
  uint4 in[4];
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    const int64_t col = chunk * 32 + t * 8;
    in[t] = col < k
                ? __ldg(reinterpret_cast<const uint4*>(x + row * ldx + col))
                : make_uint4(0, 0, 0, 0);
  }
  const uint4 out[4] = {make_uint4(in[0].x, in[1].x, in[2].x, in[3].x),
                        make_uint4(in[0].y, in[1].y, in[2].y, in[3].y),
                        make_uint4(in[0].z, in[1].z, in[2].z, in[3].z),
                        make_uint4(in[0].w, in[1].w, in[2].w, in[3].w)};
#pragma unroll
  for (int ps = 0; ps < 4; ++ps) {
    const int64_t byte = (chunk & 1) * 64 + ps * 16;
    *reinterpret_cast<uint4*>(xt + wgmma_x_block_byte(row, chunk / 2, byte, kt_count)) = out[ps];
  }
}

}  // namespace llmaccel::cuda
