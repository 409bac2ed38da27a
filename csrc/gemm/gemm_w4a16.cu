// gemm_w4a16 on CUDA: int4 group-wise weights × fp16/bf16 activations (see gemm_cuda.h).
#include <type_traits>

#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_decode.cuh"
#include "gemm/gemm_decode_kslice_launch.cuh"
#include "gemm/gemm_swapab.cuh"
#include "gemm/gemm_tiled_w4.cuh"

namespace llmaccel::cuda {

namespace {

template <class T, bool ZP>
void launch_tiled_w4(const char* op, const SwapAbParams& p, void* partials,
                     int64_t partial_bytes, int sms, cudaStream_t stream) {
  const int splits = tiled_splits(p.m, p.n_tiles, p.nk, sms);
  const int cps = (p.nk + splits - 1) / splits;
  require(partial_bytes >= tiled_partial_bytes(p.m, p.n_tiles, splits), op,
          "the workspace is smaller than this call's split partial sums need");
  float* partial = splits > 1 ? static_cast<float*>(partials) : nullptr;
  const dim3 grid((p.n_tiles + kTiledWarps - 1) / kTiledWarps,
                  (p.m + kTiledRows - 1) / kTiledRows, splits);
  gemm_tiled_w4_kernel<T, ZP>
      <<<grid, kTiledWarps * 32, kTiledStages * kTiledStageBytes, stream>>>(p, partial, cps);
  if (splits > 1) {
    const int64_t total = int64_t(p.m) * p.n;
    const int blocks = int(std::min<int64_t>((total + 255) / 256, int64_t(sms) * 8));
    gemm_tiled_w4_reduce<T><<<blocks, 256, 0, stream>>>(p, partial, splits);
  }
}

}  // namespace

void gemm_w4a16(const void* x, int x_dtype, int64_t m, int64_t k, int64_t ldx, const uint32_t* w,
                int64_t n_tiles, int64_t nk, const float* scales, const uint8_t* zeros,
                int64_t n_groups, int64_t group, int64_t n, const float* bias, void* out,
                int64_t ldo, const DecodeWorkspace& ws, void* stream) {
  const char* op = "gemm_w4a16";
  check_gemm_sizes(op, m, k, ldx, n, n_tiles, nk, ldo, x, w, out);
  require(scales != nullptr, op, "null scales");
  require(group >= 32 && group % 32 == 0 && n_groups >= 1 && n_groups * group >= nk * 32 &&
              (n_groups - 1) * group < nk * 32,
          op, "group size and group count do not match the packed K");
  require(x_dtype == kF16 || x_dtype == kBF16, op, "x must be float16 or bfloat16");
  SwapAbParams p{x, nullptr, w, scales, zeros, bias, out, ldx, ldo, int(m), int(n), int(k),
                 int(n_tiles), int(nk), int(group), int(n_groups)};
  auto s = static_cast<cudaStream_t>(stream);
  // f(T(), std::integral_constant<bool, ZP>()) for x's type T and whether there are zero points.
  const auto with_types = [&](auto&& f) {
    if (x_dtype == kF16) {
      if (zeros) f(__half(), std::true_type());
      else f(__half(), std::false_type());
    } else {
      if (zeros) f(__nv_bfloat16(), std::true_type());
      else f(__nv_bfloat16(), std::false_type());
    }
  };
  if (m <= kDecodeMaxM) {
    const int cpg = int(group / 32);  // chunks per group
    const bool kslice = decode_use_kslice(p, cpg);
    with_types([&](auto t, auto zp) {
      using T = decltype(t);
      if (kslice) run_kslice_w4<T, decltype(zp)::value>(op, p, ws, cpg, s);
      else run_decode_w4<T, decltype(zp)::value>(op, p, ws, cpg, s);
    });
  } else if (m <= tiled_max_m()) {
    const int sms = current_device_sms();
    with_types([&](auto t, auto zp) {
      launch_tiled_w4<decltype(t), decltype(zp)::value>(op, p, ws.partials, ws.partial_bytes,
                                                          sms, s);
    });
  } else {
    with_types([&](auto t, auto zp) {
      launch_swapab<Wo::W4A16, decltype(t), decltype(zp)::value>(p, s);
    });
  }
  check_launch(op);
}

}  // namespace llmaccel::cuda
