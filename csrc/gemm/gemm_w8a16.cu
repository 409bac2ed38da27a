// gemm_w8a16 on CUDA: int8 per-channel weights × fp16/bf16 activations (see gemm_cuda.h).
#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_swapab.cuh"

namespace llmaccel::cuda {

void gemm_w8a16(const void* x, int x_dtype, int64_t m, int64_t k, int64_t ldx, const uint32_t* w,
                int64_t n_tiles, int64_t nk, const float* scales, int64_t n, const float* bias,
                void* out, int64_t ldo, void* stream) {
  const char* op = "gemm_w8a16";
  check_gemm_sizes(op, m, k, ldx, n, n_tiles, nk, ldo, x, w, out);
  require(scales != nullptr, op, "null scales");
  require(x_dtype == kF16 || x_dtype == kBF16, op, "x must be float16 or bfloat16");
  SwapAbParams p{x, nullptr, w, scales, nullptr, bias, out, ldx, ldo, int(m), int(n), int(k),
                 int(n_tiles), int(nk), 32, 1};
  auto s = static_cast<cudaStream_t>(stream);
  if (x_dtype == kF16) launch_swapab<Wo::W8A16, __half, false>(p, s);
  else launch_swapab<Wo::W8A16, __nv_bfloat16, false>(p, s);
  check_launch(op);
}

}  // namespace llmaccel::cuda
