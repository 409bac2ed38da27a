// quant_act_int8 on CUDA, host side (the kernel: quant_act_int8.cuh).
#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_wgmma_xtiles.h"
#include "quant/quant_act_int8.cuh"

namespace llmaccel::cuda {
namespace {

template <bool kTiles, class T>
void launch_quant_t(const void* x, int64_t m, int64_t grid_rows, int64_t k, int64_t ldx,
                    int64_t block, int64_t n_blocks, int8_t* q, int64_t ldq, float* scale,
                    int32_t* qsum, cudaStream_t s) {
  const dim3 grid{unsigned(grid_rows), unsigned(n_blocks)};
  const auto* xt = static_cast<const T*>(x);
  if (quant_vec_ok(x, int(sizeof(T)), k, ldx, block, q, ldq, kTiles))
    quant_act_int8_kernel<T, kTiles, true><<<grid, kQuantThreads, 0, s>>>(
        xt, m, k, ldx, block, n_blocks, q, ldq, scale, qsum);
  else
    quant_act_int8_kernel<T, kTiles, false><<<grid, kQuantThreads, 0, s>>>(
        xt, m, k, ldx, block, n_blocks, q, ldq, scale, qsum);
}

template <bool kTiles>
void launch_quant(const char* op, const void* x, int x_dtype, int64_t m, int64_t grid_rows,
                  int64_t k, int64_t ldx, int64_t block, int64_t n_blocks, int8_t* q,
                  int64_t ldq, float* scale, int32_t* qsum, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (x_dtype) {
    case kF16:
      launch_quant_t<kTiles, __half>(x, m, grid_rows, k, ldx, block, n_blocks, q, ldq, scale,
                                     qsum, s);
      break;
    case kBF16:
      launch_quant_t<kTiles, __nv_bfloat16>(x, m, grid_rows, k, ldx, block, n_blocks, q, ldq,
                                            scale, qsum, s);
      break;
    case kF32:
      launch_quant_t<kTiles, float>(x, m, grid_rows, k, ldx, block, n_blocks, q, ldq, scale,
                                    qsum, s);
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
  // the image's 16-byte pieces are written with 4-byte stores, and the GEMM copies it in bulk
  require(reinterpret_cast<uintptr_t>(q) % 16 == 0, op, "the image must be 16-byte aligned");
  const int64_t rows = (m + kWgXRows - 1) / kWgXRows * kWgXRows;
  launch_quant<true>(op, x, x_dtype, m, rows, k, ldx, kt_count * 128, 1, q, kt_count, scale,
                     nullptr, stream);
}

}  // namespace llmaccel::cuda
