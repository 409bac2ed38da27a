// int4 → 16-bit MMA fragments by bit tricks, shared by the swapped kernel (gemm_swapab.cuh), the
// tiled kernel (gemm_tiled_w4.cuh) and the wgmma kernel (gemm_w4a16_wgmma.cuh): plain C++ on
// the Act16 types, so the SIMT emulator (csrc/emu/simt_emu.h) runs it too.
#pragma once
#include "cuda/cuda_common.cuh"

namespace llmaccel::cuda {

// int4 word (8 nibbles, formats/cuda.py order) → the four A registers of one m16n8k16 step:
// (q − zero) · scale in T, rows r (regs 0, 2) and r + 8 (regs 1, 3).
template <class T>
__device__ __forceinline__ void dequant_w4_step(uint32_t word, uint32_t zp_lo, uint32_t zp_hi,
                                                uint32_t s_lo, uint32_t s_hi, uint32_t a[4]) {
  using A = Act16<T>;
  using T2 = typename A::T2;
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const uint32_t v = and_or(word >> (4 * p), 0x000F000Fu, A::kMagic);  // one LOP3
    const uint32_t zp = (p & 1) ? zp_hi : zp_lo, s = (p & 1) ? s_hi : s_lo;
    a[p] = as_u32(A::mul(A::sub(as_t2<T2>(v), as_t2<T2>(zp)), as_t2<T2>(s)));
  }
}

}  // namespace llmaccel::cuda
