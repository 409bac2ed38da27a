// Host side of gemm_w8a16's sm_90a wgmma path (kernel: gemm_w8a16_wgmma.cuh). x comes as
// x_tiles_16bit's image (gemm_w4a16_wgmma.cu), and the plan is gemm_w4a16's (64-column stages,
// x blocks from 16 rows), so the partial-sum workspace is w4a16_wgmma_partial_bytes'.
#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_w8a16_wgmma.cuh"
#include "gemm/gemm_wgmma_launch.cuh"

namespace llmaccel::cuda {
namespace {

template <class T> void launch_w8a16_wgmma(const WgmmaParams& p, cudaStream_t stream) {
  wgmma_with_rows<kW8A16WgMinRows>(p, [&](auto n) {
    constexpr int kN = decltype(n)::value;
    wgmma_launch<W8A16WgCfg<kN>, T, true, float, gemm_w8a16_wgmma_kernel<T, kN>>(p, stream);
  });
}

}  // namespace

bool w8a16_wgmma_available() {
  static signed char cache[64] = {};
  return wgmma_built_for_device(gemm_w8a16_wgmma_kernel<__nv_bfloat16, 256>, cache);
}

void gemm_w8a16_wgmma(const int8_t* xt, int x_dtype, int64_t m, int64_t kt_count,
                      const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales,
                      int64_t n, const float* bias, void* out, int64_t ldo, void* partial,
                      int64_t partial_bytes, bool after_image, void* stream) {
  const char* op = "gemm_w8a16 (wgmma)";
  wgmma_check_common(op, m, n, n_tiles, nk, ldo, xt, w, out);
  require(kt_count == (nk + 1) / 2, op, "kt_count must be ceil(nk / 2): x tiles of 64 columns");
  require(scales != nullptr, op, "null scales");
  require(x_dtype == kF16 || x_dtype == kBF16, op, "x must be float16 or bfloat16");
  require(w8a16_wgmma_available(), op,
          "needs a compute capability 9.0 device and a build with sm_90a code");
  WgmmaParams p = wgmma_plan(m, n_tiles, nk, 2, kW8A16WgMinRows, kW8A16WgWStage);
  wgmma_bind(op, p, out, n, ldo, partial, partial_bytes);
  wgmma_bind_operands(p, xt, after_image, w, scales, bias);
  auto s = static_cast<cudaStream_t>(stream);
  if (x_dtype == kF16) launch_w8a16_wgmma<__half>(p, s);
  else launch_w8a16_wgmma<__nv_bfloat16>(p, s);
  check_launch(op);
}

}  // namespace llmaccel::cuda
