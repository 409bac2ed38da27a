// The skeleton shared by the sm_90a warpgroup-MMA GEMMs (gemm_w8a8_wgmma.cuh,
// gemm_w4a16_wgmma.cuh): the weights are wgmma's A operand from registers, read from their
// existing int*_cuda_mma16x32 layout, and x is B from shared memory, streamed in from the
// swizzled image of gemm_wgmma_xtiles.h.
//
// Written 2026-11-22/23 without a GPU and first run on an H100 on 2026-11-23: the default path of
// gemm_w8a8 above M = 32 and of gemm_w4a16 / gemm_w8a16 at M = 17-512 (ops/cuda.py), figures in
// bench/gpu/NOTES.md.
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
// Block: 3 warpgroups. Warpgroup 2 is the producer (one warp's lanes issue the copies into a ring
// of 3-16 stages of full/empty mbarriers, the pattern of the K-slice decode kernel; benchmark
// knobs spread them over up to three warps, WgmmaParams::x_warp, w_warps; gemm_wgmma_produce.cuh
// has the producer and the block's start); warpgroups 0
// and 1 each own 64 outputs × all kN x rows of the block (kN / 2 accumulators per thread,
// m64nN). Each keeps one group of wgmmas in flight while it loads the next stage's fragments
// (wgmma_mainloop), and the other warpgroup's keep the tensor cores busy meanwhile. The
// epilogue applies the scales and bias in fp32 and goes through shared memory, so that global
// stores are whole 16-byte row pieces (the consumers' loop over work items, the epilogue and
// the K split's reduction: gemm_wgmma_consume.cuh). Opt-in: clusters of 2 blocks sharing each
// x stage (multicast, WgmmaParams::cluster).
//
// Blocks are rastered in groups of kWgGroup weight blocks: a wave of 132 blocks touches ~16
// weight blocks (8 MB of int8 at K = 4096) and ~8 x blocks instead of every weight block for 1-2
// x blocks, so the weights are read from DRAM once per group of x blocks, not once per x block.
#pragma once
#if !defined(LLMACCEL_SIMT_EMU)  // the emulator has its own (csrc/emu/simt_emu.h)
#include <cooperative_groups.h>
#endif

#include <cuda.h>  // CUtensorMap (the x tensor map's type; no driver call here)

#include <type_traits>

#include "cuda/cuda_common.cuh"
#include "cuda/kernel_trace.cuh"
#include "gemm/gemm_wgmma_xtiles.h"

// The kernel bodies compile for sm_90a, and on the host for the SIMT emulator's tests.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || defined(LLMACCEL_SIMT_EMU)
#define LLMACCEL_WGMMA_BODY 1
#endif
#include "gemm/gemm_wgmma_ops.cuh"  // the instructions and their emulated stand-ins

namespace llmaccel::cuda {

constexpr int kWgWRows = 128;    // outputs per block: 2 consumer warpgroups × 64
constexpr int kWgWTiles = kWgWRows / 16;
constexpr int kWgSmemMax = 232448;  // dynamic shared memory one H100 block may opt into
constexpr int kWgThreads = 384;
// Register budgets per role (setmaxnreg): the block starts with 65536 / 384 rounded down to 8 =
// 168 per thread (__launch_bounds__(384, 1)), and the consumers' increase only completes once the
// producer's decrease has put enough back into the block's pool: a larger sum would hang every
// block. wgmma_built_for_device checks the compiled kernel's count against the same sum. 56 for
// the producer thread (its cluster and prefetch bookkeeping spilled at 40), 224 for the
// consumers (ptxas: no spills in any variant, 128 fp32 accumulators included).
constexpr int kWgProducerRegs = 56, kWgConsumerRegs = 224;
constexpr int kWgRegPool = 2 * 128 * kWgConsumerRegs + 128 * kWgProducerRegs;
static_assert(kWgRegPool <= kWgThreads * (65536 / kWgThreads / 8 * 8),
              "setmaxnreg budgets exceed the registers the block launches with");

constexpr int kWgGroup = 16;  // weight blocks per raster group (LLMACCEL_WGMMA_GROUP overrides)
constexpr int kWgPitch = kWgWRows + 8;  // epilogue staging row, elements (272 B: no conflicts)

// LLMACCEL_WGMMA_SMALL_BPS=2: the streaming blocks (≤ 64 x rows) two per SM instead of one,
// where two fit (a compile-time experiment, built only by bench/gpu/trace_probe.cu's "bps2"
// variant and the emulator's tests; written 2026-11-23 without a GPU). Why: at M ≤ 64 the 16-bit
// kernels look latency-bound in their consumers at one block per SM (ncu, 2026-11-23: IPC 1.33
// of 4, a consumer warp issuing every 6.8 cycles, 2 consumer warps per scheduler), where the
// K-slice decode kernel streams the same int4 bytes in half the time with 32 consumer warps per
// SM. Two blocks give each scheduler 4 consumer warps. What it costs: 88 registers for a
// consumer instead of 224 (ptxas: no spills, 16-32 accumulators at ≤ 64 rows), and half an SM's
// shared memory for a block: an 8-stage ring (two copy groups) at least, and at 64 rows the
// epilogue staged in passes of 32 rows. That fits int4 weights at 16-64 rows and int8 weights
// (twice the bytes per stage) at 16-32; gemm_w8a8 (128-column stages) stays at one.
#ifndef LLMACCEL_WGMMA_SMALL_BPS
#define LLMACCEL_WGMMA_SMALL_BPS 1
#endif
static_assert(LLMACCEL_WGMMA_SMALL_BPS == 1 || LLMACCEL_WGMMA_SMALL_BPS == 2, "1 or 2 blocks");
constexpr int kWgSmemHalf = 233472 / 2 - 1024;  // half the SM's 228 KB, less a block's 1 KB
// Blocks per SM of a kernel with x_rows-row blocks and w_stage weight bytes per stage, and the
// x rows its epilogue stages at a time.
__host__ __device__ constexpr int wgmma_blocks_per_sm(int x_rows, int w_stage) {
  const int staging = (x_rows < 32 ? x_rows : 32) * kWgPitch * 2;
  return LLMACCEL_WGMMA_SMALL_BPS == 2 && x_rows <= 64 &&
                 1024 + 8 * (x_rows * kWgRowBytes + w_stage + 16) + staging <= kWgSmemHalf
             ? 2
             : 1;
}
__host__ __device__ constexpr int wgmma_staging_rows(int x_rows, int w_stage) {
  return wgmma_blocks_per_sm(x_rows, w_stage) == 2 && x_rows > 32 ? 32 : x_rows;
}
// Registers per role for `bps` blocks per SM: the launch gives 65536 / (384 · bps) rounded down
// to 8 per thread (168, or 80 at two blocks); the producer keeps 56, the consumers get the rest
// (224, or 88).
__host__ __device__ constexpr int wgmma_launch_regs(int bps) {
  return 65536 / (kWgThreads * bps) / 8 * 8;
}
__host__ __device__ constexpr int wgmma_consumer_regs(int bps) {
  return bps == 1 ? kWgConsumerRegs
                  : (wgmma_launch_regs(bps) * kWgThreads - 128 * kWgProducerRegs) / 256 / 8 * 8;
}
__host__ __device__ constexpr int wgmma_reg_pool(int bps) {
  return 256 * wgmma_consumer_regs(bps) + 128 * kWgProducerRegs;
}
static_assert(wgmma_reg_pool(2) <= kWgThreads * wgmma_launch_regs(2), "two blocks' budgets");

// Stages per weight copy: blocks of ≤ 64 x rows stream weights, and one bulk copy costs its
// issuing thread ~200-300 ns whatever its size up to ~4 KB (bench/gpu/bulk_copy_probe.cu on the
// H100: 8 copies of 512 B per 4 KB stage from one thread stream 365 GB/s over 132 SMs, from 8
// lanes 950, 8 copies of 2 KB from 8 lanes 2840, the HBM peak). So each tile's weights come
// for 4 stages at once, one lane per tile. Larger blocks spend longer per stage on MMAs and
// copy one stage at a time.
__host__ __device__ constexpr int wgmma_stages_per_copy(int x_rows) { return x_rows <= 64 ? 4 : 1; }

// A kernel's shape: per weight tile and stage kChunks chunks of kChunkBytes; kN x rows per block
// (the wgmma N: 256; 128 where 256-row blocks would leave SMs idle; 64, 32 or 16 for small M,
// where the weights' bytes, not the MMAs, set the time; a smaller block reads a part of an
// image block).
// kGroupScales: the consumers load group scales (and zero points) per stage (gemm_w4a16), which
// the producer prefetches into L2 with each copy group's weights.
// kStagingRows: x rows the epilogue stages at a time (all kN, or passes of fewer): a smaller
// staging tile leaves room for one more ring stage (gemm_w8a8's 256-row blocks: 4 stages of
// 48 KB with passes of 64 rows, 3 with the whole tile).
template <int kChunks_, int kChunkBytes_, int kN_, bool kGroupScales_ = false,
          int kStagingRows_ = wgmma_staging_rows(kN_, kWgWTiles * kChunks_ * kChunkBytes_)>
struct WgmmaCfg {
  static constexpr int kChunks = kChunks_, kChunkBytes = kChunkBytes_, kN = kN_;
  static constexpr bool kGroupScales = kGroupScales_;
  static_assert(kN == 16 || kN == 32 || kN == 64 || kN == 128 || kN == 256,
                "wgmma N: 16, 32, 64, 128 or 256 x rows");
  static constexpr int kStagingRows = kStagingRows_;
  static_assert(kStagingRows % 16 == 0 && kN % kStagingRows == 0, "whole staging passes");
  static constexpr int kWStage = kWgWTiles * kChunks * kChunkBytes;
  static constexpr int kXStage = kN * kWgRowBytes;
  static constexpr int kAcc = kN / 2;  // accumulators per thread (m64nN)
  static constexpr int kStaging = kStagingRows * kWgPitch * 2;  // the epilogue's 16-bit y tile
  // Shared memory: 1024 bytes of alignment slack (the swizzle is a function of address bits
  // 4-9, so each x stage starts on 1024 bytes), the x ring, the weight ring, the epilogue's
  // tile (apart from the ring, which already fills with the next tile's stages), the barriers.
  // Large blocks (the MMAs set the time): 4 stages where they fit, else 3 (256-row blocks of
  // int8 x, 48 KB stages, or of w8a16, 40 KB). Blocks of ≤ 64 rows stream weights: the ring is
  // what keeps bytes in flight (3 TB/s × ~1 µs of latency is ~23 KB per SM, and the K-slice
  // decode kernel measured best with ~96 KB), so 16 stages where they fit, else 8 (a power of
  // two: the ring's index and parity stay shifts).
  static constexpr int smem_for(int stages) {
    return 1024 + stages * (kXStage + kWStage) + kStaging + 2 * stages * 8;
  }
  // Blocks per SM (wgmma_blocks_per_sm), each with its share of the SM's 228 KB less the 1 KB
  // the hardware reserves per block.
  static constexpr int kBlocksPerSm = wgmma_blocks_per_sm(kN, kWStage);
  static constexpr int kSmemBudget = kBlocksPerSm == 1 ? kWgSmemMax : kWgSmemHalf;
  static constexpr int deepest(int most) {  // halving from `most` while it does not fit, then 3
    int s = most;
    while (s > 4 && smem_for(s) > kSmemBudget) s /= 2;
    return smem_for(s) <= kSmemBudget ? s : 3;
  }
  static constexpr int kStages = deepest(kN <= 64 ? 16 : 4);
  static constexpr int kSmem = smem_for(kStages);
  static_assert(kSmem <= kSmemBudget, "shared memory");
  static constexpr int kConsumerRegs = wgmma_consumer_regs(kBlocksPerSm);
  static constexpr int kRegPool = wgmma_reg_pool(kBlocksPerSm);
  // The weight ring holds groups of kG stages (wgmma_stages_per_copy), each tile's kG stages
  // contiguous (one copy): byte offsets of tile t's run and of stage slot s's piece of it.
  static constexpr int kG = wgmma_stages_per_copy(kN);
  // whole groups, and at least two: the producer refills a group once its last slot is back,
  // which with one group would wait for a stage the consumers cannot reach
  static_assert(kStages % kG == 0 && kStages >= 2 * kG, "two whole copy groups in the ring");
  static constexpr int kWRun = kG * kChunks * kChunkBytes;
  __host__ __device__ static constexpr int w_tile(int t) { return t * kWRun; }
  __host__ __device__ static constexpr int w_stage(unsigned s) {  // unsigned: shifts and masks
    return int((s / kG) * kG * kWStage + (s % kG) * kChunks * kChunkBytes);
  }
  // Slot count `it` (both sides count from 0, over the block's work items): its ring slot, the
  // parity of the pass it is in (unsigned, so that a power-of-two ring is a mask and a shift;
  // the consumers' hot path), and n stages padded to whole copy groups.
  __host__ __device__ static constexpr unsigned slot(int it) { return unsigned(it) % kStages; }
  __host__ __device__ static constexpr unsigned parity(int it) {
    return unsigned(it) / kStages & 1;
  }
  __host__ __device__ static constexpr int padded(int n) { return (n + kG - 1) / kG * kG; }
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
  // w4a16: chunk c's group is (c · group_magic) >> 32 (wgmma_set_groups): no integer division
  // per stage (the compiler's inlined one cost ~25 instructions per chunk)
  uint64_t group_magic;
  // w4a16: both chunks of every 64-column stage lie in one group (an even number of chunks per
  // group, or a single group): the fill loads one scale set per group, not one per chunk
  bool stage_in_group;
  int raster_group;  // weight units per raster group
  int x_rows;        // kN of the launched kernel
  int blocks_per_sm;  // the launched kernel's Cfg::kBlocksPerSm (wgmma_blocks_per_sm)
  // cluster: CTAs per thread-block cluster (1, or 2: LLMACCEL_WGMMA_CLUSTER=2). A cluster's CTAs
  // take neighbouring weight blocks of one x block (a "unit" of w_units), and each copies its
  // share of every x stage into all of them (multicast), so x comes from L2 once per cluster.
  int cluster, w_units;
  int tiles;         // w_units × x_blocks
  // K split over `splits` work items per tile of `kts` k blocks each (1: none); a block takes
  // work items blockIdx.x, + gridDim.x, ... (item w: tile w % tiles, split w / tiles). Split
  // items leave their raw sums in `partial` ((splits, m, n_tiles·16), int32 for w8a8, fp32 for
  // w4a16) for wgmma_reduce_kernel, which adds them in split order.
  int splits, kts;
  void* partial;
  bool vec_out;  // out rows 16-byte aligned: whole 8-element pieces per store
  // The kernel right before on the stream is the one that wrote x's image, launched by the same
  // caller: the GEMM may then start early (programmatic dependent launch, wgmma_launch).
  bool after_image;
  // Consumers hand a slot back with one arrival per warp (lane 0, after __syncwarp), or with
  // LLMACCEL_WGMMA_RELEASE=lanes one per thread, as CUTLASS's pipelines do. A sanitizer knob:
  // racecheck reports the first form's slot refills as hazards against lanes 1-31's reads
  // (bench/gpu/NOTES.md, 2026-11-23), which the second form should not have.
  bool release_lanes;
  // Who issues the x copies (benchmark knobs, wgmma_x_copies; written 2026-11-23 without a GPU).
  // A bulk copy holds its issuing thread (bench/gpu/bulk_copy_probe.cu), and in 128- and
  // 256-row blocks every stage's x is one copy of 16-32 KB issued after the weight copies from
  // the same warp: the large-M kernels run ~950 ns per stage where the tensor cores need ~560.
  // x_warp: a producer warp of its own issues them (LLMACCEL_WGMMA_XCOPY=warp), so they no
  // longer queue behind the weights; 2^x_piece_shift copies per stage (LLMACCEL_WGMMA_XPIECES),
  // one per lane, so that no one copy carries a whole stage. w_warps (1 or 2,
  // LLMACCEL_WGMMA_WWARPS): weights warps taking the copy groups in turn (at one stage per
  // group, 8 lanes' copies took ~570 ns per stage in the probe, about the tensor cores' time).
  bool x_warp;
  int x_piece_shift, w_warps;
  // The weight copies marked evict-first in L2 (LLMACCEL_EVICT_FIRST=1, opt-in until run on a
  // GPU), where one x block means each weight byte is read once per call.
  bool w_evict_first;
  // x through a tensor map (LLMACCEL_WGMMA_XTMA=1, single blocks; written 2026-11-23 without a
  // GPU): each x copy (or piece) a cp.async.bulk.tensor.2d box of x_box_rows 128-byte rows of
  // the image, seen as x_map_rows rows of 128 bytes: the operand form CUTLASS's and cuBLAS's
  // GEMMs stream with, against the 1D bulk copy (bench/gpu/bulk_copy_probe.cu part 3 sets the
  // two side by side). The launcher encodes x_map per call (wgmma_launch).
  bool x_tma;
  int x_box_rows, x_map_rows;
  CUtensorMap x_map;  // aligned as the type requires (64 bytes or more)
};

// Groups of `group` columns (a multiple of 32, d = group / 32 chunks): p.group_magic =
// ceil(2^32 / d) = (2^32 + e) / d with e < d, so c · magic / 2^32 = c / d + c · e / (d · 2^32),
// and for c < 2^16, d ≤ 2^16 the excess stays under 1 / d: its floor is floor(c / d), exactly.
// The launchers check nk < 2^16.
inline void wgmma_set_groups(WgmmaParams& p, int group, int n_groups) {
  const uint64_t cpg = uint64_t(group / 32);
  p.group = group;
  p.n_groups = n_groups;
  p.group_magic = ((uint64_t(1) << 32) + cpg - 1) / cpg;
  p.stage_in_group = n_groups == 1 || cpg % 2 == 0;
}
__host__ __device__ inline int wgmma_chunk_group(const WgmmaParams& p, int chunk) {
  return int((uint64_t(uint32_t(chunk)) * p.group_magic) >> 32);
}

// The k blocks [kt0, kt1) and tile of work item w.
struct WgmmaWork {
  int tile, split, kt0, kt1;
  __host__ __device__ WgmmaWork(const WgmmaParams& p, int w)
      : tile(w % p.tiles), split(w / p.tiles), kt0(split * p.kts),
        kt1(kt0 + p.kts < p.kt_count ? kt0 + p.kts : p.kt_count) {}
};


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

// This block's seat: its cluster's work items are first, first + stride, ...; rank picks its
// weight block of each unit.
struct WgmmaSeat {
  int first, stride, rank;
};
__device__ __forceinline__ WgmmaSeat wgmma_seat(const WgmmaParams& p) {
  return {int(blockIdx.x) / p.cluster, int(gridDim.x) / p.cluster, int(blockIdx.x) % p.cluster};
}

// Tile index → (weight block, x block), grouped so that a wave shares few weight blocks. With
// clusters, the weight block of `rank` in the unit; past w_blocks (an odd count), none: that
// block only loads its share of x for the other.
__device__ __forceinline__ void wgmma_block_coords(const WgmmaParams& p, int idx, int rank,
                                                   int& wb, int& xb) {
  const int per_group = p.raster_group * p.x_blocks;
  const int group = idx / per_group, first = group * p.raster_group;
  const int size = min(p.raster_group, p.w_units - first), local = idx - group * per_group;
  wb = (first + local % size) * p.cluster + rank;
  xb = local / size;
}

// Zeroed accumulators, tied to this point before the first wgmma reads them.
template <class Acc, int N> __device__ __forceinline__ void wgmma_zero_acc(Acc (&acc)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) acc[i] = Acc(0);
#if defined(LLMACCEL_WGMMA_BODY)
  wgmma_fence_acc(acc);
#endif
}

// Every thread of a cluster's blocks, at start and end: no block may touch another's barriers
// before they are initialized, or after it has exited.
__device__ __forceinline__ void wgmma_cluster_sync(const WgmmaParams& p) {
#if defined(LLMACCEL_WGMMA_BODY)
  if (p.cluster > 1) cooperative_groups::this_cluster().sync();
#endif
}

// A consumer warp hands a slot back (one arrival per warp, or per thread with all_lanes
// (WgmmaParams::release_lanes), on its own block's barrier and, in a cluster, on the other
// block's: both blocks' producers write into it), once the wgmma group that read it has
// completed (a wait_group that covers it). peer: the other block's rank, or -1.
__device__ __forceinline__ void wgmma_release(uint64_t* empty, int lane, int peer,
                                              bool all_lanes) {
#if defined(LLMACCEL_WGMMA_BODY)
  if (!all_lanes) {
    __syncwarp();
    if (lane != 0) return;
  }
  mbar_arrive(empty);
  if (peer >= 0) mbar_arrive_cluster(empty, uint32_t(peer));
#endif
}

// Keeps the A registers of a wgmma group in flight alive up to this point (its wait_group):
// without a use after the wgmma, the compiler could give them to the next stage's fragments
// while the tensor cores still read them.
template <int kSteps> __device__ __forceinline__ void wgmma_hold_a(const uint32_t (&a)[kSteps][4]) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#pragma unroll
  for (int j = 0; j < kSteps; ++j)
    asm volatile("" ::"r"(a[j][0]), "r"(a[j][1]), "r"(a[j][2]), "r"(a[j][3]));
#endif
}

// Benchmark experiments, compiled in only by bench/gpu/trace_probe.cu's variants (the library
// builds the defaults), for the streaming configurations (blocks of ≤ 64 x rows, where a stage
// runs ~570 ns against ~200 of issue, bench/gpu/NOTES.md):
// LLMACCEL_WGMMA_DEPTH: wgmma groups a consumer keeps in flight, each with its own A register
// set (2: the previous stage's while it fills the next; 3: the two before);
// LLMACCEL_WGMMA_CHAINS: 2 splits a stage's wgmmas over two accumulator sets (independent
// accumulation chains, added after the work item's last group).
#ifndef LLMACCEL_WGMMA_DEPTH
#define LLMACCEL_WGMMA_DEPTH 2
#endif
#ifndef LLMACCEL_WGMMA_CHAINS
#define LLMACCEL_WGMMA_CHAINS 1
#endif
template <class Cfg> __host__ __device__ constexpr int wgmma_depth() {
  return Cfg::kN <= 64 ? LLMACCEL_WGMMA_DEPTH : 2;
}
template <class Cfg> __host__ __device__ constexpr int wgmma_chains() {
  return Cfg::kN <= 64 ? LLMACCEL_WGMMA_CHAINS : 1;
}

// A consumer warpgroup's main loop over one work item's k blocks: per stage, wait for the slot,
// fill this stage's A registers from it (fill(s, kt, a): the kSteps fragments of slot s, for k
// block kt), issue its kSteps wgmmas (int8 for int accumulators, else 16-bit in T) as one group,
// then wait only for the group kD - 1 stages back (kD = wgmma_depth, 2 in the library: the
// previous stage's) and hand that slot back. So the next stage's fragments are loaded (and, for
// int4, dequantized) while the tensor cores do this one; CUTLASS's RS mainloops keep groups in
// flight the same way. kD A register sets take the stages in turn, which is why the loop body
// runs kD times per trip. `it` counts the block's stage slots over all its work items (the
// producer's count); every slot is back, in order, when the loop returns. A cluster block without
// a weight block (wb past w_blocks: active false) only passes the slots on, as every block does
// the padding slots of the item's last copy group. peer: wgmma_release's.
template <class Cfg, int kSteps, class T, class Acc, int kA, class Fill>
__device__ __forceinline__ void wgmma_mainloop(const WgmmaSmem<Cfg>& sm, const WgmmaWork& work,
                                               int& it, Acc (&acc)[kA], Fill& fill, bool active,
                                               int peer, bool all_lanes) {
#if defined(LLMACCEL_WGMMA_BODY)
  constexpr int kD = wgmma_depth<Cfg>(), kC = wgmma_chains<Cfg>();
  static_assert(kD >= 2 && kD <= 4 && (kC == 1 || kC == 2), "depth 2-4, 1 or 2 chains");
  // the producer refills a copy group once its last slot is back, and the consumers hold the
  // slots of their kD - 1 groups in flight: fewer slots than kG + kD - 1 would deadlock
  static_assert(Cfg::kStages >= Cfg::kG + kD - 1, "the groups in flight hold their slots");
  using Frags = uint32_t[kSteps][4];
  const int lane = threadIdx.x & 31;
  const uint32_t xs_addr = smem_addr(sm.xs);
  // Slots passed back unread: a cluster block without weights, and the padding of the item's
  // last copy group (wgmma_produce).
  const auto pass = [&](int n) {
    for (int j = 0; j < n; ++j, ++it) {
      const unsigned s = Cfg::slot(it);
      mbar_wait(&sm.full[s], Cfg::parity(it));
      wgmma_release(&sm.empty[s], lane, peer, all_lanes);
    }
  };
  const int pad = Cfg::padded(work.kt1 - work.kt0) - (work.kt1 - work.kt0);
  if (!active) return pass(work.kt1 - work.kt0 + pad);
  Frags a[kD];
  Acc acc2[kC == 2 ? kA : 1];  // the second accumulation chain
  if constexpr (kC == 2) wgmma_zero_acc(acc2);
  // Stage kt into A register set q (compile-time: registers are not indexable at run time).
  const auto stage = [&](int kt, auto set) {
    constexpr int q = decltype(set)::value;
    const unsigned s = Cfg::slot(it);
    LLMACCEL_TRACE(if (threadIdx.x == 0) trace_stage(it, kTsWaitFull, trace_clock()));
    mbar_wait(&sm.full[s], Cfg::parity(it));
    LLMACCEL_TRACE(if (threadIdx.x == 0) {
      trace_stage(it, kTsFull, trace_clock());
      if (it == 0) trace_head_now(kTrFirstFull, kTrFirstFullClk);
    });
    fill(s, kt, a[q]);
    wgmma_fence();  // the A registers were just written
    const uint64_t desc = wgmma_desc_sw128(xs_addr + s * Cfg::kXStage);
    const auto mma = [&](Acc(&d)[kA], int j) {
      if constexpr (std::is_same_v<Acc, int>) wgmma_mma(d, a[q][j], desc + 2 * j);
      else wgmma_mma(d, a[q][j], desc + 2 * j, T());
    };
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      if constexpr (kC == 2) {
        if (j % 2) mma(acc2, j);  // unrolled: a fixed register set per step
        else mma(acc, j);
      } else {
        mma(acc, j);
      }
    }
    wgmma_commit();
    LLMACCEL_TRACE(if (threadIdx.x == 0) trace_stage(it, kTsIssued, trace_clock()));
    if (kt - work.kt0 >= kD - 1) {  // the group kD - 1 stages back is done: its slot goes back
      wgmma_wait<kD - 1>();
      wgmma_hold_a(a[(q + 1) % kD]);  // that group's set, (q - (kD - 1)) mod kD
      wgmma_release(&sm.empty[Cfg::slot(it - (kD - 1))], lane, peer, all_lanes);
      LLMACCEL_TRACE(if (threadIdx.x == 0) trace_stage(it, kTsReleased, trace_clock()));
    }
    ++it;
  };
  using std::integral_constant;
  for (int kt = work.kt0; kt < work.kt1; kt += kD) {
    stage(kt, integral_constant<int, 0>());
    if (kt + 1 < work.kt1) stage(kt + 1, integral_constant<int, 1>());
    if constexpr (kD > 2)
      if (kt + 2 < work.kt1) stage(kt + 2, integral_constant<int, 2>());
    if constexpr (kD > 3)
      if (kt + 3 < work.kt1) stage(kt + 3, integral_constant<int, 3>());
  }
  wgmma_wait<0>();  // the last groups: their slots go back too, oldest first
#pragma unroll
  for (int q = 0; q < kD; ++q) wgmma_hold_a(a[q]);
  // the last min(kD - 1, stages) slots; every item has a stage, so the newest always goes back
#pragma unroll
  for (int r = kD - 1; r >= 1; --r)
    if (r == 1 || work.kt1 - work.kt0 >= r)
      wgmma_release(&sm.empty[Cfg::slot(it - r)], lane, peer, all_lanes);
  wgmma_fence_acc(acc);
  if constexpr (kC == 2) {
    wgmma_fence_acc(acc2);
#pragma unroll
    for (int i = 0; i < kA; ++i) acc[i] += acc2[i];
  }
  pass(pad);
#endif
}

}  // namespace llmaccel::cuda
