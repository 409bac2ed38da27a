// The sm_90a instructions of the wgmma GEMMs (gemm_wgmma.cuh): shared-memory descriptors,
// wgmma in its int8 forms (N = 256, 128, 64) and 16-bit forms (N = 256 down to 16), the
// warpgroup fences, register budgets and the consumers' barrier; on the host, the SIMT
// emulator's synchronous stand-ins (csrc/emu/simt_emu.h). Included by gemm_wgmma.cuh, which
// defines LLMACCEL_WGMMA_BODY.
#pragma once
#include "cuda/cuda_common.cuh"

namespace llmaccel::cuda {

// Shared-memory matrix descriptor: K-major, 128-byte swizzle (layout type 1), 8-row groups 1024 B
// apart (stride byte offset), leading byte offset unused by swizzled K-major layouts (1 as
// CUTLASS writes it); the start address must sit in a 1024-byte-aligned swizzle atom. Adding
// 2 advances it 32 bytes: the next k32 (int8) or k16 (16-bit) step of the same rows.
__device__ __forceinline__ uint64_t wgmma_desc_sw128(uint32_t smem_byte_addr) {
  return uint64_t((smem_byte_addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) |
         (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

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
template <int N> __device__ __forceinline__ void wgmma_fence_acc(int (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(d[i])::"memory");
}
template <int N> __device__ __forceinline__ void wgmma_fence_acc(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#define LLMACCEL_ACC_OPERANDS                                                                     \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                      \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "             \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "             \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "             \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "             \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "             \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, "        \
  "%111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, "          \
  "%125, %126, %127}, "
#define LLMACCEL_ACC8(c, i)                                                                  \
  c(d[i]), c(d[i + 1]), c(d[i + 2]), c(d[i + 3]), c(d[i + 4]), c(d[i + 5]), c(d[i + 6]), \
      c(d[i + 7])
#define LLMACCEL_ACC128(c)                                                                 \
  LLMACCEL_ACC8(c, 0), LLMACCEL_ACC8(c, 8), LLMACCEL_ACC8(c, 16), LLMACCEL_ACC8(c, 24),   \
      LLMACCEL_ACC8(c, 32), LLMACCEL_ACC8(c, 40), LLMACCEL_ACC8(c, 48), LLMACCEL_ACC8(c, 56), \
      LLMACCEL_ACC8(c, 64), LLMACCEL_ACC8(c, 72), LLMACCEL_ACC8(c, 80), LLMACCEL_ACC8(c, 88), \
      LLMACCEL_ACC8(c, 96), LLMACCEL_ACC8(c, 104), LLMACCEL_ACC8(c, 112), LLMACCEL_ACC8(c, 120)
#define LLMACCEL_ACC_OPERANDS64                                                                   \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                      \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "             \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "             \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
#define LLMACCEL_ACC64(c)                                                                 \
  LLMACCEL_ACC8(c, 0), LLMACCEL_ACC8(c, 8), LLMACCEL_ACC8(c, 16), LLMACCEL_ACC8(c, 24),   \
      LLMACCEL_ACC8(c, 32), LLMACCEL_ACC8(c, 40), LLMACCEL_ACC8(c, 48), LLMACCEL_ACC8(c, 56)
#define LLMACCEL_R(v) "+r"(v)
#define LLMACCEL_F(v) "+f"(v)
// D(64×256, int32) += A(64×32, s8, registers) · B(256×32, s8, shared memory)ᵀ. The scale-d
// predicate is always 1 (accumulate): the accumulators start at zero.
__device__ __forceinline__ void wgmma_m64n256k32(int (&d)[128], const uint32_t (&a)[4],
                                                 uint64_t desc_b) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n256k32.s32.s8.s8 " LLMACCEL_ACC_OPERANDS
               "{%128, %129, %130, %131}, %132, p;\n}\n"
               : LLMACCEL_ACC128(LLMACCEL_R)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1));
}
// D(64×256, fp32) += A(64×16, registers) · B(256×16, shared memory, K-major)ᵀ in T.
#define LLMACCEL_WGMMA_K16(T, PTX_TYPES)                                                       \
  __device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], const uint32_t (&a)[4],   \
                                                   uint64_t desc_b, T) {                      \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"                                \
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32." PTX_TYPES " "                  \
                 LLMACCEL_ACC_OPERANDS "{%128, %129, %130, %131}, %132, p, 1, 1, 0;\n}\n"     \
                 : LLMACCEL_ACC128(LLMACCEL_F)                                                \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1));          \
  }
LLMACCEL_WGMMA_K16(__nv_bfloat16, "bf16.bf16")
LLMACCEL_WGMMA_K16(__half, "f16.f16")
#undef LLMACCEL_WGMMA_K16
// The N = 128 forms: x blocks of 128 rows, 64 accumulators per thread.
__device__ __forceinline__ void wgmma_m64n128k32(int (&d)[64], const uint32_t (&a)[4],
                                                 uint64_t desc_b) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 " LLMACCEL_ACC_OPERANDS64
               "{%64, %65, %66, %67}, %68, p;\n}\n"
               : LLMACCEL_ACC64(LLMACCEL_R)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1));
}
#define LLMACCEL_WGMMA_N128_K16(T, PTX_TYPES)                                                  \
  __device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], const uint32_t (&a)[4],    \
                                                   uint64_t desc_b, T) {                      \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                 \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPES " "                  \
                 LLMACCEL_ACC_OPERANDS64 "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"        \
                 : LLMACCEL_ACC64(LLMACCEL_F)                                                 \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1));          \
  }
LLMACCEL_WGMMA_N128_K16(__nv_bfloat16, "bf16.bf16")
LLMACCEL_WGMMA_N128_K16(__half, "f16.f16")
#undef LLMACCEL_WGMMA_N128_K16
// The N = 64 forms: x blocks of 64 rows (M ≤ 64), 32 accumulators per thread.
#define LLMACCEL_ACC_OPERANDS32                                                                   \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                      \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
#define LLMACCEL_ACC32(c) \
  LLMACCEL_ACC8(c, 0), LLMACCEL_ACC8(c, 8), LLMACCEL_ACC8(c, 16), LLMACCEL_ACC8(c, 24)
__device__ __forceinline__ void wgmma_m64n64k32(int (&d)[32], const uint32_t (&a)[4],
                                                uint64_t desc_b) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8 " LLMACCEL_ACC_OPERANDS32
               "{%32, %33, %34, %35}, %36, p;\n}\n"
               : LLMACCEL_ACC32(LLMACCEL_R)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1));
}
#define LLMACCEL_WGMMA_N64_K16(T, PTX_TYPES)                                                   \
  __device__ __forceinline__ void wgmma_m64n64k16(float (&d)[32], const uint32_t (&a)[4],     \
                                                  uint64_t desc_b, T) {                       \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                 \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPES " "                   \
                 LLMACCEL_ACC_OPERANDS32 "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"        \
                 : LLMACCEL_ACC32(LLMACCEL_F)                                                 \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1));          \
  }
LLMACCEL_WGMMA_N64_K16(__nv_bfloat16, "bf16.bf16")
LLMACCEL_WGMMA_N64_K16(__half, "f16.f16")
#undef LLMACCEL_WGMMA_N64_K16
// The N = 32 and 16 forms (16-bit only): x blocks of 32 or 16 rows (gemm_w4a16 at M ≤ 32), where
// the weights' bytes set the time and wider N would only multiply padding.
#define LLMACCEL_ACC16(c) LLMACCEL_ACC8(c, 0), LLMACCEL_ACC8(c, 8)
#define LLMACCEL_WGMMA_SMALL_N_K16(T, PTX_TYPES)                                               \
  __device__ __forceinline__ void wgmma_m64n32k16(float (&d)[16], const uint32_t (&a)[4],     \
                                                  uint64_t desc_b, T) {                       \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"                                 \
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32." PTX_TYPES " "                   \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "  \
                 "{%16, %17, %18, %19}, %20, p, 1, 1, 0;\n}\n"                                \
                 : LLMACCEL_ACC16(LLMACCEL_F)                                                 \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1));          \
  }                                                                                           \
  __device__ __forceinline__ void wgmma_m64n16k16(float (&d)[8], const uint32_t (&a)[4],      \
                                                  uint64_t desc_b, T) {                       \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"                                 \
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32." PTX_TYPES " "                   \
                 "{%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, p, 1, 1, 0;\n}\n" \
                 : LLMACCEL_ACC8(LLMACCEL_F, 0)                                               \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(1));          \
  }
LLMACCEL_WGMMA_SMALL_N_K16(__nv_bfloat16, "bf16.bf16")
LLMACCEL_WGMMA_SMALL_N_K16(__half, "f16.f16")
#undef LLMACCEL_WGMMA_SMALL_N_K16
#undef LLMACCEL_ACC16
#undef LLMACCEL_ACC_OPERANDS32
#undef LLMACCEL_ACC32
#undef LLMACCEL_ACC_OPERANDS64
#undef LLMACCEL_ACC64
#undef LLMACCEL_ACC_OPERANDS
#undef LLMACCEL_ACC8
#undef LLMACCEL_ACC128
#undef LLMACCEL_R
#undef LLMACCEL_F

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
#elif defined(LLMACCEL_SIMT_EMU)  // synchronous stand-ins (csrc/emu/simt_emu.h)
inline void wgmma_fence() {}
inline void wgmma_commit() { emu::wgmma_commit(); }
template <int N> void wgmma_wait() { emu::wgmma_wait(N); }
template <class Acc, int N> void wgmma_fence_acc(Acc (&)[N]) {}
inline void wgmma_m64n256k32(int (&d)[128], const uint32_t (&a)[4], uint64_t desc_b) {
  emu::wgmma(d, a, desc_b, emu::WgKind::kS8K32);
}
inline void wgmma_m64n128k32(int (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
  emu::wgmma(d, a, desc_b, emu::WgKind::kS8K32);
}
inline void wgmma_m64n64k32(int (&d)[32], const uint32_t (&a)[4], uint64_t desc_b) {
  emu::wgmma(d, a, desc_b, emu::WgKind::kS8K32);
}
inline emu::WgKind wgmma_kind(__nv_bfloat16) { return emu::WgKind::kBf16K16; }
inline emu::WgKind wgmma_kind(__half) { return emu::WgKind::kF16K16; }
template <class T>
void wgmma_m64n256k16(float (&d)[128], const uint32_t (&a)[4], uint64_t desc_b, T t) {
  emu::wgmma(d, a, desc_b, wgmma_kind(t));
}
template <class T>
void wgmma_m64n128k16(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b, T t) {
  emu::wgmma(d, a, desc_b, wgmma_kind(t));
}
template <class T>
void wgmma_m64n64k16(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b, T t) {
  emu::wgmma(d, a, desc_b, wgmma_kind(t));
}
template <class T>
void wgmma_m64n32k16(float (&d)[16], const uint32_t (&a)[4], uint64_t desc_b, T t) {
  emu::wgmma(d, a, desc_b, wgmma_kind(t));
}
template <class T>
void wgmma_m64n16k16(float (&d)[8], const uint32_t (&a)[4], uint64_t desc_b, T t) {
  emu::wgmma(d, a, desc_b, wgmma_kind(t));
}
template <int R> void setmaxnreg_dec() {}
template <int R> void setmaxnreg_inc() {}
inline void consumer_barrier() { emu::named_barrier(1, 256); }
#endif  // __CUDA_ARCH_FEAT_SM90_ALL

#if defined(LLMACCEL_WGMMA_BODY)
// One m64nNk32 (int8) or m64nNk16 (16-bit, in T) by the accumulator count N / 2.
template <int kA>
__device__ __forceinline__ void wgmma_mma(int (&d)[kA], const uint32_t (&a)[4], uint64_t b) {
  static_assert(kA == 128 || kA == 64 || kA == 32, "int8 wgmma: N = 256, 128 or 64");
  if constexpr (kA == 128) wgmma_m64n256k32(d, a, b);
  else if constexpr (kA == 64) wgmma_m64n128k32(d, a, b);
  else wgmma_m64n64k32(d, a, b);
}
template <int kA, class T>
__device__ __forceinline__ void wgmma_mma(float (&d)[kA], const uint32_t (&a)[4], uint64_t b,
                                          T t) {
  static_assert(kA == 128 || kA == 64 || kA == 32 || kA == 16 || kA == 8,
                "16-bit wgmma: N = 256, 128, 64, 32 or 16");
  if constexpr (kA == 128) wgmma_m64n256k16(d, a, b, t);
  else if constexpr (kA == 64) wgmma_m64n128k16(d, a, b, t);
  else if constexpr (kA == 32) wgmma_m64n64k16(d, a, b, t);
  else if constexpr (kA == 16) wgmma_m64n32k16(d, a, b, t);
  else wgmma_m64n16k16(d, a, b, t);
}
#endif

}  // namespace llmaccel::cuda
