// The skeleton shared by the sm_90a warpgroup-MMA GEMMs (gemm_w8a8_wgmma.cuh,
// gemm_w4a16_wgmma.cuh): the weights are wgmma's A operand from registers, read from their
// existing int*_cuda_mma16x32 layout, and x is B from shared memory, streamed in from the
// swizzled image of gemm_wgmma_xtiles.h.
//
// OPT-IN AND NOT YET RUN ON A GPU (written 2026-11-22 without one).
//
// Why the weights are A, from registers: wgmma takes A from registers or shared memory but B
// only from shared memory in its canonical (swizzled) layouts. The int8_cuda_mma16x32 and
// int4_cuda_mma16x32 layouts hold, per 16-row tile and 32-column chunk, each lane's bytes in the
// order of an m16 A fragment (rows g, g+8; g = lane/4), which is also the per-warp slice of
// wgmma's m64 register fragment (CUTLASS's ALayout_64x32 for 8-bit, ALayout_64x16 for 16-bit),
// so the weights need no second copy in another layout. The MMA's M is then the output feature
// and its N the x row: the accumulators come out transposed, which the epilogue undoes.
// tests/ops/test_wgmma_layout.py checks the layouts on the CPU against CUTLASS's published
// wgmma layouts and emulates the kernels' loops to the exact product; test_wgmma_emu.py runs
// this very source on the CPU under the SIMT emulator (csrc/emu/simt_emu.h) against the
// reference.
//
// Why x comes pre-laid out: in the swizzled image a stage of x is one plain bulk copy: no tensor
// map (no driver API), no address arithmetic in the producer, and both the copy and wgmma touch
// the bytes through the async proxy, with no proxy fence between them.
//
// Block: 3 warpgroups. Warpgroup 2 is the producer (one thread issues the copies into a 4-stage
// ring of full/empty mbarriers, the pattern of the K-slice decode kernel); warpgroups 0 and 1 each
// own 64 outputs × all 256 x rows of the block, 128 accumulators per thread (m64n256). Each waits
// for its own group of wgmmas per stage, while the other's keep the tensor cores busy. The
// epilogue applies the scales and bias in fp32 and goes through shared memory, so that global
// stores are whole 16-byte row pieces.
//
// Blocks are rastered in groups of kWgGroup weight blocks: a wave of 132 blocks touches ~16
// weight blocks (8 MB of int8 at K = 4096) and ~8 x blocks instead of every weight block for 1-2
// x blocks, so the weights are read from DRAM once per group of x blocks, not once per x block.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_wgmma_xtiles.h"

// The kernel bodies compile for sm_90a, and on the host for the SIMT emulator's tests.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || defined(LLMACCEL_SIMT_EMU)
#define LLMACCEL_WGMMA_BODY 1
#endif

namespace llmaccel::cuda {

constexpr int kWgWRows = 128;    // outputs per block: 2 consumer warpgroups × 64
constexpr int kWgWTiles = kWgWRows / 16;
constexpr int kWgSmemMax = 232448;  // dynamic shared memory one H100 block may opt into
constexpr int kWgThreads = 384;
constexpr int kWgGroup = 16;  // weight blocks per raster group (LLMACCEL_WGMMA_GROUP overrides)
constexpr int kWgPitch = kWgWRows + 8;  // epilogue staging row, elements (272 B: no conflicts)

// A kernel's shape: per weight tile and stage kChunks chunks of kChunkBytes; kN x rows per block
// (the wgmma N: 256; 128 where 256-row blocks would leave SMs idle; 64 for M ≤ 64, where the
// weights' bytes, not the MMAs, set the time; a smaller block reads a part of an image block).
template <int kChunks_, int kChunkBytes_, int kN_> struct WgmmaCfg {
  static constexpr int kChunks = kChunks_, kChunkBytes = kChunkBytes_, kN = kN_;
  static_assert(kN == 64 || kN == 128 || kN == 256, "wgmma N: 64, 128 or 256 x rows");
  static constexpr int kWStage = kWgWTiles * kChunks * kChunkBytes;
  static constexpr int kXStage = kN * kWgRowBytes;
  static constexpr int kAcc = kN / 2;  // accumulators per thread (m64nN)
  static constexpr int kStaging = kN * kWgPitch * 2;  // the epilogue's 16-bit y tile
  // Shared memory: 1024 bytes of alignment slack (the swizzle is a function of address bits
  // 4-9, so each x stage starts on 1024 bytes), the x ring, the weight ring, the epilogue's
  // tile (apart from the ring, which already fills with the next tile's stages), the barriers.
  // 4 stages where they fit, else 3 (int8 with 256-row blocks: 48 KB stages).
  static constexpr int smem_for(int stages) {
    return 1024 + stages * (kXStage + kWStage) + kStaging + 2 * stages * 8;
  }
  static constexpr int kStages = smem_for(4) <= kWgSmemMax ? 4 : 3;
  static constexpr int kSmem = smem_for(kStages);
  static_assert(kSmem <= kWgSmemMax, "shared memory");
};

struct WgmmaParams {
  const int8_t* xt;      // x's image (gemm_wgmma_xtiles.h)
  const float* xscale;   // w8a8: one scale per x row
  const uint8_t* w;      // bytes of the int8/int4_cuda_mma16x32 layout
  const float* scales;   // w8a8: per output; w4a16: (n_tiles, n_groups, 16)
  const uint8_t* zeros;  // w4a16 zero points in the scales' layout, or null (symmetric)
  const float* bias;
  void* out;
  int64_t ldo;
  int m, n, n_tiles, nk, kt_count, w_blocks, x_blocks, group, n_groups;
  int raster_group;  // weight blocks per raster group
  int x_rows;        // kN of the launched kernel
  int tiles;         // w_blocks × x_blocks: a block takes tiles blockIdx.x, + gridDim.x, ...
  bool vec_out;  // out rows 16-byte aligned: whole 8-element pieces per store
};

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
inline void wgmma_commit() {}
template <int N> void wgmma_wait() {}
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
template <int R> void setmaxnreg_dec() {}
template <int R> void setmaxnreg_inc() {}
inline void consumer_barrier() { emu::named_barrier(1, 256); }
#endif  // __CUDA_ARCH_FEAT_SM90_ALL

#if defined(LLMACCEL_WGMMA_BODY)
// One m64nNk32 (int8) or m64nNk16 (16-bit) by the accumulator count N / 2.
__device__ __forceinline__ void wgmma_mma(int (&d)[128], const uint32_t (&a)[4], uint64_t b) {
  wgmma_m64n256k32(d, a, b);
}
__device__ __forceinline__ void wgmma_mma(int (&d)[64], const uint32_t (&a)[4], uint64_t b) {
  wgmma_m64n128k32(d, a, b);
}
__device__ __forceinline__ void wgmma_mma(int (&d)[32], const uint32_t (&a)[4], uint64_t b) {
  wgmma_m64n64k32(d, a, b);
}
template <class T>
__device__ __forceinline__ void wgmma_mma(float (&d)[128], const uint32_t (&a)[4], uint64_t b,
                                          T t) {
  wgmma_m64n256k16(d, a, b, t);
}
template <class T>
__device__ __forceinline__ void wgmma_mma(float (&d)[64], const uint32_t (&a)[4], uint64_t b,
                                          T t) {
  wgmma_m64n128k16(d, a, b, t);
}
template <class T>
__device__ __forceinline__ void wgmma_mma(float (&d)[32], const uint32_t (&a)[4], uint64_t b,
                                          T t) {
  wgmma_m64n64k16(d, a, b, t);
}
#endif

// The block's shared memory, carved out of the dynamic allocation.
template <class Cfg> struct WgmmaSmem {
  uint8_t* xs;       // Cfg::kStages × Cfg::kXStage, 1024-aligned
  uint8_t* ws;       // Cfg::kStages × Cfg::kWStage
  uint8_t* staging;  // Cfg::kStaging
  uint64_t* full;
  uint64_t* empty;
  __device__ explicit WgmmaSmem(uint8_t* raw) {
    xs = raw + ((1024 - (smem_addr(raw) & 1023)) & 1023);
    ws = xs + Cfg::kStages * Cfg::kXStage;
    staging = ws + Cfg::kStages * Cfg::kWStage;
    full = reinterpret_cast<uint64_t*>(staging + Cfg::kStaging);
    empty = full + Cfg::kStages;
  }
};

// Block index → (weight block, x block), grouped so that a wave shares few weight blocks.
__device__ __forceinline__ void wgmma_block_coords(const WgmmaParams& p, int idx, int& wb,
                                                   int& xb) {
  const int per_group = p.raster_group * p.x_blocks;
  const int group = idx / per_group, first = group * p.raster_group;
  const int size = min(p.raster_group, p.w_blocks - first), local = idx - group * per_group;
  wb = first + local % size;
  xb = local / size;
}

// The producer thread: for each of the block's tiles, per k block one bulk copy of its kN rows of
// x (all or half of an image block) and, per weight tile, one run of kChunks chunks of
// kChunkBytes (fewer in the last k block). The ring runs on across tiles, so the next tile's
// first stages land while the consumers finish the last one. Tiles past n_tiles and chunks past
// nk are never copied: their stale bytes meet x columns that are zero (past k) or feed outputs
// never stored (past n).
template <class Cfg>
__device__ void wgmma_produce(const WgmmaParams& p, const WgmmaSmem<Cfg>& sm) {
  constexpr int kChunks = Cfg::kChunks, kChunkBytes = Cfg::kChunkBytes, kS = Cfg::kStages;
  constexpr int kWStage = Cfg::kWStage, kXStage = Cfg::kXStage;
  int it = 0;  // stages issued, over all of this block's tiles
  for (int tile = blockIdx.x; tile < p.tiles; tile += gridDim.x) {
    int wb, xb;
    wgmma_block_coords(p, tile, wb, xb);
    const int tiles = min(kWgWTiles, p.n_tiles - wb * kWgWTiles);
    const int64_t row0 = int64_t(xb) * Cfg::kN;  // first x row: image block row0 / 256
    const int8_t* xsrc = p.xt + (row0 / kWgXRows) * p.kt_count * (kWgXRows * kWgRowBytes) +
                         (row0 % kWgXRows) * kWgRowBytes;
    for (int kt = 0; kt < p.kt_count; ++kt, ++it) {
      const int s = it % kS;
      if (it >= kS) {
        mbar_wait(&sm.empty[s], ((it / kS) - 1) & 1);
        fence_proxy_async_smem();  // the consumers' reads of the slot before the new copies
      }
      const int chunks = min(kChunks, p.nk - kt * kChunks);
      mbar_expect_tx(&sm.full[s], kXStage + tiles * chunks * kChunkBytes);
      bulk_copy_g2s(sm.xs + s * kXStage, xsrc + int64_t(kt) * (kWgXRows * kWgRowBytes), kXStage,
                    &sm.full[s]);
      for (int t = 0; t < tiles; ++t)
        bulk_copy_g2s(sm.ws + s * kWStage + t * kChunks * kChunkBytes,
                      p.w + (int64_t(wb * kWgWTiles + t) * p.nk + kt * kChunks) * kChunkBytes,
                      chunks * kChunkBytes, &sm.full[s]);
    }
  }
}

// Zeroed accumulators, tied to this point before the first wgmma reads them.
template <class Acc, int N> __device__ __forceinline__ void wgmma_zero_acc(Acc (&acc)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) acc[i] = Acc(0);
#if defined(LLMACCEL_WGMMA_BODY)
  wgmma_fence_acc(acc);
#endif
}

// Start of a block: the barriers, then the producer warpgroup's whole part (true there: the
// kernel returns) or the consumers' register budget (false: they go on to the main loop).
template <class Cfg>
__device__ bool wgmma_block_start(const WgmmaParams& p, const WgmmaSmem<Cfg>& sm) {
#if defined(LLMACCEL_WGMMA_BODY)
  if (threadIdx.x == 0) {
    for (int s = 0; s < Cfg::kStages; ++s) {
      mbar_init(&sm.full[s], 1);   // the producer's arrive.expect_tx; the copies complete it
      mbar_init(&sm.empty[s], 8);  // one arrival per consumer warp
    }
  }
  __syncthreads();
  if (threadIdx.x >= 256) {
    setmaxnreg_dec<40>();
    if (threadIdx.x == 256) wgmma_produce<Cfg>(p, sm);
    return true;
  }
  setmaxnreg_inc<232>();
#endif
  return false;
}

// The end of a consumer warp's stage: its MMAs have read the slot (and the A registers are
// free again) once the group completes; then one arrival per warp hands the slot back.
__device__ __forceinline__ void wgmma_finish_stage(uint64_t* empty, int lane) {
#if defined(LLMACCEL_WGMMA_BODY)
  wgmma_wait<0>();
  __syncwarp();
  if (lane == 0) mbar_arrive(empty);
#endif
}

// Epilogue of a consumer thread (threads 0-255). acc[4i + e] is (weight row g, x row
// 8i + 2t + e) of its warp's 16 rows, acc[4i + 2 + e] the same x rows for weight row g + 8
// (CLayout_64xN). y = acc · (xscale[m] · scale[n]) + bias[n] (kW8A8; else acc + bias[n]: the
// int4 scales are already in the weights), rounded to T, staged as y[x row][output] in the
// staging tile (the first barrier: every consumer has stored the previous tile from it) and
// stored as 16-byte row pieces.
template <class T, bool kW8A8, class Acc, int kA>
__device__ void wgmma_epilogue(const WgmmaParams& p, const Acc (&acc)[kA], int wb, int xb,
                               uint8_t* smem) {
  constexpr int kN = 2 * kA;  // x rows of the block
#if defined(LLMACCEL_WGMMA_BODY)
  using A = Act16<T>;
  const int tid = threadIdx.x, lane = tid & 31, wwarp = tid >> 5;
  consumer_barrier();
  T* stage = reinterpret_cast<T*>(smem);
  const int g = lane >> 2, t = lane & 3;
  const int nl = wwarp * 16 + g, n0 = wb * kWgWRows + nl;
  const auto per_output = [&](const float* v, int n, float dflt) {
    return v && n < p.n ? __ldg(v + n) : dflt;
  };
  const float sw0 = per_output(kW8A8 ? p.scales : nullptr, n0, 1.f);
  const float sw1 = per_output(kW8A8 ? p.scales : nullptr, n0 + 8, 1.f);
  const float b0 = per_output(p.bias, n0, 0.f), b1 = per_output(p.bias, n0 + 8, 0.f);
#pragma unroll
  for (int i = 0; i < kN / 8; ++i) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int ml = 8 * i + 2 * t + e, m = xb * kN + ml;
      const float sx = kW8A8 && m < p.m ? __ldg(p.xscale + m) : 1.f;
      stage[ml * kWgPitch + nl] = A::from_float(float(acc[4 * i + e]) * (sx * sw0) + b0);
      stage[ml * kWgPitch + nl + 8] = A::from_float(float(acc[4 * i + 2 + e]) * (sx * sw1) + b1);
    }
  }
  consumer_barrier();
  T* out = static_cast<T*>(p.out);
#pragma unroll 4
  for (int it = 0; it < kN * (kWgWRows / 8) / 256; ++it) {
    const int idx = it * 256 + tid, row = idx >> 4, piece = idx & 15;
    const int m = xb * kN + row, n = wb * kWgWRows + piece * 8;
    if (m >= p.m || n >= p.n) continue;
    const T* src = stage + row * kWgPitch + piece * 8;
    T* dst = out + int64_t(m) * p.ldo + n;
    if (p.vec_out && n + 8 <= p.n) {
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    } else {
      for (int e = 0; e < 8 && n + e < p.n; ++e) dst[e] = src[e];
    }
  }
#endif
}

// Whether the current device runs the sm_90a build of `kernel`: arch-specific (sm_90a) code runs
// on compute capability 9.0 only, and elsewhere the kernel would be the empty body of the other
// targets.
template <class K> bool wgmma_built_for_device(K kernel) {
  int dev = 0, major = 0, minor = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  cudaFuncAttributes a{};
  const bool ok = major == 9 && minor == 0 && cudaFuncGetAttributes(&a, kernel) == cudaSuccess &&
                  a.binaryVersion == 90;
  cudaGetLastError();  // a failed query must not linger as the next launch's error
  return ok;
}

// Host-side checks and grid shared by both launchers.
inline void wgmma_check_common(const char* op, int64_t m, int64_t n, int64_t n_tiles, int64_t nk,
                               int64_t ldo, const void* xt, const void* w, const void* out) {
  require(m >= 1 && n >= 1 && nk >= 1, op, "m, n and k must be positive");
  require(n <= n_tiles * 16 && n > n_tiles * 16 - 16, op, "n does not match the weight's tiles");
  require(ldo >= n, op, "ldo must be >= n");
  require(m <= (int64_t(1) << 31) - kWgXRows && n_tiles * nk < (int64_t(1) << 31), op,
          "too large");
  require(xt && w && out, op, "null pointer");
  require(reinterpret_cast<uintptr_t>(xt) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0,
          op, "x tiles and weights must be 16-byte aligned (bulk copies)");
  const int64_t blocks = (n_tiles + kWgWTiles - 1) / kWgWTiles * ((m + 63) / 64);
  require(blocks < (int64_t(1) << 31), op, "too many blocks");
}
// x rows per block: 64 for M ≤ 64; else 256 unless that leaves the grid under two waves of
// `sms` blocks (then 128, twice the blocks). LLMACCEL_WGMMA_N=64|128|256 forces one (a
// benchmark knob, read per call).
inline int wgmma_x_rows(int64_t m, int64_t n_tiles, int sms) {
  const char* e = std::getenv("LLMACCEL_WGMMA_N");
  if (e && std::strcmp(e, "64") == 0) return 64;
  if (e && std::strcmp(e, "128") == 0) return 128;
  if (e && std::strcmp(e, "256") == 0) return 256;
  if (m <= 64) return 64;
  const int64_t blocks = (n_tiles + kWgWTiles - 1) / kWgWTiles * ((m + 255) / 256);
  return blocks < 2 * int64_t(sms) ? 128 : 256;
}
// Blocks to launch: one per SM, each looping over tiles (persistent), unless there are fewer
// tiles; LLMACCEL_WGMMA_PERSISTENT=0 launches one block per tile (a benchmark knob).
inline int wgmma_launch_blocks(const WgmmaParams& p, int sms) {
  const char* e = std::getenv("LLMACCEL_WGMMA_PERSISTENT");
  if (e && std::strcmp(e, "0") == 0) return p.tiles;
  return std::max(1, std::min(p.tiles, sms));
}
inline void wgmma_grid(WgmmaParams& p, int x_rows) {
  p.x_rows = x_rows;
  p.w_blocks = (p.n_tiles + kWgWTiles - 1) / kWgWTiles;
  p.x_blocks = (p.m + x_rows - 1) / x_rows;
  p.tiles = p.w_blocks * p.x_blocks;
  p.vec_out = reinterpret_cast<uintptr_t>(p.out) % 16 == 0 && p.ldo % 8 == 0;
  // LLMACCEL_WGMMA_GROUP: a benchmark knob, read per call (a whole positive number, else 16).
  const char* e = std::getenv("LLMACCEL_WGMMA_GROUP");
  char* end = nullptr;
  const long v = e && *e ? std::strtol(e, &end, 10) : 0;
  p.raster_group = end && *end == '\0' && v > 0 && v < (1 << 20) ? int(v) : kWgGroup;
}

}  // namespace llmaccel::cuda
