// Decode-size GEMM (M ≤ 16), int4, sm_90, split by fixed K slices: every consumer warp owns UPW
// consecutive 32-column chunks of K for the whole kernel and walks a range of 16-row tiles
// through them; a producer warp feeds the block's tiles to shared memory with bulk copies.
//
// Why: the stream-K kernel (gemm_decode.cuh) gave each warp one contiguous stretch of weight
// bytes, so the K position moved under it and every unit needed its own activation fragment
// (a 64-bit address computation, a bounds check and an LDG.128 per 256 B of weights) plus a
// per-warp cp.async ring: ~100 issued instructions per unit where the arithmetic is ~15-25
// (bench/gpu/NOTES.md, d4: 36 % of HBM). With the K slice fixed, a warp reads its activation
// fragments once into registers; the weights of a tile arrive by one bulk copy per block (the
// block's K chunk of a tile is 8 KB contiguous in the device layout), and what is left per unit
// in a consumer is one shared-memory read, the dequantization and two MMAs.
//
// Work: grid (ranges, kchunks). Block (range, kc) holds kKsWarps consumer warps whose slices
// tile the K chunk kc (kKsWarps·UPW units) and one producer warp; it runs over the range's
// tiles. Each warp's per-tile sums meet the other warps' in shared memory (summed in warp
// order); with several K chunks, each block writes its range's sums to its slot of the workspace
// and the last block of the range to count itself in adds the slots in chunk order (results do
// not depend on timing), adds the bias, writes y and rearms the counter. No block waits for
// another: no deadlock however they are scheduled.
//
// Numerics: the MMAs sum x·(q − zero) of a group exactly per product in fp32 (fp16: the codes
// become exact integers q − zero; bf16: the codes enter as 128 + q and (128 + zero)·Σx is taken off
// per group) and the group scale multiplies that sum once, as in the stream-K kernel.
#pragma once
#include <algorithm>
#include <type_traits>

#if !defined(LLMACCEL_SIMT_EMU)  // the emulator has its own (csrc/emu/simt_emu.h)
#include <cooperative_groups.h>
#endif

#include "cuda/kernel_trace.cuh"
#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_decode.cuh"

namespace llmaccel::cuda {

constexpr int kKsWarps = 8;     // warps per block: their slices tile one K chunk
constexpr int kKsUnits = 4;     // UPW: 32-column chunks per warp slice (one g128 group)
constexpr int kKsMaxTiles = 64; // tiles per block at most (the block's sums: 64·m B per tile)
constexpr int64_t kSmemPerSm = 228 * 1024;         // sm_90
constexpr int64_t kSmemPerBlockReserved = 1024;    // the runtime's share of each block

struct KsPlan {
  int kchunks = 0;   // grid.y: K chunks of kKsWarps·UPW units
  int ranges = 0;    // grid.x: tile ranges
  int tpb = 0;       // tiles per range (the last range may hold fewer)
  int pass = 0;      // tiles whose per-warp sums the block holds at once: tpb, or a multiple of NB
  int cluster = 0;   // 1: the K chunks of a range are one cluster and meet in its shared memory
  // the weight copies marked evict-first in L2 (LLMACCEL_EVICT_FIRST=1, opt-in until run on a
  // GPU): every weight byte is read once per call
  bool evict_first = false;
  int* counters = nullptr;    // (ranges) int32, zero at entry and at exit (cluster = 0)
  float* partials = nullptr;  // (ranges, kchunks, tpb, 16, m) when kchunks > 1 (cluster = 0)
};

// Whether the K-slice kernel takes this grouping: a slice must hold whole groups or lie in one.
inline bool kslice_takes(int64_t cpg) { return cpg % kKsUnits == 0 || kKsUnits % cpg == 0; }

// Shared memory of a block's reduction, after its ring: the warps' sums of one pass of tiles
// (pass, kKsWarps, 16, m) and the block's sums of all its tiles (tpb, 16, m), floats.
__host__ __device__ constexpr int64_t ks_red_bytes(int pass, int tpb, int64_t m) {
  return (int64_t(pass) * kKsWarps + tpb) * 16 * m * 4;
}

// blocks_per_sm: the kernel's MINB; ring_bytes, ring_slots: its rings and barriers per block,
// and its NB. The reduction gets what MINB blocks leave of the SM's shared memory. The block's
// sums (64·m bytes per tile) bound the tiles per block, with room for a pass of NB tiles beside
// them; what is left, the tiles per pass (512·m bytes each): all of the block's, or whole trips
// around the ring (the kernel adds a pass up between trips).
// Before passes (2026-11-23) the warps' sums of all of a block's tiles had to fit at once: at
// M = 16 six tiles per block, so 600-688 blocks on the issue's shapes where 264 fit on the H100
// at once (2.3-2.6 waves, and 1.1 at M = 8 on 8192→8192), where one wave now does.
inline KsPlan plan_kslice(int64_t m, int64_t n_tiles, int64_t nk, int sms, int blocks_per_sm,
                          int64_t ring_bytes, int ring_slots) {
  KsPlan s;
  const int64_t chunk = int64_t(kKsWarps) * kKsUnits;
  s.kchunks = int((nk + chunk - 1) / chunk);
  const int64_t target = std::max<int64_t>(1, int64_t(sms) * blocks_per_sm / s.kchunks);
  const int64_t red_max = kSmemPerSm / blocks_per_sm - kSmemPerBlockReserved - ring_bytes - 256;
  const int64_t sum_tile = ks_red_bytes(0, 1, m), warp_tile = ks_red_bytes(1, 0, m);
  const int64_t cap = std::max<int64_t>(
      1, std::min<int64_t>(kKsMaxTiles, (red_max - ring_slots * warp_tile) / sum_tile));
  const int64_t tpb = std::min<int64_t>((n_tiles + target - 1) / target, cap);
  s.tpb = int(std::max<int64_t>(tpb, 1));
  s.ranges = int((n_tiles + s.tpb - 1) / s.tpb);
  const int64_t room = (red_max - s.tpb * sum_tile) / warp_tile;  // ≥ ring_slots (the cap)
  s.pass = room >= s.tpb ? s.tpb : int(std::max<int64_t>(room / ring_slots, 1) * ring_slots);
  return s;
}
inline int64_t kslice_partial_bytes(const KsPlan& s, int64_t m) {
  return s.kchunks > 1 ? int64_t(s.ranges) * s.kchunks * s.tpb * 16 * m * 4 : 0;
}
// Enough for any plan of these sizes (ranges · tpb < n_tiles + tpb ≤ n_tiles + kKsMaxTiles).
inline int64_t kslice_partial_bytes_bound(int64_t m, int64_t n_tiles, int64_t nk) {
  const int64_t chunk = int64_t(kKsWarps) * kKsUnits, kchunks = (nk + chunk - 1) / chunk;
  return kchunks > 1 ? (n_tiles + kKsMaxTiles) * kchunks * 16 * m * 4 : 0;
}

// One ring slot: the block's K chunk of one tile (kKsWarps·UPW units of 256 B, contiguous in the
// device layout), then the scales (64 B per group: rows 0-15 in fp32) and zeros (16 B per group)
// of the ≤ kKsWarps·NG groups the chunk touches.
template <int NG, bool ZP> __host__ __device__ constexpr int ks_slot_bytes() {
  return (kKsWarps * kKsUnits * 256 + kKsWarps * NG * (64 + (ZP ? 16 : 0)) + 127) / 128 * 128;
}

// bf16: int4 word → the four A registers as 128 + q, exact (a nibble under bf16's 2^7 magic).
// The 128 + zero each weight should lose is taken off once per group instead, as
// (128 + zero) · Σx over the group (see the kernel): 7 integer ops per word where subtracting
// per weight costs 11.
__device__ __forceinline__ void w4_offset_bf16(uint32_t w, uint32_t a[4]) {
#pragma unroll
  for (int p = 0; p < 4; ++p) a[p] = and_or(w >> (4 * p), 0x000F000Fu, 0x43004300u);
}

// The consumer warps of a block meet (named barrier 1; the producer warp copies on).
#if defined(LLMACCEL_SIMT_EMU)
inline void ks_consumers_sync() { emu::named_barrier(1, kKsWarps * 32); }
#else
__device__ __forceinline__ void ks_consumers_sync() {
  asm volatile("bar.sync 1, %0;\n" ::"n"(kKsWarps * 32) : "memory");
}
#endif

// T: fp16/bf16. MT: 8-row tiles of x. GU: units per group when a slice holds several groups
// (1 or 2), 0 when the slice lies in one group. NB: ring slots; MINB: blocks per SM
// (__launch_bounds__, and the plan).
//
// Weights reach shared memory by bulk copies (sm_90's TMA engine): a producer warp (the block's
// last) copies the block's K chunk of each tile (8 KB contiguous) and the chunk's scales into a
// ring slot, NB tiles ahead; a "full" mbarrier per slot says when they have landed, an "empty" one
// collects the kKsWarps consumer warps once the MMAs have consumed what they read. The consumer
// warps only wait, read, dequantize and multiply. Plain loads (two tiles of registers per warp) and
// per-warp rings whose copies each warp issued itself both stayed near 48 % of HBM: per warp,
// the copies and slot bookkeeping cost as many instructions as the arithmetic.
template <class T, bool ZP, int MT, int GU, int NB, int MINB>
__global__ void __launch_bounds__((kKsWarps + 1) * 32, MINB)
    gemm_decode_kslice_w4_kernel(const SwapAbParams p, const KsPlan plan, const int cpg) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900) || defined(LLMACCEL_SIMT_EMU)
  constexpr int UPW = kKsUnits;
  constexpr int NG = GU > 0 ? UPW / GU : 1;
  constexpr int GUN = GU > 0 ? GU : UPW;  // units per group inside the slice
  constexpr int kSlot = ks_slot_bytes<NG, ZP>();
  constexpr int kWBytes = kKsWarps * UPW * 256;           // weights in a slot
  constexpr int kZOff = kWBytes + kKsWarps * NG * 64;     // zeros in a slot
  // bf16 sums x·(128 + q) and takes (128 + zero)·Σx off per group; fp16 subtracts per weight
  // (its in-place high nibble needs no shift, and 1024·Σx would cost it ~7 bits of fp32).
  constexpr bool kFold = std::is_same<T, __nv_bfloat16>::value;
  using A = Act16<T>;
  LLMACCEL_DYNAMIC_SMEM_ALIGNED(ks_smem, 128);
  // NB slots, NB "full" and NB "empty" barriers, then the reduction (ks_red_bytes): the warps'
  // sums of a pass of tiles, and the block's sums of all its tiles.
  uint64_t* full = reinterpret_cast<uint64_t*>(ks_smem + NB * kSlot);
  uint64_t* empty = full + NB;
  float* red = reinterpret_cast<float*>(empty + NB);
  float* sums = red + plan.pass * kKsWarps * 16 * p.m;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r = lane >> 2, j = lane & 3;
  const int kc = blockIdx.y, range = blockIdx.x;
  const int t0 = range * plan.tpb, nt = min(plan.tpb, p.n_tiles - t0);
  const int m = p.m;
  const int cu0 = kc * kKsWarps * UPW;                   // the chunk's first unit
  const int cun = min(kKsWarps * UPW, p.nk - cu0);       // its units inside K
  const int g_first = cu0 / cpg;                         // its groups in the scales
  const int ngb = (cu0 + cun - 1) / cpg - g_first + 1;
  LLMACCEL_TRACE(const TraceEntry trace_in = trace_entry());
  // The block's tiles, in passes of plan.pass: the warps' sums of a pass's tiles, added in warp
  // order into the block's sums (tpb, 16, m), by `nthreads` threads from `tid` on.
  const int tile_vals = 16 * m;
  const auto add_pass = [&](int first, int n, int tid, int nthreads) {
    for (int idx = tid; idx < n * tile_vals; idx += nthreads) {
      const int tp = idx / tile_vals, rest = idx - tp * tile_vals;
      float s = 0.f;
#pragma unroll 4  // not 8: fully unrolled, the 16-row zero-point kernel spilled
      for (int w = 0; w < kKsWarps; ++w) s += red[(tp * kKsWarps + w) * tile_vals + rest];
      sums[first * tile_vals + idx] = s;
    }
  };

  if (threadIdx.x == 0) {
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      mbar_init(full + b, 1);
      mbar_init(empty + b, kKsWarps);
    }
  }
  __syncthreads();

  if (warp == kKsWarps) {  // the producer
    if (lane == 0) {
      const uint32_t wbytes = uint32_t(cun) * 256, sbytes = uint32_t(ngb) * 64;
      const uint32_t zbytes = ZP ? uint32_t(ngb) * 16 : 0;
      const uint8_t* wsrc =
          reinterpret_cast<const uint8_t*>(p.w) + (int64_t(t0) * p.nk + cu0) * 256;
      const int64_t tile_bytes = int64_t(p.nk) * 256;
      for (int t = 0; t < nt; ++t) {
        const int b = t % NB;
        // (stamps after the first fill only: the sink's first load must not delay a copy)
        LLMACCEL_TRACE(if (t >= NB) trace_stage(t, kTsWaitEmpty, trace_clock()));
        if (t >= NB) {
          mbar_wait(empty + b, ((t / NB) - 1) & 1);  // its readers are done
          fence_proxy_async_smem();  // their reads come before the copy's writes
        }
        LLMACCEL_TRACE(if (t >= NB) trace_stage(t, kTsEmpty, trace_clock()));
        uint8_t* slot = ks_smem + b * kSlot;
        const int64_t gi = (int64_t(t0 + t) * p.n_groups + g_first) * 16;
        mbar_expect_tx(full + b, wbytes + sbytes + zbytes);
        bulk_copy_weights(slot, wsrc + t * tile_bytes, wbytes, full + b, plan.evict_first);
        LLMACCEL_TRACE(if (t >= NB) trace_stage(t, kTsWCopied, trace_clock()));
        bulk_copy_g2s(slot + kWBytes, p.scales + gi, sbytes, full + b);
        if constexpr (ZP) bulk_copy_g2s(slot + kZOff, p.zeros + gi, zbytes, full + b);
        LLMACCEL_TRACE(if (t >= NB) trace_stage(t, kTsXCopied, trace_clock()));
      }
    }
  } else {  // a consumer: the slice of kKsWarps·UPW units at u0
    const int u0 = cu0 + warp * UPW;
    const int nu = max(0, min(UPW, p.nk - u0));  // units of the slice inside K (warp-uniform)
    const int gw = u0 / cpg - g_first;           // the slice's first group in the slot

    // The slice's activation fragments, for the whole kernel (formats/cuda.py's k order: lane j
    // takes columns 8j..8j+7 of each chunk, the first four for the unit's first k16 step). Units
    // past K get zeros, so the stale slot bytes they meet add nothing (every nibble is a finite
    // weight).
    uint4 xf[UPW][MT];
#pragma unroll
    for (int v = 0; v < UPW; ++v)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int row = mt * 8 + r, col = (u0 + v) * 32 + j * 8;
        xf[v][mt] = make_uint4(0, 0, 0, 0);
        if (v < nu && row < m && col < p.k)
          xf[v][mt] = __ldg(reinterpret_cast<const uint4*>(static_cast<const T*>(p.x) +
                                                           int64_t(row) * p.ldx + col));
      }

    // kFold: Σx per group and column of this lane's C fragment (m = 8mt + 2j + e), by MMAs with
    // an all-ones A (exact products, fp32 sums like the weights').
    float xsum[NG][MT][2];
    if constexpr (kFold) {
      const uint32_t ones[4] = {0x3F803F80u, 0x3F803F80u, 0x3F803F80u, 0x3F803F80u};
#pragma unroll
      for (int g = 0; g < NG; ++g)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          float c[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
          for (int v = g * GUN; v < (g + 1) * GUN; ++v) {
            mma_16816(c, ones, xf[v][mt].x, xf[v][mt].y, T());
            mma_16816(c, ones, xf[v][mt].z, xf[v][mt].w, T());
          }
          xsum[g][mt][0] = c[0];
          xsum[g][mt][1] = c[1];
        }
    }
    uint32_t zlo = 0, zhi = 0;
    if constexpr (!ZP && !kFold) w4_zero_consts(8u, 8u, zlo, zhi, T());

    // This lane's C fragment in a tile's part of the reduction buffer: rows r and r + 8 of the
    // warp's 16, columns mt·8 + 2j + (0, 1), those past m not stored. Offsets computed per store:
    // a table of them held 4·MT registers across the loop (the 16-row kernels spilled).
    const int red_row = (warp * 16 + r) * m + 2 * j;
    const int red_tile = kKsWarps * 16 * m;

    // One tile from slot b (a compile-time index: the loop below is unrolled by NB); the warp's
    // sums go to tile_red.
    auto consume = [&](int t, int b, uint32_t parity, float* tile_red) {
      const uint8_t* slot = ks_smem + b * kSlot;
      LLMACCEL_TRACE(if (threadIdx.x == 0) trace_stage(t, kTsWaitFull, trace_clock()));
      mbar_wait(full + b, parity);
      LLMACCEL_TRACE(if (threadIdx.x == 0) {
        trace_stage(t, kTsFull, trace_clock());
        if (t == 0) trace_head_now(kTrFirstFull, kTrFirstFullClk);
      });
      uint2 w[UPW];
#pragma unroll
      for (int v = 0; v < UPW; ++v)
        w[v] = *reinterpret_cast<const uint2*>(slot + (warp * UPW + v) * 256 + lane * 8);
      float s_lo[NG], s_hi[NG];
      uint32_t z_lo[NG], z_hi[NG];
#pragma unroll
      for (int g = 0; g < NG; ++g) {
        const float* sc = reinterpret_cast<const float*>(slot + kWBytes) + (gw + g) * 16;
        s_lo[g] = sc[r];
        s_hi[g] = sc[r + 8];
        if constexpr (ZP) {
          z_lo[g] = slot[kZOff + (gw + g) * 16 + r];
          z_hi[g] = slot[kZOff + (gw + g) * 16 + r + 8];
        }
      }

      float acc[MT][4], g0[MT][4], g1[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[mt][i] = g0[mt][i] = g1[mt][i] = 0.f;
      if (nu > 0) {
#pragma unroll
        for (int v = 0; v < UPW; ++v) {
          const int g = v / GUN;
          if constexpr (ZP && !kFold)
            if (v % GUN == 0) w4_zero_consts(z_lo[g], z_hi[g], zlo, zhi, T());
          uint32_t a0[4], a1[4];
          if constexpr (kFold) {
            w4_offset_bf16(w[v].x, a0);
            w4_offset_bf16(w[v].y, a1);
          } else {
            dequant_w4_int(w[v].x, zlo, zhi, a0, T());
            dequant_w4_int(w[v].y, zlo, zhi, a1, T());
          }
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816(g0[mt], a0, xf[v][mt].x, xf[v][mt].y, T());
            mma_16816(g1[mt], a1, xf[v][mt].z, xf[v][mt].w, T());
          }
          // A group ends: its fp32 sums (less (128 + zero)·Σx), times its scales, join the
          // tile's. Groups past K hold stale scales: skipped.
          if ((v + 1) % GUN == 0 && g * GUN < nu) {
            float off_lo = 136.f, off_hi = 136.f;  // 128 + 8: the symmetric zero
            if constexpr (ZP && kFold) {
              off_lo = 128.f + float(z_lo[g]);
              off_hi = 128.f + float(z_hi[g]);
            }
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
              for (int i = 0; i < 4; ++i) {
                float sum = g0[mt][i] + g1[mt][i];
                if constexpr (kFold)
                  sum = fmaf(-(i < 2 ? off_lo : off_hi), xsum[g][mt][i & 1], sum);
                acc[mt][i] = fmaf(sum, i < 2 ? s_lo[g] : s_hi[g], acc[mt][i]);
                g0[mt][i] = g1[mt][i] = 0.f;
              }
          }
        }
      }
      // The slot goes back only once the MMAs and folds above have consumed every register read
      // from it: their data dependencies guarantee that all lanes' shared-memory reads have
      // completed, which a barrier arrival alone does not promise against the bulk copy (another
      // proxy) that refills the slot. (Measured: releasing right after the reads gave wrong sums
      // at 4 blocks per SM.)
      __syncwarp();
      if (lane == 0) mbar_arrive(empty + b);
      LLMACCEL_TRACE(if (threadIdx.x == 0) trace_stage(t, kTsReleased, trace_clock()));
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i)
          if (mt * 8 + 2 * j + (i & 1) < m)
            tile_red[red_row + (i >> 1) * 8 * m + mt * 8 + (i & 1)] = acc[mt][i];
    };

    // A pass ends when its tiles' sums fill `red` and more tiles follow: the consumer warps meet
    // (the producer copies on meanwhile), add them into `sums` and meet again before the next
    // pass overwrites them. Passes are whole trips around the ring (plan_kslice), so that this
    // stays out of the unrolled trip: inside it, the 16-row zero-point kernel spilled. The
    // block's last pass is added after its barrier, below.
    uint32_t parity = 0;
    int pass_first = 0;
    for (int tb = 0; tb < nt; tb += NB, parity ^= 1) {
#pragma unroll
      for (int b = 0; b < NB; ++b)
        if (tb + b < nt) consume(tb + b, b, parity, red + (tb + b - pass_first) * red_tile);
      if (tb + NB - pass_first == plan.pass && tb + NB < nt) {
        ks_consumers_sync();
        add_pass(pass_first, plan.pass, threadIdx.x, kKsWarps * 32);
        ks_consumers_sync();
        pass_first += plan.pass;
      }
    }
    LLMACCEL_TRACE(if (threadIdx.x == 0) trace_head_now(kTrConsumed, kTrConsumedClk));
  }
  __syncthreads();
  LLMACCEL_TRACE(if (threadIdx.x == 0) trace_head_now(kTrJoined, kTrJoinedClk));
  const int last_first = (nt - 1) / plan.pass * plan.pass;  // the last pass's first tile
  add_pass(last_first, nt - last_first, threadIdx.x, blockDim.x);
  __syncthreads();

  // sums[idx]: the block's sum for idx = (tile, row, column) within the range.
  const int per_range = nt * tile_vals;
  const int64_t n0 = int64_t(t0) * 16;
  T* out = static_cast<T*>(p.out);
  auto write_y = [&](int idx, float v) {
    const int col = idx % m, n = int(n0) + idx / m;
    if (n < p.n)
      out[int64_t(col) * p.ldo + n] = A::from_float(v + (p.bias ? __ldg(p.bias + n) : 0.f));
  };
  if (plan.kchunks == 1) {
    for (int idx = threadIdx.x; idx < per_range; idx += blockDim.x) write_y(idx, sums[idx]);
    LLMACCEL_TRACE(trace_exit(trace_in, NB, 1));
    return;
  }
  if (plan.cluster) {
    // The range's K chunks form one thread-block cluster: the chunk-0 block adds the blocks'
    // sums (at the same offset in each) in chunk order through distributed shared memory (the
    // same order as the workspace path: the same bits), with no round trip through L2 and no
    // counter.
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();
    LLMACCEL_TRACE(if (threadIdx.x == 0) trace_head(kTrLast, kc == 0));
    if (kc == 0)
      for (int idx = threadIdx.x; idx < per_range; idx += blockDim.x) {
        float s = 0.f;
        for (int c = 0; c < plan.kchunks; ++c) s += cluster.map_shared_rank(sums, c)[idx];
        write_y(idx, s);
      }
    cluster.sync();  // every block's shared memory lives until chunk 0 has read it
    LLMACCEL_TRACE(trace_exit(trace_in, NB, 1));
    return;
  }
  const int64_t chunk_stride = int64_t(plan.tpb) * tile_vals;  // a chunk's slots in the range's
  float* slots = plan.partials + int64_t(range) * plan.kchunks * chunk_stride;
  for (int idx = threadIdx.x; idx < per_range; idx += blockDim.x)
    slots[kc * chunk_stride + idx] = sums[idx];
  // The count is an acquire-release atomic by one thread after the block barrier (the pattern of
  // CUTLASS's semaphore): it publishes every thread's slot writes without a full fence per thread.
  __syncthreads();
  __shared__ int last;
  if (threadIdx.x == 0) last = atom_add_acq_rel_gpu(plan.counters + range, 1) == plan.kchunks - 1;
  __syncthreads();
  LLMACCEL_TRACE(if (threadIdx.x == 0) trace_head(kTrLast, last));
  if (!last) {
    LLMACCEL_TRACE(trace_exit(trace_in, NB, 1));
    return;
  }
  // The chunks' sums in chunk order, four neighbouring outputs per thread (16-byte loads: every
  // chunk's slots are whole 16-float rows) and kGatherChunks chunks' loads issued before the
  // adds that need them. One output at a time took ~per_range / blockDim round trips to L2 in a
  // row (its loads waited once per batch the compiler unrolled, and the next output's could not
  // pass the store before them: out may alias the workspace, for all the compiler knows).
  constexpr int kGatherChunks = 4;
  for (int q = threadIdx.x; q < per_range / 4; q += blockDim.x) {
    const float4* src = reinterpret_cast<const float4*>(slots) + q;
    float s[4] = {0.f, 0.f, 0.f, 0.f};
    for (int c0 = 0; c0 < plan.kchunks; c0 += kGatherChunks) {
      float4 v[kGatherChunks];
#pragma unroll
      for (int e = 0; e < kGatherChunks; ++e)
        if (c0 + e < plan.kchunks) v[e] = __ldcg(src + (c0 + e) * chunk_stride / 4);
#pragma unroll
      for (int e = 0; e < kGatherChunks; ++e)
        if (c0 + e < plan.kchunks) {
          s[0] += v[e].x;
          s[1] += v[e].y;
          s[2] += v[e].z;
          s[3] += v[e].w;
        }
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) write_y(4 * q + u, s[u]);
  }
  if (threadIdx.x == 0) plan.counters[range] = 0;
  LLMACCEL_TRACE(trace_exit(trace_in, NB, 1));
#endif
}

// A ring of nb slots of slot_bytes and their two barriers each.
constexpr int64_t ks_ring_bytes(int nb, int64_t slot_bytes) { return nb * (slot_bytes + 2 * 8); }
template <int NG, bool ZP, int NB> constexpr int64_t ks_ring_bytes() {
  return ks_ring_bytes(NB, ks_slot_bytes<NG, ZP>());
}

}  // namespace llmaccel::cuda
