// Host side of gemm_w4a16's sm_90a wgmma path (kernels: gemm_w4a16_wgmma.cuh).
#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_w4a16_wgmma.cuh"
#include "gemm/gemm_w8a16_wgmma.cuh"  // its plan's workspace (wgmma_plan_info)
#include "gemm/gemm_w8a8_wgmma.cuh"   // its plan's shape (wgmma_plan_info)
#include "gemm/gemm_wgmma_launch.cuh"

namespace llmaccel::cuda {
namespace {

template <class T, bool ZP> void launch_w4a16_wgmma(const WgmmaParams& p, cudaStream_t stream) {
  wgmma_with_rows<kW4WgMinRows>(p, [&](auto n) {
    constexpr int kN = decltype(n)::value;
    wgmma_launch<W4WgCfg<kN>, T, false, float, gemm_w4a16_wgmma_kernel<T, ZP, kN>>(p, stream);
  });
}

}  // namespace

bool w4a16_wgmma_available() {
  static signed char cache[64] = {};
  return wgmma_built_for_device(gemm_w4a16_wgmma_kernel<__nv_bfloat16, false, 256>, cache);
}

void x_tiles_16bit(const void* x, int64_t m, int64_t k, int64_t ldx, int8_t* xt, int64_t kt_count,
                   void* stream) {
  const char* op = "x_tiles_16bit";
  require(m >= 1 && k >= 1 && kt_count >= 1, op, "sizes must be positive");
  require(k % 8 == 0 && ldx % 8 == 0 && ldx >= k, op, "k and ldx must be multiples of 8, ldx >= k");
  require(kt_count * 64 >= k, op, "kt_count blocks of 64 columns must cover k");
  require(x && xt && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
              reinterpret_cast<uintptr_t>(xt) % 16 == 0,
          op, "x and the image must be 16-byte aligned");
  const int64_t threads = m * kt_count * 2;
  require((threads + 255) / 256 < (int64_t(1) << 31), op, "too large for one grid");
  x_tiles_16bit_kernel<<<unsigned((threads + 255) / 256), 256, 0,
                         static_cast<cudaStream_t>(stream)>>>(
      static_cast<const uint16_t*>(x), m, k, ldx, xt, kt_count);
  check_launch(op);
}

int64_t w4a16_wgmma_partial_bytes(int64_t m, int64_t n_tiles, int64_t nk) {
  return wgmma_partial_bytes(
      wgmma_plan(m, n_tiles, nk, kW4WgChunks, kW4WgMinRows, W4WgCfg<16>::kWStage));
}

WgmmaPlanInfo wgmma_plan_info(bool x16, int64_t m, int64_t n_tiles, int64_t nk) {
  // 16-bit x: gemm_w4a16's plan. Under LLMACCEL_WGMMA_SMALL_BPS=2 the workspace must also hold
  // gemm_w8a16's (its int8 stages can keep it at one block per SM where int4 takes two); at one
  // block per SM the two plans are the same, so a call plans once.
  const WgmmaParams p =
      x16 ? wgmma_plan(m, n_tiles, nk, kW4WgChunks, kW4WgMinRows, W4WgCfg<16>::kWStage)
          : wgmma_plan(m, n_tiles, nk, kW8WgChunks, kW8WgMinRows, W8WgCfg<64>::kWStage);
  int64_t partial = wgmma_partial_bytes(p);
  if (x16 && LLMACCEL_WGMMA_SMALL_BPS != 1)
    partial = std::max(partial, wgmma_partial_bytes(wgmma_plan(m, n_tiles, nk, 2, kW8A16WgMinRows,
                                                               kW8A16WgWStage)));
  return {p.x_rows,  p.splits, p.cluster, partial,
          p.w_warps, p.x_warp, 1 << p.x_piece_shift, p.x_tma};
}

void gemm_w4a16_wgmma(const int8_t* xt, int x_dtype, int64_t m, int64_t kt_count,
                      const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales,
                      const uint8_t* zeros, int64_t n_groups, int64_t group, int64_t n,
                      const float* bias, void* out, int64_t ldo, void* partial,
                      int64_t partial_bytes, bool after_image, void* stream) {
  const char* op = "gemm_w4a16 (wgmma)";
  wgmma_check_common(op, m, n, n_tiles, nk, ldo, xt, w, out);
  require(kt_count == (nk + 1) / 2, op, "kt_count must be ceil(nk / 2): x tiles of 64 columns");
  require(scales != nullptr, op, "null scales");
  require(group >= 32 && group % 32 == 0 && group <= nk * 32 && n_groups >= 1 &&
              n_groups * group >= nk * 32 &&
              (n_groups - 1) * group < nk * 32,
          op, "group size and group count do not match the packed K");
  require(nk < (1 << 16), op, "K must be under 2^21 columns (the group index's exactness)");
  require(x_dtype == kF16 || x_dtype == kBF16, op, "x must be float16 or bfloat16");
  require(w4a16_wgmma_available(), op,
          "needs a compute capability 9.0 device and a build with sm_90a code");
  WgmmaParams p = wgmma_plan(m, n_tiles, nk, kW4WgChunks, kW4WgMinRows, W4WgCfg<16>::kWStage);
  wgmma_bind(op, p, out, n, ldo, partial, partial_bytes);
  wgmma_bind_operands(p, xt, after_image, w, scales, bias);
  p.zeros = zeros;
  wgmma_set_groups(p, int(group), int(n_groups));
  auto s = static_cast<cudaStream_t>(stream);
  if (x_dtype == kF16) {
    if (zeros) launch_w4a16_wgmma<__half, true>(p, s);
    else launch_w4a16_wgmma<__half, false>(p, s);
  } else {
    if (zeros) launch_w4a16_wgmma<__nv_bfloat16, true>(p, s);
    else launch_w4a16_wgmma<__nv_bfloat16, false>(p, s);
  }
  check_launch(op);
}

}  // namespace llmaccel::cuda
