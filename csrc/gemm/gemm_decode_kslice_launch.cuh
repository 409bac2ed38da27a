// Host side of the K-slice decode kernel (gemm_decode_kslice.cuh): the plan of a call on the
// current device, the configuration per grouping and x rows, the launch. nvcc only (the
// emulator's driver launches the kernel itself).
#pragma once
#include <cstdlib>
#include <type_traits>

#include "gemm/gemm_decode_kslice.cuh"

namespace llmaccel::cuda {

// Plans the split for the current device and this configuration (MINB blocks per SM), checks
// the caller's workspace, launches.
template <class T, bool ZP, int MT, int GU, int NB, int MINB>
void launch_kslice(const char* op, const SwapAbParams& p, const DecodeWorkspace& ws, int cpg,
                   cudaStream_t stream) {
  constexpr int NG = GU > 0 ? kKsUnits / GU : 1;
  constexpr int64_t kRing = ks_ring_bytes<NG, ZP, NB>();
  static_assert(kRing * MINB + MINB * kSmemPerBlockReserved < kSmemPerSm, "rings too large");
  KsPlan plan = plan_kslice(p.m, p.n_tiles, p.nk, current_device_sms(), MINB, kRing, NB);
  // LLMACCEL_KS_REDUCE=cluster: K chunks meet in a cluster's shared memory (at most 8 blocks, the
  // portable cluster size) instead of the workspace. Opt-in until measured (bench/gpu/NOTES.md).
  const char* reduce = std::getenv("LLMACCEL_KS_REDUCE");
  plan.cluster = reduce && reduce[0] == 'c' && plan.kchunks > 1 && plan.kchunks <= 8;
  plan.evict_first = weights_evict_first();
  // LLMACCEL_KS_PASS_TRIPS=T: at most T trips of the ring per pass (a test knob, read per call):
  // the test and sanitizer shapes are small enough for one pass on an H100, and the passes'
  // barriers and sums must run under the sanitizers too. The same bits either way.
  if (const char* e = std::getenv("LLMACCEL_KS_PASS_TRIPS")) {
    const int trips = std::atoi(e);
    if (trips > 0 && int64_t(trips) * NB < plan.pass) plan.pass = trips * NB;
  }
  if (plan.kchunks > 1 && !plan.cluster) {
    require(ws.counters && ws.partials && ws.n_counters >= plan.ranges &&
                ws.partial_bytes >= kslice_partial_bytes(plan, p.m),
            op, "the decode workspace is missing or too small (size it with decode_workspace)");
    // the last block reads the partial sums with 16-byte loads
    require(reinterpret_cast<uintptr_t>(ws.partials) % 16 == 0, op,
            "the decode workspace's partial sums must be 16-byte aligned");
  }
  plan.counters = ws.counters;
  plan.partials = static_cast<float*>(ws.partials);
  const int smem = int(kRing + ks_red_bytes(plan.pass, plan.tpb, p.m));
  require(smem <= kSmemPerSm / MINB - kSmemPerBlockReserved, op,
          "the K-slice plan does not fit in shared memory (m too large for this configuration)");
  auto kernel = gemm_decode_kslice_w4_kernel<T, ZP, MT, GU, NB, MINB>;
  // Above 48 KB a kernel needs the opt-in, once per device (not a stream operation: capturable).
  static unsigned opted = 0;  // bit per device
  int dev = 0;
  cudaGetDevice(&dev);
  if (dev < 32 && !(opted & (1u << dev))) {
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         int(kSmemPerSm / MINB - kSmemPerBlockReserved));
    opted |= 1u << dev;
  }
  if (!plan.cluster) {
    kernel<<<dim3(plan.ranges, plan.kchunks), (kKsWarps + 1) * 32, smem, stream>>>(p, plan, cpg);
    return;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(plan.ranges, plan.kchunks);
  cfg.blockDim = dim3((kKsWarps + 1) * 32);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = plan.kchunks;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  cudaLaunchKernelEx(&cfg, kernel, p, plan, cpg);  // errors surface in check_launch
}

// Whether the current device runs a build of the K-slice kernel made for sm_90 or later: its body
// is compiled out below sm_90, and a device of a newer family without sm_90 code of its own would
// JIT the sm_80 PTX (an empty kernel). Cached per device.
inline bool kslice_built_for_device() {
  int dev = 0;
  cudaGetDevice(&dev);
  static signed char cache[64] = {};  // 0 unknown, 1 yes, -1 no
  if (dev >= 0 && dev < 64 && cache[dev]) return cache[dev] > 0;
  cudaFuncAttributes a{};
  const bool ok = current_device_major() >= 9 &&
                  cudaFuncGetAttributes(&a, gemm_decode_kslice_w4_kernel<__nv_bfloat16, false, 1,
                                                                         0, 3, 4>) == cudaSuccess &&
                  a.ptxVersion >= 90;
  cudaGetLastError();  // a failed query must not linger as the next launch's error
  if (dev >= 0 && dev < 64) cache[dev] = ok ? 1 : -1;
  return ok;
}

// The K-slice kernel (sm_90: bulk copies) unless the grouping or the pointers' alignment rule it
// out or LLMACCEL_DECODE_KERNEL=stream asks for the stream-K kernel (read per call, so that one
// benchmark process can compare the two).
inline bool decode_use_kslice(const SwapAbParams& p, int64_t cpg) {
  const char* e = std::getenv("LLMACCEL_DECODE_KERNEL");
  if (e && e[0] == 's') return false;
  const auto aligned = [](const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  return kslice_takes(cpg) && kslice_built_for_device() && aligned(p.w) && aligned(p.scales) &&
         aligned(p.zeros);
}

// Configurations (NB ring slots, MINB blocks per SM). Up to 8 rows of x, symmetric, one group per
// slice (g128 and coarser): 4 blocks of 3 slots (H100, 2026-11-22: 18.7-20.6 µs at M = 1 on the
// issue's shapes against 19.6-22.8 µs for 3 blocks of 4-6 slots: more warps beat deeper rings).
// Zero points or several groups per slice need more registers than 4 blocks allow (≤ 56): 3
// blocks, 6 slots at m ≤ 4, 4 above (room for the larger reduction). 16 rows: 2 blocks (the
// second set of x fragments; 3 blocks with LLMACCEL_KS_VARIANT=4, bf16 g128 symmetric).
template <class T, bool ZP, int GU>
void launch_kslice_gu(const char* op, const SwapAbParams& p, const DecodeWorkspace& ws, int cpg,
                      cudaStream_t s) {
  if constexpr (!ZP && GU == 0 && std::is_same<T, __nv_bfloat16>::value) {
    // LLMACCEL_KS_VARIANT, for sweeps (the benchmark's grouping only; bench/gpu/decode_iter.sh,
    // optin_iter.sh): up to 8 rows 1 = 4 slots at 4 blocks, 2 = 6 at 3, 3 = 4 at 3; 16 rows
    // 4 = 3 slots at 3 blocks (written 2026-11-23 without a GPU: M = 9-16 runs 16 consumer warps
    // per SM where M ≤ 8 runs 32, 1.37-1.47× bf16 at M = 16 against 1.9-2.1× at 8; 3 blocks cap
    // the registers at 72, and ptxas spills 16 bytes, x fragments that stay in L1).
    const char* e = std::getenv("LLMACCEL_KS_VARIANT");
    const int variant = e ? std::atoi(e) : 0;
    if (p.m > 8) {
      if (variant == 4) return launch_kslice<T, ZP, 2, GU, 3, 3>(op, p, ws, cpg, s);
    } else {
      if (variant == 1) return launch_kslice<T, ZP, 1, GU, 4, 4>(op, p, ws, cpg, s);
      if (variant == 2) return launch_kslice<T, ZP, 1, GU, 6, 3>(op, p, ws, cpg, s);
      if (variant == 3) return launch_kslice<T, ZP, 1, GU, 4, 3>(op, p, ws, cpg, s);
    }
  }
  if (p.m > 8) return launch_kslice<T, ZP, 2, GU, 4, 2>(op, p, ws, cpg, s);
  if constexpr (!ZP && GU == 0) {
    return launch_kslice<T, ZP, 1, GU, 3, 4>(op, p, ws, cpg, s);
  } else {
    if (p.m > 4) return launch_kslice<T, ZP, 1, GU, 4, 3>(op, p, ws, cpg, s);
    return launch_kslice<T, ZP, 1, GU, 6, 3>(op, p, ws, cpg, s);
  }
}

template <class T, bool ZP>
void run_kslice_w4(const char* op, const SwapAbParams& p, const DecodeWorkspace& ws, int cpg,
                   cudaStream_t stream) {
  if (cpg % kKsUnits == 0) launch_kslice_gu<T, ZP, 0>(op, p, ws, cpg, stream);
  else if (cpg == 2) launch_kslice_gu<T, ZP, 2>(op, p, ws, cpg, stream);
  else launch_kslice_gu<T, ZP, 1>(op, p, ws, cpg, stream);
}

}  // namespace llmaccel::cuda
