// dequant_w4 / dequant_w8 on CUDA: device layouts → dense (n, k) weights. Used by the large-M
// path (dequantize, then cuBLAS through torch) and for export/debugging. One thread per row
// and 8 consecutive columns, so the (dominant) output writes are contiguous across a warp.
#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"

namespace llmaccel::cuda {
namespace {

constexpr int kThreads = 256;

template <class O> __device__ __forceinline__ O from_f(float v);
template <> __device__ __forceinline__ float from_f(float v) { return v; }
template <> __device__ __forceinline__ __half from_f(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f(float v) { return __float2bfloat16_rn(v); }

template <class O>
__device__ __forceinline__ void store8(O* dst, const float v[8], int64_t valid, bool aligned) {
  if (valid >= 8 && aligned) {
    if constexpr (sizeof(O) == 4) {
      reinterpret_cast<float4*>(dst)[0] = make_float4(v[0], v[1], v[2], v[3]);
      reinterpret_cast<float4*>(dst)[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
      uint4 u;
      uint32_t* w = &u.x;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        O pair[2] = {from_f<O>(v[2 * i]), from_f<O>(v[2 * i + 1])};
        w[i] = *reinterpret_cast<uint32_t*>(pair);
      }
      *reinterpret_cast<uint4*>(dst) = u;
    }
    return;
  }
  for (int i = 0; i < 8 && i < valid; ++i) dst[i] = from_f<O>(v[i]);
}

// Nibble of column kk (0..3) of row half h in an int4_cuda_mma16x32 word (formats/cuda.py).
__device__ __forceinline__ int nibble_shift(int h, int kk) {
  return 4 * (h + ((kk & 1) ? 4 : 0) + ((kk & 2) ? 2 : 0));
}

template <class O>
__global__ void __launch_bounds__(kThreads)
    dequant_w4_kernel(const uint32_t* w, int64_t nk, const float* scales, const uint8_t* zeros,
                      int64_t n_groups, int64_t group, int64_t n, int64_t k, O* out, int64_t ldo) {
  const int64_t per_row = (k + 7) / 8;
  const int64_t id = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (id >= n * per_row) return;
  const int64_t row = id / per_row, q = id % per_row, col = q * 8;
  const int64_t t = row / 16, c = q / 4;
  const int rr = int(row % 16), h = rr / 8, j = int(q % 4), lane = 4 * (rr % 8) + j;
  const uint2 words = *reinterpret_cast<const uint2*>(w + ((t * nk + c) * 32 + lane) * 2);
  const int64_t mi = (t * n_groups + min(col / group, n_groups - 1)) * 16 + rr;
  const float s = scales[mi], z = zeros ? float(zeros[mi]) : 8.f;
  float v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const uint32_t word = i < 4 ? words.x : words.y;
    v[i] = (float((word >> nibble_shift(h, i & 3)) & 15u) - z) * s;
  }
  O* dst = out + row * ldo + col;
  store8(dst, v, k - col, reinterpret_cast<uintptr_t>(dst) % 16 == 0);
}

template <class O>
__global__ void __launch_bounds__(kThreads)
    dequant_w8_kernel(const uint32_t* w, int64_t nk, const float* scales, int64_t n, int64_t k,
                      O* out, int64_t ldo) {
  const int64_t per_row = (k + 7) / 8;
  const int64_t id = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (id >= n * per_row) return;
  const int64_t row = id / per_row, q = id % per_row, col = q * 8;
  const int64_t t = row / 16, c = q / 4;
  const int rr = int(row % 16), h = rr / 8, j = int(q % 4), lane = 4 * (rr % 8) + j;
  const uint32_t* lw = w + ((t * nk + c) * 32 + lane) * 4;
  const uint32_t lo = lw[h], hi = lw[2 + h];  // columns 8q+0..3, 8q+4..7
  const float s = scales[row];
  float v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const uint32_t word = i < 4 ? lo : hi;
    v[i] = float(int8_t((word >> (8 * (i & 3))) & 0xffu)) * s;
  }
  O* dst = out + row * ldo + col;
  store8(dst, v, k - col, reinterpret_cast<uintptr_t>(dst) % 16 == 0);
}

template <class Launch> void by_out_dtype(int out_dtype, const char* op, Launch&& launch) {
  switch (out_dtype) {
    case kF32: launch(static_cast<float*>(nullptr)); break;
    case kF16: launch(static_cast<__half*>(nullptr)); break;
    case kBF16: launch(static_cast<__nv_bfloat16*>(nullptr)); break;
    default: require(false, op, "out must be float32, float16 or bfloat16");
  }
}

void check_dequant(const char* op, int64_t n_tiles, int64_t nk, int64_t n, int64_t k,
                   int64_t ldo, const void* w, const void* out) {
  require(n >= 1 && k >= 1 && n <= n_tiles * 16 && n > n_tiles * 16 - 16, op,
          "n does not match the weight's tiles");
  require(k <= nk * 32, op, "k exceeds the packed columns");
  require(ldo >= k, op, "ldo must be >= k");
  require(w && out, op, "null pointer");
}

}  // namespace

void dequant_w4(const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales,
                const uint8_t* zeros, int64_t n_groups, int64_t group, int64_t n, int64_t k,
                void* out, int out_dtype, int64_t ldo, void* stream) {
  const char* op = "dequant_w4";
  check_dequant(op, n_tiles, nk, n, k, ldo, w, out);
  require(scales && group >= 32 && group % 32 == 0 && n_groups >= 1, op, "bad groups");
  const int64_t total = n * ((k + 7) / 8);
  const unsigned blocks = unsigned((total + kThreads - 1) / kThreads);
  by_out_dtype(out_dtype, op, [&](auto* tag) {
    using O = std::remove_pointer_t<decltype(tag)>;
    dequant_w4_kernel<O><<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        w, nk, scales, zeros, n_groups, group, n, k, static_cast<O*>(out), ldo);
  });
  check_launch(op);
}

void dequant_w8(const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales, int64_t n,
                int64_t k, void* out, int out_dtype, int64_t ldo, void* stream) {
  const char* op = "dequant_w8";
  check_dequant(op, n_tiles, nk, n, k, ldo, w, out);
  require(scales != nullptr, op, "null scales");
  const int64_t total = n * ((k + 7) / 8);
  const unsigned blocks = unsigned((total + kThreads - 1) / kThreads);
  by_out_dtype(out_dtype, op, [&](auto* tag) {
    using O = std::remove_pointer_t<decltype(tag)>;
    dequant_w8_kernel<O><<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        w, nk, scales, n, k, static_cast<O*>(out), ldo);
  });
  check_launch(op);
}

}  // namespace llmaccel::cuda
