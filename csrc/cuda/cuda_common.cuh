// Device helpers shared by the CUDA kernels: tensor-core MMA wrappers, cp.async copies, the
// 16-bit activation types, and the launch check. sm_80+ (mma.sync, cp.async).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace llmaccel::cuda {

// Activation / output element types, as the Python side numbers them.
enum DType : int { kF16 = 0, kBF16 = 1, kF32 = 2 };

inline void check_launch(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": CUDA launch failed: " + cudaGetErrorString(e));
}

// An attribute of the current device, cached per device (the query is not free on every call).
template <cudaDeviceAttr kAttr> inline int current_device_attr() {
  int dev = 0;
  cudaGetDevice(&dev);
  static int cache[64] = {};
  if (dev >= 0 && dev < 64 && cache[dev]) return cache[dev];
  int v = 0;
  cudaDeviceGetAttribute(&v, kAttr, dev);
  if (dev >= 0 && dev < 64) cache[dev] = v;
  return v;
}
inline int current_device_sms() { return current_device_attr<cudaDevAttrMultiProcessorCount>(); }
inline int current_device_major() {
  return current_device_attr<cudaDevAttrComputeCapabilityMajor>();
}

// ---- 16-bit activation types -------------------------------------------------------------------
// kMagic: the bit pattern of 2^p (1024 for fp16, 128 for bf16) in both halves, whose mantissa ULP
// is 1, so OR-ing a small integer u into the low mantissa bits gives exactly 2^p + u (the
// dequantization "bit trick": no integer→float conversion instruction).
template <class T> struct Act16;
template <> struct Act16<__half> {
  using T2 = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // 1024 | 1024
  static constexpr uint32_t kMagicHalf = 0x6400u;
  __device__ static T2 splat(float v) { return __float2half2_rn(v); }
  __device__ static T2 sub(T2 a, T2 b) { return __hsub2(a, b); }
  __device__ static T2 mul(T2 a, T2 b) { return __hmul2(a, b); }
  __device__ static __half from_float(float v) { return __float2half_rn(v); }
  __device__ static uint32_t pack2(float lo, float hi) {
    T2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};
template <> struct Act16<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // 128 | 128
  static constexpr uint32_t kMagicHalf = 0x4300u;
  __device__ static T2 splat(float v) { return __float2bfloat162_rn(v); }
  __device__ static T2 sub(T2 a, T2 b) { return __hsub2(a, b); }
  __device__ static T2 mul(T2 a, T2 b) { return __hmul2(a, b); }
  __device__ static __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
  __device__ static uint32_t pack2(float lo, float hi) {
    T2 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};

template <class T2> __device__ __forceinline__ T2 as_t2(uint32_t u) {
  return *reinterpret_cast<T2*>(&u);
}
template <class T2> __device__ __forceinline__ uint32_t as_u32(T2 v) {
  return *reinterpret_cast<uint32_t*>(&v);
}

// (a & b) | c in one LOP3: the compiler splits it into an AND and an OR when one of the inputs is
// shared with other expressions (seen in the decode kernel's SASS: 8 extra instructions per 32
// weights), so the dequantization spells it out.
#if defined(LLMACCEL_SIMT_EMU)
inline uint32_t and_or(uint32_t a, uint32_t b, uint32_t c) { return (a & b) | c; }
#else
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));  // (a&b)|c
  return d;
}
#endif

// The block's dynamic shared memory as `uint8_t* name`: the extern array on the GPU, the
// emulator's per-block buffer on the host (csrc/emu/simt_emu.h).
#if defined(LLMACCEL_SIMT_EMU)
#define LLMACCEL_DYNAMIC_SMEM_ALIGNED(name, bytes) uint8_t* name = ::llmaccel::emu::dynamic_smem()
#else
#define LLMACCEL_DYNAMIC_SMEM_ALIGNED(name, bytes) extern __shared__ __align__(bytes) uint8_t name[]
#endif
#define LLMACCEL_DYNAMIC_SMEM(name) LLMACCEL_DYNAMIC_SMEM_ALIGNED(name, 16)

// Device-scope acquire-release fetch-add (sm_70+).
#if defined(LLMACCEL_SIMT_EMU)
inline int atom_add_acq_rel_gpu(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); }
#else
__device__ __forceinline__ int atom_add_acq_rel_gpu(int* p, int v) {
  int old;
  asm volatile("atom.add.acq_rel.gpu.s32 %0, [%1], %2;\n" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
}
#endif

// ---- tensor-core MMA ---------------------------------------------------------------------------
#if defined(LLMACCEL_SIMT_EMU)  // the host emulator (csrc/emu/simt_emu.h, tests only)
inline void mma_16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1, __half) {
  emu::mma_m16n8k16(c, a, b0, b1, emu::WgKind::kF16K16);
}
inline void mma_16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1,
                      __nv_bfloat16) {
  emu::mma_m16n8k16(c, a, b0, b1, emu::WgKind::kBf16K16);
}
inline void cp_async16(void* smem, const void* gmem, int src_bytes) {
  emu::cp_async16(smem, gmem, src_bytes);
}
inline void cp_async_commit() {}
template <int N> void cp_async_wait() {}
#else
// D = A·B + D, A 16×16 (row), B 16×8 (col), fp32 accumulators.
__device__ __forceinline__ void mma_16816(float c[4], const uint32_t a[4], uint32_t b0,
                                          uint32_t b1, __half) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma_16816(float c[4], const uint32_t a[4], uint32_t b0,
                                          uint32_t b1, __nv_bfloat16) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// D = A·B + D, A 16×32 s8 (row), B 32×8 s8 (col), exact int32 accumulators.
__device__ __forceinline__ void mma_16832_s8(int c[4], const uint32_t a[4], uint32_t b0,
                                             uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- asynchronous copies -----------------------------------------------------------------------
// 16-byte asynchronous global→shared copy; src_bytes < 16 zero-fills the rest (0: all zeros).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
               "r"(src_bytes));
}
// No L2 cache-policy form of cp.async here: with ".L2::cache_hint" ptxas 13.0 gave one copy of the
// decode kernel's ring a memory descriptor in an odd uniform register pair (LDGSTS ... desc[UR1]),
// which the H100 stops on as "an illegal instruction" (compute-sanitizer pointed at it,
// 2026-11-22). The plain .cg copy already keeps weights out of L1.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
#endif  // LLMACCEL_SIMT_EMU

// ---- bulk copies (sm_90: the TMA engine, one thread per copy) -----------------------------------
// A bulk copy moves `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to
// shared memory without occupying the SM's load units or registers while in flight, and signals
// completion on an mbarrier through its transaction count. The guard keeps sm_80 builds
// compiling; callers only launch these paths on sm_90 devices.
#if defined(LLMACCEL_SIMT_EMU)  // the host emulator (csrc/emu/simt_emu.h, tests only)
inline uint32_t smem_addr(const void* p) { return emu::smem_offset(p); }
inline void mbar_init(uint64_t* bar, uint32_t count) { emu::mbar_init(bar, count); }
inline void mbar_expect_tx(uint64_t* bar, uint32_t bytes) { emu::mbar_expect_tx(bar, bytes); }
inline void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  emu::bulk_copy_g2s(dst, src, bytes, bar);
}
inline void mbar_arrive(uint64_t* bar) { emu::mbar_arrive(bar); }
inline void fence_proxy_async_smem() {}
inline void mbar_wait(uint64_t* bar, uint32_t parity) { emu::mbar_wait(bar, parity); }
inline void bulk_copy_g2s_multicast(void* dst, const void* src, uint32_t bytes, uint64_t* bar,
                                    uint16_t mask) {
  emu::bulk_copy_g2s_multicast(dst, src, bytes, bar, mask);
}
inline void mbar_arrive_cluster(uint64_t* bar, uint32_t rank) {
  emu::mbar_arrive_cluster(bar, rank);
}
inline void prefetch_l2(const void*) {}  // the emulator has no caches
inline void bulk_copy_weights(void* dst, const void* src, uint32_t bytes, uint64_t* bar, bool) {
  emu::bulk_copy_g2s(dst, src, bytes, bar);  // nor cache policies
}
inline void griddep_wait() {}  // the emulator runs kernels one after another
inline void griddep_launch_dependents() {}
#else
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count));
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
// Arms the barrier's current phase for `bytes` of copies (one arrival: the issuing thread).
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)),
               "r"(bytes)
               : "memory");
#endif
}
__device__ __forceinline__ void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes,
                                              uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::
          "r"(smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
#endif
}
// A bulk copy of weights, with evict_first its lines marked evict-first in L2
// (createpolicy.fractional, all of them): weights that a call streams once should not push the
// rest of a model's working set (activations, the KV cache, the next layer's inputs) out of L2.
// The hint is the bulk copy's own .L2::cache_hint operand, not cp.async's, whose descriptor form
// ptxas 13.0 once mis-assigned (above).
__device__ __forceinline__ void bulk_copy_weights(void* dst, const void* src, uint32_t bytes,
                                                  uint64_t* bar, bool evict_first) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (!evict_first) return bulk_copy_g2s(dst, src, bytes, bar);
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint "
      "[%0], [%1], %2, [%3], %4;\n" ::"r"(smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar)), "l"(policy)
      : "memory");
#endif
}
// One arrival on the barrier's current phase.
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}
// Starts moving the 128-byte line holding `p` into L2, so a later load waits for L2, not DRAM.
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}
// Orders this thread's earlier generic-proxy accesses to shared memory before later bulk copies
// into it (a slot is refilled only after the warp has read it).
__device__ __forceinline__ void fence_proxy_async_smem() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Waits until the barrier's phase with this parity has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
#endif
}
// Thread-block clusters (sm_90): a bulk copy whose bytes land at the same shared-memory offset in
// every CTA of `mask`, each completing its own mbarrier at bar's offset; and one arrival on the
// mbarrier at bar's offset in CTA `rank` of the cluster (the default .release.cta form, as
// CUTLASS's ClusterBarrier::arrive: .release.cluster costs a GPU-wide MEMBAR per arrival).
__device__ __forceinline__ void bulk_copy_g2s_multicast(void* dst, const void* src, uint32_t bytes,
                                                        uint64_t* bar, uint16_t mask) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster "
      "[%0], [%1], %2, [%3], %4;\n" ::"r"(smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar)), "h"(mask)
      : "memory");
#endif
}
__device__ __forceinline__ void mbar_arrive_cluster(uint64_t* bar, uint32_t rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n.reg .b32 remote;\n"
      "mapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}\n" ::"r"(smem_addr(bar)),
      "r"(rank)
      : "memory");
#endif
}
// Programmatic dependent launch (sm_90): a kernel launched with the programmatic-serialization
// attribute may start once every block of the kernel before it has called
// griddep_launch_dependents (or exited); griddep_wait then holds the calling thread until that
// kernel has completed and its writes are visible. Both are no-ops without such a launch.
__device__ __forceinline__ void griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void griddep_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
#endif  // LLMACCEL_SIMT_EMU

}  // namespace llmaccel::cuda
