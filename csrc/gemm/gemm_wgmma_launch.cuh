// Host side shared by the two wgmma launchers (gemm_w8a8.cu, gemm_w4a16_wgmma.cu): the plan of a
// call on the current device, its output and workspace, the launches. nvcc only (the emulator's
// driver launches the kernels itself).
#pragma once
#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_wgmma_consume.cuh"
#include "gemm/gemm_wgmma_plan.h"

namespace llmaccel::cuda {

// Whether the current device runs the sm_90a build of `kernel`: arch-specific (sm_90a) code runs
// on compute capability 9.0 only, and elsewhere the kernel would be the empty body of the other
// targets. A plain sm_90 build also reports binary version 90 but has that empty body: the
// register count tells them apart (the real body launches with the setmaxnreg pool, an empty
// one with a handful), and it guards the pool itself. Cached per device in the caller's `cache`
// (0 unknown, 1 yes, -1 no).
template <class K> bool wgmma_built_for_device(K kernel, signed char (&cache)[64]) {
  int dev = 0, major = 0, minor = 0;
  cudaGetDevice(&dev);
  if (dev >= 0 && dev < 64 && cache[dev]) return cache[dev] > 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  cudaFuncAttributes a{};
  const bool ok = major == 9 && minor == 0 && cudaFuncGetAttributes(&a, kernel) == cudaSuccess &&
                  a.binaryVersion == 90 && a.numRegs * kWgThreads >= kWgRegPool;
  cudaGetLastError();  // a failed query must not linger as the next launch's error
  if (dev >= 0 && dev < 64) cache[dev] = ok ? 1 : -1;
  return ok;
}

// The plan of a call on the current device: x rows per block, tiles, K split (chunks: 32-column
// chunks per stage, 4 for int8, 2 for int4; min_rows: the kernel's smallest x block, 64 for
// int8, 16 for int4; w_stage: its weight bytes per stage, Cfg::kWStage).
inline WgmmaParams wgmma_plan(int64_t m, int64_t n_tiles, int64_t nk, int chunks, int min_rows,
                              int w_stage) {
  WgmmaParams p{};
  p.m = int(m);
  p.n_tiles = int(n_tiles);
  p.nk = int(nk);
  p.kt_count = int((nk + chunks - 1) / chunks);
  const int sms = current_device_sms();
  wgmma_grid(p, wgmma_x_rows(m, n_tiles, sms, min_rows), sms, w_stage);
  return p;
}

// The operands every wgmma GEMM takes: x's image (after_image: its kernel was launched right
// before, see gemm_cuda.h), the weights, their scales (w8a8: per channel; w4a16: per group),
// the bias.
inline void wgmma_bind_operands(WgmmaParams& p, const int8_t* xt, bool after_image,
                                const uint32_t* w, const float* scales, const float* bias) {
  p.xt = xt;
  p.after_image = after_image;
  p.w = reinterpret_cast<const uint8_t*>(w);
  p.scales = scales;
  p.bias = bias;
}
// The output and the K-split workspace of a planned call, checked against the plan.
inline void wgmma_bind(const char* op, WgmmaParams& p, void* out, int64_t n, int64_t ldo,
                       void* partial, int64_t partial_bytes) {
  p.out = out;
  p.n = int(n);
  p.ldo = ldo;
  p.vec_out = reinterpret_cast<uintptr_t>(out) % 16 == 0 && ldo % 8 == 0;
  p.partial = partial;
  const int64_t need = wgmma_partial_bytes(p);
  require(partial_bytes >= need && (partial || need == 0), op,
          "the partial-sum workspace is missing or too small (see *_wgmma_partial_bytes)");
}

// p.x_map for p.x_tma (LLMACCEL_WGMMA_XTMA=1): the image as x_map_rows rows of 128 bytes, boxes
// of x_box_rows rows, no swizzle (the image is already swizzled). cuTensorMapEncodeTiled comes
// through the runtime's driver entry point, so the module still links no libcuda. False when
// the driver or the encoding refuses.
inline bool wgmma_encode_x_map(WgmmaParams& p) {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult q{};
    const bool ok = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                                     cudaEnableDefault, &q) == cudaSuccess &&
                    q == cudaDriverEntryPointSuccess;
    if (!ok) cudaGetLastError();  // a failed lookup must not surface as a launch's error
    return ok ? reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn) : nullptr;
  }();
  const cuuint64_t dims[2] = {cuuint64_t(kWgRowBytes), cuuint64_t(p.x_map_rows)};
  const cuuint64_t strides[1] = {cuuint64_t(kWgRowBytes)};
  const cuuint32_t box[2] = {cuuint32_t(kWgRowBytes), cuuint32_t(p.x_box_rows)}, elem[2] = {1, 1};
  return encode &&
         encode(&p.x_map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<int8_t*>(p.xt), dims,
                strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// launch(std::integral_constant<int, kN>()) for the plan's x rows per block (kMinRows: the
// smallest the kernel has; the plan never asks for less).
template <int kMinRows, class F> void wgmma_with_rows(const WgmmaParams& p, F&& launch) {
  using std::integral_constant;
  if constexpr (kMinRows <= 16) {
    if (p.x_rows == 16) return launch(integral_constant<int, 16>());
    if (p.x_rows == 32) return launch(integral_constant<int, 32>());
  }
  if (p.x_rows == 64) launch(integral_constant<int, 64>());
  else if (p.x_rows == 128) launch(integral_constant<int, 128>());
  else launch(integral_constant<int, 256>());
}

// The main kernel (Cfg's shared memory, one block per SM or per work item), then, when K is
// split, the reduction of the splits in order (Acc: int for w8a8, float for w4a16 and w8a16).
// The main kernel is a programmatic dependent launch when p.after_image says the kernel right
// before it on the stream wrote x's image (x_tiles_16bit, quant_act_int8_tiles, launched by the
// same caller): its blocks may start while that kernel still runs, and stream their first
// weights meanwhile (wgmma_produce). Kernels before the image kernel had completed when it
// started, so nothing but x can still be in flight. At decode sizes that hides the image kernel
// and the gap between the two launches, a few µs of a ~15 µs call. LLMACCEL_WGMMA_PDL=0 launches
// it plainly (a benchmark knob, read per call). Clusters (p.cluster = 2, LLMACCEL_WGMMA_CLUSTER)
// are launched as such, as many as the device holds at once (asked once per device).
template <class Cfg, class T, bool kOutScales, class Acc, auto kernel>
void wgmma_launch(const WgmmaParams& planned, cudaStream_t stream) {
  WgmmaParams p = planned;
  require(p.blocks_per_sm == Cfg::kBlocksPerSm, "wgmma", "the plan is not this kernel's");
  // the kernel takes the tensor-map copy before the multicast one: in a cluster the other
  // block would never get its share (the plan never pairs them; this keeps it so)
  require(!p.x_tma || p.cluster == 1, "wgmma", "the x tensor map is for single blocks");
  require(!p.x_tma || wgmma_encode_x_map(p), "wgmma",
          "LLMACCEL_WGMMA_XTMA=1: the driver did not encode the x tensor map");
  // The setmaxnreg hand-over needs this variant to launch with the whole register pool (every
  // variant does with today's ptxas; one that did not would hang, so it is refused instead).
  static const bool full_pool = [&] {
    cudaFuncAttributes a{};
    const bool ok = cudaFuncGetAttributes(&a, kernel) == cudaSuccess &&
                    a.numRegs * kWgThreads >= Cfg::kRegPool;
    cudaGetLastError();
    return ok;
  }();
  require(full_pool, "wgmma", "this kernel variant was compiled with fewer registers than its "
                              "setmaxnreg budgets need");
  // Above 48 KB of dynamic shared memory a kernel must opt in (per device; cheap to repeat).
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmem);
  // two blocks per SM (LLMACCEL_WGMMA_SMALL_BPS) need the whole carveout as shared memory
  if (Cfg::kBlocksPerSm > 1)
    cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                         int(cudaSharedmemCarveoutMaxShared));
  const int sms = current_device_sms();
  cudaLaunchConfig_t cfg{};
  cfg.blockDim = dim3(unsigned(kWgThreads));
  cfg.dynamicSmemBytes = size_t(Cfg::kSmem);
  cfg.stream = stream;
  cudaLaunchAttribute attrs[2];
  cfg.attrs = attrs;
  if (p.after_image && !env_is("LLMACCEL_WGMMA_PDL", "0")) {
    attrs[cfg.numAttrs].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[cfg.numAttrs++].val.programmaticStreamSerializationAllowed = 1;
  }
  int slots = 0;  // clusters resident at once (a persistent grid must not queue a second wave)
  if (p.cluster > 1) {
    attrs[cfg.numAttrs].id = cudaLaunchAttributeClusterDimension;
    attrs[cfg.numAttrs++].val.clusterDim = {unsigned(p.cluster), 1, 1};
    static int resident[64] = {};  // per device; 0: not asked yet (or the query failed)
    int dev = 0;
    cudaGetDevice(&dev);
    if (dev >= 0 && dev < 64 && resident[dev] == 0) {
      cfg.gridDim = dim3(unsigned(p.cluster * (sms / p.cluster)));
      if (cudaOccupancyMaxActiveClusters(&resident[dev], kernel, &cfg) != cudaSuccess)
        resident[dev] = 0;
      cudaGetLastError();
    }
    if (dev >= 0 && dev < 64) slots = resident[dev];
  }
  cfg.gridDim = dim3(unsigned(wgmma_launch_blocks(p, sms, slots)));
  cudaLaunchKernelEx(&cfg, kernel, p);
  if (p.splits > 1) {
    const int64_t total = int64_t(p.m) * p.n;
    const int blocks = int(std::min<int64_t>((total + 255) / 256, int64_t(sms) * 8));
    wgmma_reduce_kernel<T, kOutScales, Acc><<<blocks, 256, 0, stream>>>(p);
  }
}

}  // namespace llmaccel::cuda
