// quant_act_int8 on CUDA: one thread block per (row, column block), bit-exact with the CPU kernel and
// reference/quant.py (true fp32 divisions, round-half-even, the same NaN/inf and tiny-block
// rules; see quant_act_int8.h).
#include <cmath>

#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_wgmma_xtiles.h"
#include "quant/quant_act_int8.h"

namespace llmaccel::cuda {
namespace {

template <class T> __device__ __forceinline__ float to_f(T v) { return float(v); }
template <> __device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

constexpr int kThreads = 256;

// kTiles: q is gemm_w8a8_wgmma's x image (ldq = its kt_count) and the grid also covers the
// zero rows from m up to the next multiple of 256, which write zeros and no scale.
template <class T, bool kTiles>
__global__ void __launch_bounds__(kThreads)
    quant_act_int8_kernel(const T* x, int64_t m, int64_t k, int64_t ldx, int64_t block,
                          int64_t n_blocks, int8_t* q, int64_t ldq, float* scale, int32_t* qsum) {
  const int64_t row = blockIdx.x, b = blockIdx.y, c0 = b * block;
  const bool pad_row = row >= m;
  const T* xr = x + (pad_row ? 0 : row) * ldx;
  __shared__ float s_max[kThreads / 32];
  __shared__ int s_sum[kThreads / 32];

  float amax = 0.f;
  bool finite = true;
  for (int64_t c = c0 + threadIdx.x; !pad_row && c < c0 + block && c < k; c += kThreads) {
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
  for (int w = 1; w < kThreads / 32; ++w) amax = fmaxf(amax, s_max[w]);

  const bool usable = finite && amax >= llmaccel::kQuantActMinAbsMax;
  const float inv = usable ? __fdiv_rn(127.f, amax) : 0.f;
  int sum = 0;
  for (int64_t c = c0 + threadIdx.x; c < c0 + block; c += kThreads) {
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
    for (int w = 0; w < kThreads / 32; ++w) total += s_sum[w];
    scale[row * n_blocks + b] = !finite ? __int_as_float(0x7fc00000) : usable ? __fdiv_rn(amax, 127.f) : 0.f;
    if (qsum) qsum[row * n_blocks + b] = total;
  }
}

template <bool kTiles>
void launch_quant(const char* op, const void* x, int x_dtype, int64_t m, int64_t grid_rows,
                  int64_t k, int64_t ldx, int64_t block, int64_t n_blocks, int8_t* q,
                  int64_t ldq, float* scale, int32_t* qsum, void* stream) {
  const dim3 grid{unsigned(grid_rows), unsigned(n_blocks)};
  auto s = static_cast<cudaStream_t>(stream);
  switch (x_dtype) {
    case kF16:
      quant_act_int8_kernel<__half, kTiles><<<grid, kThreads, 0, s>>>(
          static_cast<const __half*>(x), m, k, ldx, block, n_blocks, q, ldq, scale, qsum);
      break;
    case kBF16:
      quant_act_int8_kernel<__nv_bfloat16, kTiles><<<grid, kThreads, 0, s>>>(
          static_cast<const __nv_bfloat16*>(x), m, k, ldx, block, n_blocks, q, ldq, scale, qsum);
      break;
    case kF32:
      quant_act_int8_kernel<float, kTiles><<<grid, kThreads, 0, s>>>(
          static_cast<const float*>(x), m, k, ldx, block, n_blocks, q, ldq, scale, qsum);
      break;
    default: require(false, op, "x must be float16, bfloat16 or float32");
  }
  check_launch(op);
}

}  // namespace

void quant_act_int8(const void* x, int x_dtype, int64_t m, int64_t k, int64_t ldx, int64_t block,
                    int64_t n_blocks, int8_t* q, int64_t ldq, float* scale, int32_t* qsum,
                    void* stream) {
  const char* op = "quant_act_int8";
  require(m >= 1 && k >= 1 && block >= 1 && n_blocks >= 1, op, "sizes must be positive");
  require(n_blocks * block >= k && (n_blocks - 1) * block < k, op, "blocks do not cover k");
  require(ldx >= k && ldq >= n_blocks * block, op, "row strides too small");
  require(n_blocks <= 65535, op, "at most 65535 blocks per row");
  require(m <= (int64_t(1) << 31) - 1, op, "too many rows");
  require(x && q && scale, op, "null pointer");
  launch_quant<false>(op, x, x_dtype, m, m, k, ldx, block, n_blocks, q, ldq, scale, qsum, stream);
}

void quant_act_int8_tiles(const void* x, int x_dtype, int64_t m, int64_t k, int64_t ldx,
                          int8_t* q, int64_t kt_count, float* scale, void* stream) {
  const char* op = "quant_act_int8_tiles";
  require(m >= 1 && k >= 1 && kt_count >= 1, op, "sizes must be positive");
  require(kt_count * 128 >= k && (kt_count - 1) * 128 < k, op, "kt_count must be ceil(k / 128)");
  require(ldx >= k, op, "row stride too small");
  require(m <= (int64_t(1) << 31) - kWgXRows, op, "too many rows");
  require(x && q && scale, op, "null pointer");
  const int64_t rows = (m + kWgXRows - 1) / kWgXRows * kWgXRows;
  launch_quant<true>(op, x, x_dtype, m, rows, k, ldx, kt_count * 128, 1, q, kt_count, scale,
                     nullptr, stream);
}

}  // namespace llmaccel::cuda
