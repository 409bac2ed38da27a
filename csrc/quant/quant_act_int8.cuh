// The CUDA kernel of quant_act_int8 (host side: quant_act_int8.cu): one thread block per (row,
// column block), bit-exact with the CPU kernel and reference/quant.py (true fp32 divisions,
// round-half-even, the same NaN/inf and tiny-block rules; see quant_act_int8.h). In a header so
// that the SIMT emulator's tests run it too (tests/ops/test_wgmma_emu.py).
#pragma once
#include <cmath>

#include "cuda/cuda_common.cuh"
#include "gemm/gemm_wgmma_xtiles.h"
#include "quant/quant_act_int8.h"

namespace llmaccel::cuda {

template <class T> __device__ __forceinline__ float to_f(T v) { return float(v); }
template <> __device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

constexpr int kQuantThreads = 256;

// kTiles: q is gemm_w8a8_wgmma's x image (ldq = its kt_count) and the grid also covers the
// zero rows from m up to the next multiple of 256, which write zeros and no scale.
template <class T, bool kTiles>
__global__ void __launch_bounds__(kQuantThreads)
    quant_act_int8_kernel(const T* x, int64_t m, int64_t k, int64_t ldx, int64_t block,
                          int64_t n_blocks, int8_t* q, int64_t ldq, float* scale, int32_t* qsum) {
  const int64_t row = blockIdx.x, b = blockIdx.y, c0 = b * block;
  const bool pad_row = row >= m;
  const T* xr = x + (pad_row ? 0 : row) * ldx;
  __shared__ float s_max[kQuantThreads / 32];
  __shared__ int s_sum[kQuantThreads / 32];

  float amax = 0.f;
  bool finite = true;
  for (int64_t c = c0 + threadIdx.x; !pad_row && c < c0 + block && c < k; c += kQuantThreads) {
    const float v = to_f(xr[c]);
    finite &= isfinite(v);
    amax = fmaxf(amax, fabsf(v));
  }
  finite = __syncthreads_and(finite);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if ((threadIdx.x & 31) == 0) s_max[threadIdx.x >> 5] = amax;
  __syncthreads();
  amax = s_max[0];
#pragma unroll
  for (int w = 1; w < kQuantThreads / 32; ++w) amax = fmaxf(amax, s_max[w]);

  const bool usable = finite && amax >= llmaccel::kQuantActMinAbsMax;
  const float inv = usable ? __fdiv_rn(127.f, amax) : 0.f;
  int sum = 0;
  for (int64_t c = c0 + threadIdx.x; c < c0 + block; c += kQuantThreads) {
    int v = 0;
    if (usable && c < k) v = max(-127, min(127, __float2int_rn(__fmul_rn(to_f(xr[c]), inv))));
    q[kTiles ? w8a8_x_tile_offset(row, c, ldq) : row * ldq + c] = int8_t(v);
    sum += v;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if ((threadIdx.x & 31) == 0) s_sum[threadIdx.x >> 5] = sum;
  __syncthreads();
  if (threadIdx.x == 0 && !pad_row) {
    int total = 0;
#pragma unroll
    for (int w = 0; w < kQuantThreads / 32; ++w) total += s_sum[w];
    scale[row * n_blocks + b] = !finite ? __int_as_float(0x7fc00000) : usable ? __fdiv_rn(amax, 127.f) : 0.f;
    if (qsum) qsum[row * n_blocks + b] = total;
  }
}

}  // namespace llmaccel::cuda
