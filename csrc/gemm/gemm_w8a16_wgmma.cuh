// gemm_w8a16 on sm_90a: the wgmma skeleton of gemm_wgmma.cuh with int8 per-channel weights turned
// into exact 16-bit integers in registers, straight into wgmma's A fragments, fp32 accumulators,
// the per-channel scale in the epilogue.
//
// gemm_w8a16's path at M = 17-512 on compute capability 9.0 (ops/cuda.py WGMMA_M;
// LLMACCEL_W8_WGMMA=0 off, =all every M). There the swapped kernel and dequantize + cuBLAS ran
// at 0.39-0.59× bf16 on the H100; this kernel 0.78-1.36× (2026-11-23). At M = 1 it takes 32 µs
// against the swapped kernel's 30 (the issue's 1.85× needs ~24): the consumers' instructions per
// stage, not the bytes, set its time (bench/gpu/NOTES.md). A weight costs ~2.3 instructions
// (bf16 x) or ~1.3 (fp16 x) on its way into the tensor cores, and no scale until the epilogue.
//
// A stage is 64 columns (x's 16-bit image, as gemm_w4a16_wgmma): per weight tile 2 chunks of 512
// bytes (1 KB contiguous in int8_cuda_mma16x32), 8 KB for the block's 8 tiles. A lane's 16 bytes
// of a chunk are the words (row g, columns 8t .. 8t+3), (row g + 8, same), (row g, 8t+4 .. 8t+7),
// (row g + 8, same): words 2s and 2s + 1 hold k16 step s, bytes 0-1 its registers 0/1 and bytes
// 2-3 its registers 2/3, in the column order x's image expects (gemm_wgmma_xtiles.h).
#pragma once
#include "gemm/gemm_wgmma_consume.cuh"
#include "gemm/gemm_wgmma_produce.cuh"

namespace llmaccel::cuda {

constexpr int kW8WgChunkBytes16 = 512;  // 8 KB of int8 weights per 64-column stage
constexpr int kW8A16WgMinRows = 16;     // x rows per block from 16 up, as gemm_w4a16's
template <int kN> using W8A16WgCfg = WgmmaCfg<2, kW8WgChunkBytes16, kN>;
constexpr int kW8A16WgWStage = W8A16WgCfg<16>::kWStage;  // the plan's (wgmma_plan)

// Signed codes b0..b3 of `word` → (b0, b1) and (b2, b3) as exact 16-bit pairs in T. u = b + 128
// (the bytes XOR 0x80). fp16: 0x6400 | u is 1024 + u, minus 1152. bf16 has 7 mantissa bits, so
// 0x4300 | (u & 127) is 128 + (u & 127), minus 256, or 128 where u's bit 7 is set (0x4380 or
// 0x4300: bit 7 flips one into the other).
template <class T> __device__ __forceinline__ void int8x4_to_16bit(uint32_t word, uint32_t& lo,
                                                                     uint32_t& hi);
template <> __device__ __forceinline__ void int8x4_to_16bit<__half>(uint32_t word, uint32_t& lo,
                                                                      uint32_t& hi) {
  const uint32_t u = word ^ 0x80808080u;
  const __half2 k1152 = as_t2<__half2>(0x64806480u);
  lo = as_u32(__hsub2(as_t2<__half2>(__byte_perm(u, 0x64646464u, 0x5140)), k1152));
  hi = as_u32(__hsub2(as_t2<__half2>(__byte_perm(u, 0x64646464u, 0x7362)), k1152));
}
template <>
__device__ __forceinline__ void int8x4_to_16bit<__nv_bfloat16>(uint32_t word, uint32_t& lo,
                                                                uint32_t& hi) {
  using T2 = __nv_bfloat162;
  const uint32_t u = word ^ 0x80808080u;
  const auto pair = [](uint32_t v) {  // v: u's two bytes in the low bytes of its halves
    const uint32_t t = and_or(v, 0x007F007Fu, 0x43004300u);
    const uint32_t sub = (v & 0x00800080u) ^ 0x43804380u;
    return as_u32(__hsub2(as_t2<T2>(t), as_t2<T2>(sub)));
  };
  lo = pair(__byte_perm(u, 0u, 0x5140));
  hi = pair(__byte_perm(u, 0u, 0x7362));
}

// A consumer warp's fragments: per chunk one 16-byte load, its four words the A fragments of two
// k16 steps once each byte is a 16-bit integer.
template <class T, class Cfg> struct W8A16WgFill {
  static constexpr int kSteps = 4;
  const uint8_t* wfrag;
  __device__ W8A16WgFill(const WgmmaParams&, const WgmmaSmem<Cfg>& sm, const WgmmaWork&, int)
      : wfrag(sm.ws + Cfg::w_tile(threadIdx.x >> 5) + (threadIdx.x & 31) * 16) {}
  __device__ __forceinline__ void operator()(unsigned s, int, uint32_t (&a)[kSteps][4]) const {
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const uint4 v = *reinterpret_cast<const uint4*>(wfrag + Cfg::w_stage(s) + q * 512);
      int8x4_to_16bit<T>(v.x, a[2 * q][0], a[2 * q][2]);
      int8x4_to_16bit<T>(v.y, a[2 * q][1], a[2 * q][3]);
      int8x4_to_16bit<T>(v.z, a[2 * q + 1][0], a[2 * q + 1][2]);
      int8x4_to_16bit<T>(v.w, a[2 * q + 1][1], a[2 * q + 1][3]);
    }
  }
};

template <class T, int kN>
__global__ void __launch_bounds__(kWgThreads, W8A16WgCfg<kN>::kBlocksPerSm)
    gemm_w8a16_wgmma_kernel(const __grid_constant__ WgmmaParams p) {
#if defined(LLMACCEL_WGMMA_BODY)
  using Cfg = W8A16WgCfg<kN>;
  LLMACCEL_DYNAMIC_SMEM(smem_raw);
  const WgmmaSmem<Cfg> sm(smem_raw);
  LLMACCEL_TRACE(const TraceEntry trace_in = trace_entry());
  if (wgmma_block_start<Cfg>(p, sm)) return wgmma_cluster_sync(p);  // producer
  wgmma_consume<Cfg, T, true, float, W8A16WgFill<T, Cfg>>(p, sm);
  LLMACCEL_TRACE(trace_exit(trace_in, Cfg::kStages, Cfg::kG));
#elif defined(__CUDA_ARCH__)
  __trap();  // not an sm_90a build: the launchers never start it (wgmma_built_for_device)
#endif
}

}  // namespace llmaccel::cuda
