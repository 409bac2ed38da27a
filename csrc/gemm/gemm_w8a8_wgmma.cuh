// gemm_w8a8 for large M on sm_90a: the wgmma skeleton of gemm_wgmma.cuh with int8 weights and
// int8 x (quantized per token by quant_act_int8_tiles straight into x's image), exact int32
// accumulators, both scales in the epilogue.
//
// gemm_w8a8's path above M = 32 on compute capability 9.0 (ops/cuda.py; LLMACCEL_W8A8_WGMMA=0
// turns it off). The mma.sync tiled kernel in gemm_w8a8.cu reaches ~350 TOP/s on an H100
// (0.40-0.45× bf16 cuBLAS at M ≥ 2048); this one 1.07-1.47× at M ≥ 128 (H100, 2026-11-23,
// ~1.1 POP/s at M = 4096). The issue asks for 1.6×: ~1300 TOP/s of the int8 peak's ~1979.
//
// A stage is 128 columns: per weight tile 4 chunks of 512 bytes (2 KB contiguous in
// int8_cuda_mma16x32), 16 KB for the block's 8 tiles, and x's 32 KB; each consumer warp reads its
// four A fragments with one 16-byte shared-memory load each and issues four m64n256k32 (the
// skeleton's wgmma_mainloop: the next stage's loads while these run).
#pragma once
#include "gemm/gemm_wgmma_consume.cuh"
#include "gemm/gemm_wgmma_produce.cuh"

namespace llmaccel::cuda {

constexpr int kW8WgChunks = 4, kW8WgChunkBytes = 512;  // 16 KB of weights per stage
constexpr int kW8WgMinRows = 64;  // x rows per block from 64 up: the int8 wgmma forms it has
// kRows: the epilogue's staging passes (WgmmaCfg::kStagingRows); 256-row blocks get a 4-stage
// ring with passes of 64 rows (LLMACCEL_W8A8_DEEP=1, wgmma_w8a8_deep), 3 stages without
template <int kN, int kRows = kN>
using W8WgCfg = WgmmaCfg<kW8WgChunks, kW8WgChunkBytes, kN, false, kRows>;
constexpr int kW8WgDeepRows = 64;
static_assert(W8WgCfg<256>::kStages == 3 && W8WgCfg<256, kW8WgDeepRows>::kStages == 4,
              "the deep variant's point: one more stage at 256 rows");

// A consumer warp's fragments: one 16-byte shared-memory load per chunk.
template <class Cfg> struct W8A8WgFill {
  static constexpr int kSteps = kW8WgChunks;
  const uint8_t* wfrag;
  __device__ W8A8WgFill(const WgmmaParams&, const WgmmaSmem<Cfg>& sm, const WgmmaWork&, int)
      : wfrag(sm.ws + Cfg::w_tile(threadIdx.x >> 5) + (threadIdx.x & 31) * 16) {}
  __device__ __forceinline__ void operator()(unsigned s, int, uint32_t (&a)[kSteps][4]) const {
#pragma unroll
    for (int j = 0; j < kW8WgChunks; ++j) {
      const uint4 v = *reinterpret_cast<const uint4*>(wfrag + Cfg::w_stage(s) + j * 512);
      a[j][0] = v.x; a[j][1] = v.y; a[j][2] = v.z; a[j][3] = v.w;
    }
  }
};

template <class T, int kN, int kRows = kN>
__global__ void __launch_bounds__(kWgThreads, 1)
    gemm_w8a8_wgmma_kernel(const __grid_constant__ WgmmaParams p) {
#if defined(LLMACCEL_WGMMA_BODY)
  using Cfg = W8WgCfg<kN, kRows>;
  LLMACCEL_DYNAMIC_SMEM(smem_raw);
  const WgmmaSmem<Cfg> sm(smem_raw);
  LLMACCEL_TRACE(const TraceEntry trace_in = trace_entry());
  if (wgmma_block_start<Cfg>(p, sm)) return wgmma_cluster_sync(p);  // producer
  wgmma_consume<Cfg, T, true, int, W8A8WgFill<Cfg>>(p, sm);
  LLMACCEL_TRACE(trace_exit(trace_in, Cfg::kStages, Cfg::kG));
#elif defined(__CUDA_ARCH__)
  __trap();  // not an sm_90a build: the launchers never start it (wgmma_built_for_device)
#endif
}

}  // namespace llmaccel::cuda
