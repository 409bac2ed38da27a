// How fast one producer thread per SM streams HBM into shared memory through bulk copies
// (cp.async.bulk, the TMA engine) as a function of the copies per ring stage and their size: the
// wgmma GEMMs issue 8 weight copies of 512 B (one per weight tile) plus one x copy per stage,
// the K-slice decode kernel one 8 KB copy. A stage lands on one "full" mbarrier; one consumer
// warp waits for it and hands the slot back at once (no arithmetic), so the figure is the copy
// path's own ceiling. Each block reads its own 2 MB (264 MB over 132 SMs, past the 50 MB L2).
//   nvcc -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a -Icsrc \
//        bench/gpu/bulk_copy_probe.cu -o /tmp/bulk_copy_probe && /tmp/bulk_copy_probe
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "cuda/cuda_common.cuh"

using namespace llmaccel::cuda;

constexpr int kMaxRing = 16, kRingBytes = 192 * 1024;  // up to 16 slots in 192 KB
constexpr int64_t kBlockBytes = 2 << 20;

// strided: copy c of every stage comes from its own contiguous stream (the wgmma weight tiles:
// stream c at c · stream_bytes); else a stage's copies are one contiguous run.
__global__ void __launch_bounds__(64, 1)
    probe_kernel(const uint8_t* src, int copies, int bytes, bool strided, int issuers) {
  extern __shared__ __align__(128) uint8_t smem[];
  const int stage_bytes = copies * bytes, stages = int(kBlockBytes / stage_bytes);
  const int kRing = min(kMaxRing, kRingBytes / stage_bytes);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kRing * stage_bytes);
  uint64_t* empty = full + kRing;
  if (threadIdx.x == 0)
    for (int s = 0; s < kRing; ++s) mbar_init(&full[s], 1), mbar_init(&empty[s], 1);
  __syncthreads();
  const uint8_t* base = src + int64_t(blockIdx.x) * kBlockBytes;
  const int lane = threadIdx.x - 32;
  if (threadIdx.x >= 32 && lane < issuers) {  // producer lanes: copy c from lane c % issuers
    for (int t = 0; t < stages; ++t) {
      const int s = t % kRing;
      if (t >= kRing) {
        mbar_wait(&empty[s], ((t / kRing) - 1) & 1);
        fence_proxy_async_smem();
      }
      if (lane == 0) mbar_expect_tx(&full[s], stage_bytes);
      for (int c = lane; c < copies; c += issuers) {
        const int64_t stream = kBlockBytes / copies & ~int64_t(255);  // 256-byte aligned streams
        const int64_t off = strided ? int64_t(c) * stream + int64_t(t) * bytes
                                    : int64_t(t) * stage_bytes + int64_t(c) * bytes;
        bulk_copy_g2s(smem + s * stage_bytes + c * bytes, base + off, bytes, &full[s]);
      }
    }
  } else if (threadIdx.x < 32) {  // consumer warp
    for (int t = 0; t < stages; ++t) {
      const int s = t % kRing;
      mbar_wait(&full[s], (t / kRing) & 1);
      __syncwarp();
      if (threadIdx.x == 0) mbar_arrive(&empty[s]);
    }
  }
}

int main() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  uint8_t* src = nullptr;
  const int64_t total = int64_t(sms) * kBlockBytes;
  cudaMalloc(&src, total);
  cudaMemset(src, 1, total);
  if (const cudaError_t e = cudaFuncSetAttribute(
          probe_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024);
      e != cudaSuccess) {
    std::printf("shared memory limit: %s\n", cudaGetErrorString(e));
    return 1;
  }
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::printf("%d SMs, one producer warp each, up to %d ring slots, %lld MB read\n", sms, kMaxRing,
              (long long)(total >> 20));
  std::printf("copies/stage  bytes/copy  stage KB  layout   issuers    GB/s   ns/stage\n");
  struct Case { int copies, bytes; bool strided; int issuers; };
  const Case cases[] = {{9, 512, true, 1},   {8, 512, true, 1},   {8, 512, true, 8},
                        {1, 4096, false, 1}, {4, 1024, true, 1},  {8, 1024, true, 1},
                        {8, 1024, true, 8},  {1, 8192, false, 1}, {2, 4096, true, 1},
                        {16, 512, true, 1},  {16, 512, true, 16}, {4, 2048, true, 1},
                        {4, 2048, true, 4},  {1, 2048, false, 1}, {1, 16384, false, 1},
                        {8, 2048, true, 8}};
  for (const Case& c : cases) {
    const int stage = c.copies * c.bytes;
    const int ring = std::min(kMaxRing, kRingBytes / stage);
    const size_t smem = size_t(ring) * stage + 2 * ring * sizeof(uint64_t);
    std::vector<float> ms;
    for (int r = 0; r < 7; ++r) {
      cudaEventRecord(a);
      probe_kernel<<<sms, 64, smem>>>(src, c.copies, c.bytes, c.strided, c.issuers);
      cudaEventRecord(b);
      cudaEventSynchronize(b);
      float t = 0;
      cudaEventElapsedTime(&t, a, b);
      if (r > 0) ms.push_back(t);
    }
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
      std::printf("%12d  %10d  error %s\n", c.copies, c.bytes, cudaGetErrorString(e));
      continue;
    }
    std::sort(ms.begin(), ms.end());
    const double t = ms[ms.size() / 2] * 1e-3;
    const double stages = double(kBlockBytes) / stage;
    std::printf("%12d  %10d  %8.1f  %-8s %7d  %6.0f  %9.0f\n", c.copies, c.bytes, stage / 1024.0,
                c.strided ? "strided" : "one run", c.issuers, total / t * 1e-9, t / stages * 1e9);
  }
  return 0;
}
