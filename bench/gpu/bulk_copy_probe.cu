// How fast one producer warp per SM streams bytes into shared memory through bulk copies
// (cp.async.bulk, the TMA engine), as a function of how a ring stage's bytes are split into
// copies and which lanes and warps issue them. A stage lands on one "full" mbarrier; one consumer
// warp waits for it and hands the slot back at once (no arithmetic), so the figure is the copy
// path's own ceiling.
//
// Part 1 (HBM): `copies` copies of `bytes` per stage, each block reading its own 2 MB (264 MB
// over 132 SMs, past the 50 MB L2). The wgmma GEMMs once issued 8 weight copies of 512 B (one
// per weight tile) plus one x copy per stage from one thread, the K-slice decode kernel one 8 KB
// copy (results: bench/results/2026-11-23_gpu_h100_bulk_copy_probe.txt).
// Part 2 (the wgmma GEMMs' large-M stage): per stage 8 weight copies of `bytes` from lanes 0-7
// (each block its own HBM streams) and x_bytes of x that every block reads from the same 2 MB
// (L2-resident after the first pass, as the x image is), in x_pieces copies from lanes 8, 9, ..
// of the weights' warp or, with x_warp, from lanes 0, 1, .. of a producer warp of its own;
// w_warps weights warps taking the stages in turn; a ring of `ring` slots. At 128 weight rows ×
// 256 x rows the tensor cores need ~560 ns per stage (64 columns of 16-bit x: 32 KB of x, 4 KB
// of int4 or 8 KB of int8 weights; 128 columns of int8 x: 32 + 16 KB); the GEMMs measured ~950.
// Part 3 (x alone) sets a 1D bulk copy of a stage against the tensor-map form
// (cp.async.bulk.tensor.2d: a box of 128 bytes × rows over the same bytes, no swizzle: the
// image is already swizzled), one copy or pieces.
//   nvcc -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a -Icsrc \
//        bench/gpu/bulk_copy_probe.cu -o /tmp/bulk_copy_probe && /tmp/bulk_copy_probe
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "cuda/cuda_common.cuh"

using namespace llmaccel::cuda;

constexpr int kMaxRing = 16, kRingBytes = 192 * 1024;  // up to 16 slots in 192 KB
constexpr int64_t kBlockBytes = 2 << 20;

struct Case {
  int copies, bytes;  // per stage: copies of `bytes` (part 2: the weight copies, lanes 0-7)
  bool strided;       // copy c from its own stream (the weight tiles), else one contiguous run
  int issuers;        // part 1: lanes issuing the copies (copy c from lane c % issuers)
  int x_bytes = 0;    // part 2: x per stage, from the shared L2-resident 2 MB
  int x_pieces = 1;
  bool x_warp = false;
  int ring = kMaxRing;
  int w_warps = 1;
  bool x_tensor = false;  // x through the tensor map (cp.async.bulk.tensor.2d), rows / pieces
};

// x's copy of the map's box (128-byte rows) from row `row` of the 2 MB region.
__device__ __forceinline__ void tensor_copy_rows(void* dst, const CUtensorMap* map, int row,
                                                 uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
      "[%0], [%1, {%2, %3}], [%4];\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(0), "r"(row), "r"(smem_addr(bar))
      : "memory");
}

__device__ __forceinline__ void copy_weights(const Case& c, const uint8_t* base, uint8_t* slot,
                                             int t, int lane, uint64_t* bar) {
  for (int i = lane; i < c.copies; i += c.issuers) {
    const int64_t stream = kBlockBytes / c.copies & ~int64_t(255);  // 256-byte aligned streams
    const int64_t w_stage = int64_t(c.copies) * c.bytes;
    const int64_t off = c.strided ? int64_t(i) * stream + (int64_t(t) * c.bytes) % stream
                                  : (int64_t(t) * w_stage) % kBlockBytes + int64_t(i) * c.bytes;
    bulk_copy_g2s(slot + i * c.bytes, base + off, c.bytes, bar);
  }
}

__global__ void __launch_bounds__(128, 1)
    probe_kernel(const uint8_t* src, const uint8_t* x_src, const Case c, int stages,
                 const __grid_constant__ CUtensorMap x_map) {
  extern __shared__ __align__(1024) uint8_t smem[];
  const int w_stage = c.copies * c.bytes, stage_bytes = w_stage + c.x_bytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + c.ring * stage_bytes);
  uint64_t* empty = full + c.ring;
  if (threadIdx.x == 0)
    for (int s = 0; s < c.ring; ++s) mbar_init(&full[s], 1), mbar_init(&empty[s], 1);
  __syncthreads();
  const uint8_t* base = src + int64_t(blockIdx.x) * kBlockBytes;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (warp == 0) {  // consumer warp
    for (int t = 0; t < stages; ++t) {
      const int s = t % c.ring;
      mbar_wait(&full[s], (t / c.ring) & 1);
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[s]);
    }
    return;
  }
  const bool w_role = warp <= c.w_warps, x_role = c.x_warp && warp == c.w_warps + 1;
  const int xi = lane - (x_role ? 0 : c.copies), piece = c.x_bytes / c.x_pieces;
  for (int t = 0; t < stages; ++t) {
    const bool own_w = w_role && t % c.w_warps == warp - 1;
    const bool own_x = c.x_bytes > 0 && (x_role || (own_w && !c.x_warp));
    if (!own_w && !own_x) continue;
    const int s = t % c.ring;
    uint8_t* slot = smem + s * stage_bytes;
    if (t >= c.ring) {
      mbar_wait(&empty[s], ((t / c.ring) - 1) & 1);
      fence_proxy_async_smem();
    }
    if (own_w) {
      if (lane == 0) mbar_expect_tx(&full[s], stage_bytes);
      if (lane < c.issuers) copy_weights(c, base, slot, t, lane, &full[s]);
    }
    if (own_x && xi >= 0 && xi < c.x_pieces) {
      const int64_t off = (int64_t(t) * c.x_bytes) % kBlockBytes + int64_t(xi) * piece;
      uint8_t* dst = slot + w_stage + xi * piece;
      if (c.x_tensor) tensor_copy_rows(dst, &x_map, int(off / 128), &full[s]);
      else bulk_copy_g2s(dst, x_src + off, piece, &full[s]);
    }
  }
}

int main() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  uint8_t *src = nullptr, *x_src = nullptr;
  const int64_t total = int64_t(sms) * kBlockBytes;
  cudaMalloc(&src, total);
  cudaMalloc(&x_src, kBlockBytes);
  cudaMemset(src, 1, total);
  cudaMemset(x_src, 2, kBlockBytes);
  if (const cudaError_t e = cudaFuncSetAttribute(
          probe_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024);
      e != cudaSuccess) {
    std::printf("shared memory limit: %s\n", cudaGetErrorString(e));
    return 1;
  }
  // The x region as a (16384 rows, 128 bytes) tensor, boxes of 32 KB / pieces (one box size per
  // map: made for each case below), through the driver's entry point (no libcuda link).
  PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
  cudaDriverEntryPointQueryResult q{};
  if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", reinterpret_cast<void**>(&encode),
                                       12000, cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess)
    encode = nullptr;
  const auto x_map_for = [&](int box_rows, CUtensorMap& map) {
    const cuuint64_t dims[2] = {128, cuuint64_t(kBlockBytes / 128)}, strides[1] = {128};
    const cuuint32_t box[2] = {128, cuuint32_t(box_rows)}, elem[2] = {1, 1};
    return encode && encode(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, x_src, dims, strides, box,
                            elem, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
  };
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  // median of 6 timed runs after one warm-up; ns per stage and GB/s over all blocks
  const auto time = [&](Case c, int stages, double& gbps, double& ns) {
    const int stage = c.copies * c.bytes + c.x_bytes;
    c.ring = std::min({c.ring, kMaxRing, kRingBytes / stage});
    const size_t smem = size_t(c.ring) * stage + 2 * c.ring * sizeof(uint64_t);
    CUtensorMap map{};
    if (c.x_tensor && !x_map_for(c.x_bytes / c.x_pieces / 128, map)) {
      std::printf("no tensor map (driver entry point or encoding failed)\n");
      return false;
    }
    std::vector<float> ms;
    for (int r = 0; r < 7; ++r) {
      cudaEventRecord(a);
      probe_kernel<<<sms, 32 * (1 + c.w_warps + c.x_warp), smem>>>(src, x_src, c, stages, map);
      cudaEventRecord(b);
      cudaEventSynchronize(b);
      float t = 0;
      cudaEventElapsedTime(&t, a, b);
      if (r > 0) ms.push_back(t);
    }
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
      std::printf("error %s\n", cudaGetErrorString(e));
      return false;
    }
    std::sort(ms.begin(), ms.end());
    const double t = ms[ms.size() / 2] * 1e-3;
    gbps = double(sms) * stages * stage / t * 1e-9;
    ns = t / stages * 1e9;
    return true;
  };
  std::printf("part 1: HBM, %d SMs, one producer warp each, up to %d ring slots, %lld MB read\n",
              sms, kMaxRing, (long long)(total >> 20));
  std::printf("copies/stage  bytes/copy  stage KB  layout   issuers    GB/s   ns/stage\n");
  const Case hbm[] = {{9, 512, true, 1},   {8, 512, true, 1},   {8, 512, true, 8},
                      {1, 4096, false, 1}, {4, 1024, true, 1},  {8, 1024, true, 1},
                      {8, 1024, true, 8},  {1, 8192, false, 1}, {2, 4096, true, 1},
                      {16, 512, true, 1},  {16, 512, true, 16}, {4, 2048, true, 1},
                      {4, 2048, true, 4},  {1, 2048, false, 1}, {1, 16384, false, 1},
                      {8, 2048, true, 8}};
  for (const Case& c : hbm) {
    double gbps = 0, ns = 0;
    if (!time(c, int(kBlockBytes / (c.copies * c.bytes)), gbps, ns)) continue;
    std::printf("%12d  %10d  %8.1f  %-8s %7d  %6.0f  %9.0f\n", c.copies, c.bytes,
                c.copies * c.bytes / 1024.0, c.strided ? "strided" : "one run", c.issuers, gbps,
                ns);
  }
  // Part 2: 8 weight copies (HBM) + x (L2) per stage, 512 stages per block (1 GB of x
  // reads over 132 SMs at 16 KB): ns per stage against the tensor cores' ~560.
  std::printf("\npart 2: the wgmma stage: 8 weight copies (HBM, lanes 0-7) + x (one 2 MB "
              "region, L2), 512 stages\n");
  std::printf("w bytes/copy  x KB  x pieces  x warp  w warps  ring    GB/s   ns/stage\n");
  const Case gemm[] = {
      // 16-bit x, int4 weights: 32 KB of x, 8 × 512 B, 4 slots (the kernel's)
      {8, 512, true, 8, 32768, 1, false, 4}, {8, 512, true, 8, 32768, 1, true, 4},
      {8, 512, true, 8, 32768, 4, false, 4}, {8, 512, true, 8, 32768, 4, true, 4},
      {8, 512, true, 8, 32768, 8, true, 4},  {8, 512, true, 8, 32768, 1, false, 5},
      // int8 x and weights: 32 KB of x, 8 × 2 KB, 3 slots (the kernel's), 4
      {8, 2048, true, 8, 32768, 1, false, 3}, {8, 2048, true, 8, 32768, 1, true, 3},
      {8, 2048, true, 8, 32768, 4, false, 3}, {8, 2048, true, 8, 32768, 4, true, 3},
      {8, 2048, true, 8, 32768, 4, true, 4},
      // weights warps taking the stages in turn (with x pieces from a warp of its own)
      {8, 512, true, 8, 32768, 4, true, 4, 2},  {8, 2048, true, 8, 32768, 4, true, 4, 2},
      {8, 2048, true, 8, 32768, 4, false, 4, 2}, {8, 512, true, 8, 0, 1, false, 4, 2},
      {8, 512, true, 8, 0, 1, false, 4, 1},
      // x alone: one copy of 32 / 16 KB against pieces (the per-copy rate from L2)
      {0, 16, true, 1, 32768, 1, false, 4},  {0, 16, true, 1, 32768, 4, false, 4},
      {0, 16, true, 1, 16384, 1, false, 4},  {0, 16, true, 1, 16384, 4, false, 4},
  };
  for (const Case& c : gemm) {
    double gbps = 0, ns = 0;
    if (!time(c, 512, gbps, ns)) continue;
    std::printf("%12d  %4d  %8d  %6s  %7d  %4d  %6.0f  %9.0f\n", c.copies ? c.bytes : 0,
                c.x_bytes / 1024, c.x_pieces, c.x_warp ? "yes" : "no", c.w_warps,
                std::min({c.ring, kMaxRing, kRingBytes / (c.copies * c.bytes + c.x_bytes)}),
                gbps, ns);
  }
  // Part 3: x alone, 32 KB per stage from L2 in a 4-slot ring: 1D bulk copies against the
  // tensor-map form, whole or in 4 pieces from 4 lanes.
  std::printf("\npart 3: x alone (L2), 32 KB stages, 4 slots, 512 stages: 1D bulk copy against "
              "the tensor map\n");
  std::printf("form     pieces    GB/s   ns/stage\n");
  for (const bool tensor : {false, true}) {
    for (const int pieces : {1, 4}) {
      Case c{0, 16, true, 1, 32768, pieces, false, 4};
      c.x_tensor = tensor;
      double gbps = 0, ns = 0;
      if (!time(c, 512, gbps, ns)) continue;
      std::printf("%-7s  %6d  %6.0f  %9.0f\n", tensor ? "tensor" : "1D", pieces, gbps, ns);
    }
  }
  return 0;
}
