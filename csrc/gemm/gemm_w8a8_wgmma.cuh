// gemm_w8a8 for large M on sm_90a: warpgroup MMA (wgmma) with the int8 weights as the register
// operand and x tiles streamed in by the bulk-copy engine.
//
// OPT-IN AND NOT YET RUN ON A GPU (written 2026-11-22 without one; LLMACCEL_W8A8_WGMMA=1 turns it
// on, see ops/cuda.py). The mma.sync tiled kernel in gemm_w8a8.cu reaches ~350 TOP/s on an H100
// (0.40-0.45× bf16 cuBLAS at M ≥ 2048); the issue asks for 1.6×, which needs ~1100 TOP/s of the
// ~1979 the int8 tensor cores peak at, and only wgmma issues at that rate.
//
// Why the weights are wgmma's A operand, from registers: wgmma takes A from registers or shared
// memory but B only from shared memory in its canonical (swizzled) layouts. The int8_cuda_mma16x32
// layout already holds, per 16-row tile and 32-column chunk, each lane's 16 bytes in the order of
// the m64nNk32 A register fragment (per warp 16 rows; registers: row g MMA-k 4t.., row g+8 4t..,
// row g 16+4t.., row g+8 16+4t..; g = lane/4, t = lane%4; the columns behind those k indices
// are permuted, and x's image permutes the same way: gemm_w8a8_xtiles.h), so the weights need
// no second copy in another layout: a stage copies whole 2 KB (tile, 4 chunks) runs and each
// lane reads its fragment with one 16-byte shared-memory load per chunk. So the MMA's M is the
// output feature and its N the x row, and the accumulators come out transposed (fixed in the
// epilogue). tests/ops/test_w8a8_wgmma_layout.py checks these layouts on the CPU against
// CUTLASS's published wgmma layouts and emulates the kernel's loop to the exact product.
//
// Why x is re-laid out by the quantization kernel (quant_act_int8_tiles; gemm_w8a8_xtiles.h):
// wgmma's B must sit in shared memory as K-major 128-byte rows with the 16-byte pieces of row r
// XOR-swizzled by r % 8. Written in that image, a stage of x is one plain bulk copy: no tensor
// map (no driver API), no address arithmetic in the producer, and both the copy and wgmma touch
// the bytes through the async proxy, with no proxy fence between them.
//
// Block: 3 warpgroups. Warpgroup 2 is the producer (one thread issues the copies into a 4-stage
// ring of full/empty mbarriers, the pattern of the K-slice decode kernel); warpgroups 0 and 1 each
// own 64 weight rows × all 256 x rows of the block, 128 int32 accumulators per thread
// (m64n256k32, four per 128-column stage). While one warpgroup waits for its group of wgmmas the
// other's keep the tensor cores busy. The epilogue scales by xscale[m]·scale[n], adds the bias,
// and goes through shared memory so that global stores are whole 16-byte row pieces.
//
// Blocks are rastered in groups of kWgGroup weight blocks: a wave of 132 blocks then touches
// ~16 weight blocks (8 MB at K = 4096) and ~8 x blocks instead of every weight block for 1-2 x
// blocks, so the weights are read from DRAM once per group of x blocks, not once per x block.
#pragma once
#include <algorithm>

#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_w8a8_xtiles.h"

namespace llmaccel::cuda {

constexpr int kWgWRows = 128;                         // outputs per block: 2 warpgroups × 64
constexpr int kWgStages = 4;
constexpr int kWgXStage = kWgXRows * kWgK;            // 32 KB
constexpr int kWgWStage = (kWgWRows / 16) * 4 * 512;  // 8 tiles × 4 chunks × 512 B = 16 KB
constexpr int kWgRingBytes = kWgStages * (kWgXStage + kWgWStage);
constexpr int kWgSmemBytes = 1024 + kWgRingBytes + 2 * kWgStages * 8;  // + alignment, barriers
constexpr int kWgThreads = 384;
constexpr int kWgGroup = 16;  // weight blocks per raster group
constexpr int kWgPitch = kWgWRows + 8;  // epilogue staging row, elements (272 B: no conflicts)

struct WgmmaW8A8Params {
  const int8_t* xt;  // the tiled image of quantized x
  const float* xscale;
  const uint8_t* w;  // bytes of the int8_cuda_mma16x32 layout
  const float* scales;
  const float* bias;
  void* out;
  int64_t ldo;
  int m, n, n_tiles, nk, kt_count, w_blocks, x_blocks;
  bool vec_out;  // out rows 16-byte aligned: whole 8-element pieces per store
};

// ---- sm_90a instructions -----------------------------------------------------------------------
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Ties the accumulators to this point of the instruction stream: the compiler may not move
// reads or writes of them across an asynchronous wgmma it cannot see into.
__device__ __forceinline__ void wgmma_fence_acc(int (&d)[128]) {
#pragma unroll
  for (int i = 0; i < 128; ++i) asm volatile("" : "+r"(d[i])::"memory");
}
// Shared-memory matrix descriptor: K-major, 128-byte swizzle (layout type 1), 8-row groups 1024 B
// apart (stride byte offset), leading byte offset unused by swizzled K-major layouts (1 as
// CUTLASS writes it); the start address must sit in a 1024-byte-aligned swizzle atom.
__device__ __forceinline__ uint64_t wgmma_desc_sw128(uint32_t smem_byte_addr) {
  return uint64_t((smem_byte_addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) |
         (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

#define LLMACCEL_ACC8(i)                                                                  \
  "+r"(d[i]), "+r"(d[i + 1]), "+r"(d[i + 2]), "+r"(d[i + 3]), "+r"(d[i + 4]), "+r"(d[i + 5]), \
      "+r"(d[i + 6]), "+r"(d[i + 7])
// D(64×256, int32) += A(64×32, s8, registers) · B(256×32, s8, shared memory)ᵀ.
__device__ __forceinline__ void wgmma_m64n256k32_s8(int (&d)[128], const uint32_t (&a)[4],
                                                    uint64_t desc_b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n256k32.s32.s8.s8 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, "
      "%111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, "
      "%125, %126, %127}, "
      "{%128, %129, %130, %131}, %132, 1;\n"
      : LLMACCEL_ACC8(0), LLMACCEL_ACC8(8), LLMACCEL_ACC8(16), LLMACCEL_ACC8(24),
        LLMACCEL_ACC8(32), LLMACCEL_ACC8(40), LLMACCEL_ACC8(48), LLMACCEL_ACC8(56),
        LLMACCEL_ACC8(64), LLMACCEL_ACC8(72), LLMACCEL_ACC8(80), LLMACCEL_ACC8(88),
        LLMACCEL_ACC8(96), LLMACCEL_ACC8(104), LLMACCEL_ACC8(112), LLMACCEL_ACC8(120)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b));
}
#undef LLMACCEL_ACC8

// Register budgets per warpgroup role (the kernel starts at 65536 / 384 = 168 per thread): the
// producer needs a handful, the consumers 128 accumulators + fragments + addresses.
template <int R> __device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R));
}
template <int R> __device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R));
}
__device__ __forceinline__ void consumer_barrier() {  // the two consumer warpgroups only
  asm volatile("bar.sync 1, 256;\n" ::: "memory");
}
#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// Block index → (weight block, x block), grouped so that a wave shares few weight blocks.
__device__ __forceinline__ void wgmma_block_coords(const WgmmaW8A8Params& p, int idx, int& wb,
                                                   int& xb) {
  const int per_group = kWgGroup * p.x_blocks;
  const int group = idx / per_group, first = group * kWgGroup;
  const int size = min(kWgGroup, p.w_blocks - first), local = idx - group * per_group;
  wb = first + local % size;
  xb = local / size;
}

template <class T>
__global__ void __launch_bounds__(kWgThreads, 1)
    gemm_w8a8_wgmma_kernel(const __grid_constant__ WgmmaW8A8Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ uint8_t smem_raw[];
  // The swizzle pattern is a function of address bits 4-9: each x stage starts on 1024 bytes.
  uint8_t* smem = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  uint8_t* xs = smem;                            // kWgStages × 32 KB
  uint8_t* ws = smem + kWgStages * kWgXStage;    // kWgStages × 16 KB
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kWgRingBytes);
  uint64_t* empty = full + kWgStages;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wg = warp >> 2;
  int wb, xb;
  wgmma_block_coords(p, blockIdx.x, wb, xb);

  if (threadIdx.x == 0) {
    for (int s = 0; s < kWgStages; ++s) {
      mbar_init(&full[s], 1);      // the producer's arrive.expect_tx; the copies complete it
      mbar_init(&empty[s], 8);     // one arrival per consumer warp
    }
  }
  __syncthreads();

  if (wg == 2) {  // producer
    setmaxnreg_dec<40>();
    if (warp == 8 && lane == 0) {
      const int tiles = min(kWgWRows / 16, p.n_tiles - wb * (kWgWRows / 16));
      for (int kt = 0; kt < p.kt_count; ++kt) {
        const int s = kt % kWgStages;
        if (kt >= kWgStages) {
          mbar_wait(&empty[s], ((kt / kWgStages) - 1) & 1);
          fence_proxy_async_smem();  // the consumers' reads of the slot before the new copies
        }
        const int chunks = min(4, p.nk - kt * 4);
        mbar_expect_tx(&full[s], kWgXStage + tiles * chunks * 512);
        bulk_copy_g2s(xs + s * kWgXStage, p.xt + (int64_t(xb) * p.kt_count + kt) * kWgXStage,
                      kWgXStage, &full[s]);
        for (int t = 0; t < tiles; ++t)
          bulk_copy_g2s(ws + s * kWgWStage + t * 2048,
                        p.w + (int64_t(wb * (kWgWRows / 16) + t) * p.nk + kt * 4) * 512,
                        chunks * 512, &full[s]);
      }
    }
    return;
  }

  // Consumers. Weight tiles past n_tiles and chunks past nk are never copied: their stale bytes
  // meet x columns that are zero (past k) or feed outputs that are never stored (past n).
  setmaxnreg_inc<232>();
  const int wwarp = wg * 4 + (warp & 3);  // this warp's 16-row tile within the block
  int acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0;
  wgmma_fence_acc(acc);
  const uint32_t xs_addr = smem_addr(xs);
  const uint8_t* wfrag = ws + wwarp * 4 * 512 + lane * 16;
  for (int kt = 0; kt < p.kt_count; ++kt) {
    const int s = kt % kWgStages;
    mbar_wait(&full[s], (kt / kWgStages) & 1);
    uint32_t a[4][4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint4 v = *reinterpret_cast<const uint4*>(wfrag + s * kWgWStage + j * 512);
      a[j][0] = v.x; a[j][1] = v.y; a[j][2] = v.z; a[j][3] = v.w;
    }
    wgmma_fence();  // the A registers were just written
    const uint64_t desc = wgmma_desc_sw128(xs_addr + s * kWgXStage);
#pragma unroll
    for (int j = 0; j < 4; ++j) wgmma_m64n256k32_s8(acc, a[j], desc + 2 * j);  // +32 B of k
    wgmma_commit();
    wgmma_wait<0>();  // this warp's MMAs have read the slot (and the A registers are free)
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[s]);
  }
  wgmma_fence_acc(acc);

  // Epilogue. acc[4i + e] is (weight row g, x row 8i + 2t + e) of this warp's 16 rows,
  // acc[4i + 2 + e] the same x rows for weight row g + 8. Stage y[x row][output] as T in shared
  // memory (every stage is idle once both warpgroups pass the barrier), then store row pieces.
  using A = Act16<T>;
  consumer_barrier();
  T* stage = reinterpret_cast<T*>(smem);
  const int g = lane >> 2, t = lane & 3;
  const int nl = wwarp * 16 + g, n0 = wb * kWgWRows + nl;
  const float sw0 = n0 < p.n ? __ldg(p.scales + n0) : 0.f;
  const float sw1 = n0 + 8 < p.n ? __ldg(p.scales + n0 + 8) : 0.f;
  const float b0 = p.bias && n0 < p.n ? __ldg(p.bias + n0) : 0.f;
  const float b1 = p.bias && n0 + 8 < p.n ? __ldg(p.bias + n0 + 8) : 0.f;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int ml = 8 * i + 2 * t + e, m = xb * kWgXRows + ml;
      const float sx = m < p.m ? __ldg(p.xscale + m) : 0.f;
      stage[ml * kWgPitch + nl] = A::from_float(float(acc[4 * i + e]) * (sx * sw0) + b0);
      stage[ml * kWgPitch + nl + 8] = A::from_float(float(acc[4 * i + 2 + e]) * (sx * sw1) + b1);
    }
  }
  consumer_barrier();
  T* out = static_cast<T*>(p.out);
  const int tid = threadIdx.x;  // 0..255
#pragma unroll 4
  for (int it = 0; it < kWgXRows * (kWgWRows / 8) / 256; ++it) {
    const int idx = it * 256 + tid, row = idx >> 4, piece = idx & 15;
    const int m = xb * kWgXRows + row, n = wb * kWgWRows + piece * 8;
    if (m >= p.m || n >= p.n) continue;
    const T* src = stage + row * kWgPitch + piece * 8;
    T* dst = out + int64_t(m) * p.ldo + n;
    if (p.vec_out && n + 8 <= p.n) {
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    } else {
      for (int e = 0; e < 8 && n + e < p.n; ++e) dst[e] = src[e];
    }
  }
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

// Whether the current device runs the sm_90a build of the kernel: arch-specific (sm_90a) code
// runs on compute capability 9.0 only, and elsewhere the kernel would be the empty body of the
// other targets. Cached per device.
inline bool w8a8_wgmma_built_for_device() {
  int dev = 0;
  cudaGetDevice(&dev);
  static signed char cache[64] = {};  // 0 unknown, 1 yes, -1 no
  if (dev >= 0 && dev < 64 && cache[dev]) return cache[dev] > 0;
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  cudaFuncAttributes a{};
  const bool ok = major == 9 && minor == 0 &&
                  cudaFuncGetAttributes(&a, gemm_w8a8_wgmma_kernel<__nv_bfloat16>) ==
                      cudaSuccess &&
                  a.binaryVersion == 90;
  cudaGetLastError();  // a failed query must not linger as the next launch's error
  if (dev >= 0 && dev < 64) cache[dev] = ok ? 1 : -1;
  return ok;
}

template <class T> void launch_w8a8_wgmma(const WgmmaW8A8Params& p, cudaStream_t stream) {
  auto kernel = gemm_w8a8_wgmma_kernel<T>;
  // Above 48 KB of dynamic shared memory a kernel must opt in (per device; cheap to repeat).
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kWgSmemBytes);
  kernel<<<p.w_blocks * p.x_blocks, kWgThreads, kWgSmemBytes, stream>>>(p);
}

}  // namespace llmaccel::cuda
