// The CUDA kernel of quant_act_int8 (host side: quant_act_int8.cu): one thread block per (row,
// column block), bit-exact with the CPU kernel and reference/quant.py (true fp32 divisions,
// round-half-even, the same NaN/inf and tiny-block rules; see quant_act_int8.h). In a header so
// that the SIMT emulator's tests run it too (tests/ops/test_wgmma_emu.py).
#pragma once
#include <cmath>
#include <cstring>

#include "cuda/cuda_common.cuh"
#include "gemm/gemm_wgmma_xtiles.h"
#include "quant/quant_act_int8.h"

namespace llmaccel::cuda {

template <class T> __device__ __forceinline__ float to_f(T v) { return float(v); }
template <> __device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

constexpr int kQuantThreads = 256;

// Eight consecutive elements from a 16-byte-aligned address, as floats.
__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
template <class T> __device__ __forceinline__ void load8(const T* p, float (&v)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  T h[8];
  memcpy(h, &raw, 16);
#pragma unroll
  for (int e = 0; e < 8; ++e) v[e] = to_f(h[e]);
}

// kVec: eight columns per thread and step, 16-byte loads and 8- (row-major) or 4-byte (image)
// stores, where k, the block, the strides and the pointers allow it (quant_vec_ok); the same
// arithmetic per element as the scalar path, so the same bits. Scalar loads and byte stores
// took ~50 µs for a 4096 × 4096 bf16 x on an H100 by instruction count (estimate), ~3× its
// 48 MB of traffic.
inline bool quant_vec_ok(const void* x, int x_dtype_bytes, int64_t k, int64_t ldx, int64_t block,
                         const void* q, int64_t ldq, bool tiles) {
  const auto al = [](const void* p, int n) { return reinterpret_cast<uintptr_t>(p) % n == 0; };
  return k % 8 == 0 && ldx % 8 == 0 && block % 8 == 0 && al(x, 16) && x_dtype_bytes > 0 &&
         (tiles || (ldq % 8 == 0 && al(q, 8)));
}

// kTiles: q is gemm_w8a8_wgmma's x image (ldq = its kt_count) and the grid also covers the
// zero rows from m up to the next multiple of 256, which write zeros and no scale.
template <class T, bool kTiles, bool kVec>
__global__ void __launch_bounds__(kQuantThreads)
    quant_act_int8_kernel(const T* x, int64_t m, int64_t k, int64_t ldx, int64_t block,
                          int64_t n_blocks, int8_t* q, int64_t ldq, float* scale, int32_t* qsum) {
  if constexpr (kTiles) griddep_launch_dependents();  // the wgmma GEMM waits for x itself
  const int64_t row = blockIdx.x, b = blockIdx.y, c0 = b * block;
  const bool pad_row = row >= m;
  const T* xr = x + (pad_row ? 0 : row) * ldx;
  __shared__ float s_max[kQuantThreads / 32];
  __shared__ int s_sum[kQuantThreads / 32];

  float amax = 0.f;
  bool finite = true;
  if constexpr (kVec) {
    for (int64_t c = c0 + 8 * threadIdx.x; !pad_row && c < c0 + block && c < k;
         c += 8 * kQuantThreads) {
      float v[8];
      load8(xr + c, v);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        finite &= isfinite(v[e]);
        amax = fmaxf(amax, fabsf(v[e]));
      }
    }
  } else {
    for (int64_t c = c0 + threadIdx.x; !pad_row && c < c0 + block && c < k; c += kQuantThreads) {
      const float v = to_f(xr[c]);
      finite &= isfinite(v);
      amax = fmaxf(amax, fabsf(v));
    }
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
  const auto quant = [&](float v) {
    return max(-127, min(127, __float2int_rn(__fmul_rn(v, inv))));
  };
  int sum = 0;
  if constexpr (kVec) {
    for (int64_t c = c0 + 8 * threadIdx.x; c < c0 + block; c += 8 * kQuantThreads) {
      float v[8] = {};
      const bool live = usable && c < k;  // k % 8 == 0: all eight or none
      if (live) load8(xr + c, v);
      uint32_t word[2] = {0, 0};
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int qv = live ? quant(v[e]) : 0;
        word[e / 4] |= uint32_t(uint8_t(int8_t(qv))) << (8 * (e % 4));
        sum += qv;
      }
      if constexpr (kTiles) {  // columns c .. c+3 and c+4 .. c+7: 4 bytes each in the image
        *reinterpret_cast<uint32_t*>(q + w8a8_x_tile_offset(row, c, ldq)) = word[0];
        *reinterpret_cast<uint32_t*>(q + w8a8_x_tile_offset(row, c + 4, ldq)) = word[1];
      } else {
        *reinterpret_cast<uint2*>(q + row * ldq + c) = make_uint2(word[0], word[1]);
      }
    }
  } else {
    for (int64_t c = c0 + threadIdx.x; c < c0 + block; c += kQuantThreads) {
      const int v = usable && c < k ? quant(to_f(xr[c])) : 0;
      q[kTiles ? w8a8_x_tile_offset(row, c, ldq) : row * ldq + c] = int8_t(v);
      sum += v;
    }
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
