// Decode-size GEMM (M ≤ 16) on tensor cores: the operands swapped as in gemm_swapab.cuh (the
// weight tile is the 16-row MMA operand A, the few rows of x fill the 8-wide operand B), with the
// weight stream split evenly over every warp the GPU holds at once ("stream-K").
//
// Why a flat split: at M ≤ 16 the kernel is a stream of weight bytes with a little arithmetic on
// each. A block per 16-row tile gave each warp only 16-56 chunks, so its cp.async ring never
// reached steady state, 896 tiles fell into 2.3 waves of resident blocks, and every block ended in
// a shared-memory reduction (H100, bench/gpu/NOTES.md v1-v3: 35 % of HBM). Here a "unit" is one
// 16-row × 32-column chunk of W (256 B in int4), a "stage" U consecutive units of one tile (one
// slot of the cp.async ring); stages are numbered tile-major, the order the device layout stores
// them, so warp w's share [w·T/W, (w+1)·T/W) of the T stages is one contiguous stretch of bytes,
// streamed through a per-warp ring from its first byte to its last. Everything that can change
// between units (a new group, a new tile) is known per stage or at compile time, so the unrolled
// work on a unit is its dequantization and MMAs alone.
//
// A tile whose K range is shared by several warps is finished by the last of them to arrive:
// each writes its partial sums into its own slot of a workspace, then counts itself in at the
// tile's counter; the warp that completes the count adds the slots in slot order (so results do
// not depend on timing), writes the output and sets the counter back to zero for the next call.
// A warp shares at most two tiles (its range's first and last) and hands them over only after
// its stream ends. No warp ever waits for another, so the kernel cannot deadlock however its
// blocks are scheduled.
//
// int4: codes become exact integers q − zero in the 16-bit type (Marlin's trick for fp16: a nibble
// under the 2^10 magic, and the high nibble of each byte taken in place as 16·q and rescaled by
// one fma), the MMA sums x·(q − zero) over a group in fp32, and the group scale multiplies those
// fp32 sums once per group: no per-weight multiply, and one rounding fewer than scaling each weight.
#pragma once
#include <algorithm>
#include <cstdlib>

#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_swapab.cuh"

namespace llmaccel::cuda {

constexpr int kDecodeWarps = 8;  // per block; warps are independent (no block barrier)

// Resident warps per SM the split plans for: two blocks, which __launch_bounds__ below
// guarantees (≤ 128 registers; at three blocks' 80 the int4 kernel spilled). The environment
// variable LLMACCEL_DECODE_WARPS_PER_SM overrides it, for benchmarks that sweep the split.
inline int decode_warps_per_sm() {
  static const int w = [] {
    const char* e = std::getenv("LLMACCEL_DECODE_WARPS_PER_SM");
    const int v = e ? std::atoi(e) : 0;
    return v >= 1 && v <= 64 ? v : 2 * kDecodeWarps;
  }();
  return w;
}

// The flat split of n_tiles · nk/U stages over `warps` warps, and the workspace it needs.
struct DecodeSplit {
  int stages = 0, warps = 0, max_parts = 0;  // max_parts: most warps sharing one tile
  int tile_stages = 0;                       // stages per tile (nk / U)
  int* counters = nullptr;                   // (n_tiles) int32, zero at entry and at exit
  float* partials = nullptr;                 // (n_tiles, max_parts, 16, m)
};

// Stage shape for a weight: U units per stage (4 when stages can tile K exactly, else 1) and GU,
// the units per group when a group is shorter than a stage (1 or 2; 0 when each group covers
// whole stages, as g128 does with U = 4).
struct DecodeShape {
  int u, gu;
};
inline DecodeShape decode_shape(int64_t nk, int64_t cpg) {
  if (nk % 4 != 0) return {1, 0};
  if (cpg % 4 == 0) return {4, 0};
  if (cpg == 1 || cpg == 2) return {4, int(cpg)};
  return {1, 0};
}

inline DecodeSplit plan_decode(int64_t n_tiles, int64_t nk, int u, int sms) {
  DecodeSplit s;
  const int64_t tile_stages = nk / u, stages = n_tiles * tile_stages;
  const int64_t warps = std::min<int64_t>(stages, int64_t(sms) * decode_warps_per_sm());
  // Every warp holds ≥ `per` stages, so a tile of nk/U stages meets at most
  // (nk/U − 1)/per + 2 of them.
  const int64_t per = stages / warps;
  s.stages = int(stages);
  s.warps = int(warps);
  s.tile_stages = int(tile_stages);
  s.max_parts = int(std::min<int64_t>((tile_stages - 1) / per + 2, warps));
  return s;
}
inline int64_t decode_partial_bytes(const DecodeSplit& s, int64_t m, int64_t n_tiles) {
  return n_tiles * s.max_parts * 16 * m * 4;
}

// int4 word (8 nibbles, formats/cuda.py order) → the four A registers of one m16n8k16 step as
// exact integers q − zero. zlo: 2^p + zero of row r in both halves; zhi: the same for row r + 8
// (bf16), or −(64 + zero) for fp16, whose high nibbles are read in place as 16·q (2^10 + 16q,
// ·1/16).
__device__ __forceinline__ void dequant_w4_int(uint32_t w, uint32_t zlo, uint32_t zhi,
                                               uint32_t a[4], __half) {
  const __half2 sixteenth = as_t2<__half2>(0x2C002C00u);  // 1/16
  const uint32_t w2 = w >> 8;
  a[0] = as_u32(__hsub2(as_t2<__half2>(and_or(w, 0x000F000Fu, 0x64006400u)), as_t2<__half2>(zlo)));
  a[1] = as_u32(__hfma2(as_t2<__half2>(and_or(w, 0x00F000F0u, 0x64006400u)), sixteenth,
                        as_t2<__half2>(zhi)));
  a[2] = as_u32(__hsub2(as_t2<__half2>(and_or(w2, 0x000F000Fu, 0x64006400u)), as_t2<__half2>(zlo)));
  a[3] = as_u32(__hfma2(as_t2<__half2>(and_or(w2, 0x00F000F0u, 0x64006400u)), sixteenth,
                        as_t2<__half2>(zhi)));
}
__device__ __forceinline__ void dequant_w4_int(uint32_t w, uint32_t zlo, uint32_t zhi,
                                               uint32_t a[4], __nv_bfloat16) {
  // bf16's 2^7 leaves no room for 16·q under the exponent: shift every nibble down instead.
  using B2 = __nv_bfloat162;
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const uint32_t v = and_or(w >> (4 * p), 0x000F000Fu, 0x43004300u);
    a[p] = as_u32(__hsub2(as_t2<B2>(v), as_t2<B2>((p & 1) ? zhi : zlo)));
  }
}
// The zlo/zhi constants above for zero points z_lo (row r) and z_hi (row r + 8).
__device__ __forceinline__ void w4_zero_consts(uint32_t z_lo, uint32_t z_hi, uint32_t& zlo,
                                               uint32_t& zhi, __half) {
  zlo = 0x64006400u | (z_lo * 0x00010001u);
  // −(64 + z) = 960 − (1024 + z), both exact in fp16.
  zhi = as_u32(__hsub2(as_t2<__half2>(0x63806380u),
                       as_t2<__half2>(0x64006400u | (z_hi * 0x00010001u))));
}
__device__ __forceinline__ void w4_zero_consts(uint32_t z_lo, uint32_t z_hi, uint32_t& zlo,
                                               uint32_t& zhi, __nv_bfloat16) {
  zlo = 0x43004300u | (z_lo * 0x00010001u);
  zhi = 0x43004300u | (z_hi * 0x00010001u);
}

// What a lane needs for one stage besides its weights, read one stage ahead into registers: its
// activation fragments per unit, and (int4) its rows' scales and zeros per group of the stage.
template <int MT, int U, int NG> struct DecodeIn {
  uint4 x[U][MT];
  float s_lo[NG], s_hi[NG];
  uint32_t z[NG];  // zero of row r in bits 0-7, of row r + 8 in bits 8-15
};

// int4 weights × x in T (fp16/bf16). MT: 8-row tiles of x (1 or 2). U units per stage, GU units
// per group inside a stage (0: groups span whole stages), S stages.
template <class T, bool ZP, int MT, int U, int GU, int S>
__global__ void __launch_bounds__(kDecodeWarps * 32, 2)
    gemm_decode_w4_kernel(const SwapAbParams p, const DecodeSplit sp, const int cpg) {
  constexpr int WB = 8;  // bytes per lane and unit: two words of 8 nibbles
  constexpr int kUnit = 32 * WB;
  constexpr int kStage = U * kUnit;
  constexpr int kPieces = kStage / 16;  // 16-byte cp.async pieces per stage
  constexpr int NG = GU > 0 ? U / GU : 1;  // groups starting in a stage (at most)
  static_assert(kPieces % 32 == 0 || kPieces == 16, "a stage must split over the warp's lanes");
  static_assert(S >= 2, "a ring needs two stages");
  static_assert(GU == 0 || U % (GU > 0 ? GU : 1) == 0, "groups must tile the stage");
  using Acc = float;
  using A = Act16<T>;
  using In = DecodeIn<MT, U, NG>;

  LLMACCEL_DYNAMIC_SMEM(smem);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r = lane >> 2, j = lane & 3;
  const int gw = blockIdx.x * kDecodeWarps + warp;
  if (gw >= sp.warps) return;
  const int s_begin = int(int64_t(gw) * sp.stages / sp.warps);
  const int n_stages = int(int64_t(gw + 1) * sp.stages / sp.warps) - s_begin;
  const int ts = sp.tile_stages;
  uint8_t* ring = smem + warp * S * kStage;
  const uint8_t* wsrc = reinterpret_cast<const uint8_t*>(p.w) + int64_t(s_begin) * kStage;

  int xrow[MT];  // row of x this lane feeds into operand B of m-tile mt, or -1 past m
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) xrow[mt] = mt * 8 + r < p.m ? mt * 8 + r : -1;

  // acc: this warp's sums for the current tile; gacc (int4): the current group's, unscaled, in
  // two sets (the two k16 halves of a unit) so that consecutive MMAs do not wait on each other.
  Acc acc[MT][4], gacc[2][MT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[mt][i] = gacc[0][mt][i] = gacc[1][mt][i] = 0;
  float s_lo = 0.f, s_hi = 0.f;  // the current group's scales (rows r, r + 8)
  uint32_t zlo = 0, zhi = 0;
  if constexpr (!ZP) w4_zero_consts(8u, 8u, zlo, zhi, T());

  auto issue = [&](int s) {
    uint8_t* dst = ring + (s % S) * kStage;
    const uint8_t* src = wsrc + int64_t(s) * kStage;
    if constexpr (kPieces == 16) {  // U = 1 int4: half the lanes copy
      if (lane < 16) cp_async16(dst + lane * 16, src + lane * 16, 16);
    } else {
#pragma unroll
      for (int i = 0; i < kPieces / 32; ++i) {
        const int off = (i * 32 + lane) * 16;
        cp_async16(dst + off, src + off, 16);
      }
    }
  };

  // Where a stage sits: its tile, index cs in the tile, and (groups spanning stages, GU = 0)
  // its group and index gs in the group. Advanced one stage at a time: no division per stage.
  const int spg = GU == 0 ? cpg / U : 1;  // stages per group
  struct Pos {
    int tile, cs, grp, gs;
  };
  auto next = [&](Pos& q) {
    if (++q.cs == ts) {
      q.cs = q.grp = q.gs = 0;
      ++q.tile;
    } else if (++q.gs == spg) {
      q.gs = 0;
      ++q.grp;
    }
  };
  Pos lp{s_begin / ts, s_begin % ts, 0, 0};  // the stage load_in reads next
  lp.grp = lp.cs / spg;
  lp.gs = lp.cs - lp.grp * spg;
  Pos cp = lp;  // the stage compute multiplies next

  auto load_in = [&](In& in) {
    const int c0 = lp.cs * U;  // first chunk of the stage in its tile
#pragma unroll
    for (int v = 0; v < U; ++v) {
      const int col = (c0 + v) * 32 + j * 8;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        in.x[v][mt] = make_uint4(0, 0, 0, 0);
        if (xrow[mt] >= 0 && col < p.k)
          in.x[v][mt] = __ldg(reinterpret_cast<const uint4*>(static_cast<const T*>(p.x) +
                                                              xrow[mt] * p.ldx + col));
      }
    }
#pragma unroll
    for (int g = 0; g < NG; ++g) {
      const int grp = GU > 0 ? (c0 + g * GU) / GU : lp.grp;
      const int64_t mi = (int64_t(lp.tile) * p.n_groups + grp) * 16 + r;
      in.s_lo[g] = __ldg(p.scales + mi);
      in.s_hi[g] = __ldg(p.scales + mi + 8);
      if constexpr (ZP) in.z[g] = __ldg(p.zeros + mi) | (uint32_t(__ldg(p.zeros + mi + 8)) << 8);
    }
    next(lp);
  };

  // The current group's fp32 sums, times its scales, join the tile's sums.
  auto fold_group = [&]() {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        acc[mt][i] = fmaf(gacc[0][mt][i] + gacc[1][mt][i], i < 2 ? s_lo : s_hi, acc[mt][i]);
        gacc[0][mt][i] = gacc[1][mt][i] = 0.f;
      }
  };
  auto set_group = [&](const In& in, int g) {
    s_lo = in.s_lo[g];
    s_hi = in.s_hi[g];
    if constexpr (ZP) w4_zero_consts(in.z[g] & 0xFFu, in.z[g] >> 8, zlo, zhi, T());
  };

  // C fragment: (row r, cols 2j, 2j+1) and (row r + 8, same); rows are outputs n, cols are m.
  auto store_out = [&](int tile, const Acc (&v)[MT][4]) {
    T* out = static_cast<T*>(p.out);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int n = tile * 16 + r + 8 * h;
      if (n >= p.n) continue;
      const float b = p.bias ? __ldg(p.bias + n) : 0.f;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int m = mt * 8 + 2 * j + e;
          if (m >= p.m) continue;
          out[int64_t(m) * p.ldo + n] = A::from_float(v[mt][2 * h + e] + b);
        }
    }
  };

  // Tiles this warp shares with others: only the first of its range (begun by an earlier warp)
  // and the last (ended by a later one); the tiles between are whole and written at once. The
  // shared ones are handed over after the stream ends, so the fences they need (which wait for
  // every memory operation in flight) never stall the weight stream.
  auto whole = [&](int tile) {
    return tile * ts >= s_begin && tile * ts + ts <= s_begin + n_stages;
  };
  auto warp_of = [&](int s) {  // the warp holding stage s: the largest w with w·T/W ≤ s
    return int((int64_t(s + 1) * sp.warps - 1) / sp.stages);
  };
  auto slots_of = [&](int tile) {
    return sp.partials + int64_t(tile) * sp.max_parts * 16 * p.m;
  };
  auto write_part = [&](int tile, const Acc (&v)[MT][4]) {
    Acc* mine = slots_of(tile) + int64_t(gw - warp_of(tile * ts)) * 16 * p.m;
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int m = mt * 8 + 2 * j + e;
          if (m < p.m) mine[(r + 8 * h) * p.m + m] = v[mt][2 * h + e];
        }
  };
  // After write_part and a fence: count this warp in; the tile's last warp adds the slots in
  // slot order (results do not depend on arrival order), writes y and rearms the counter.
  auto arrive = [&](int tile) {
    const int w_lo = warp_of(tile * ts), parts = warp_of(tile * ts + ts - 1) - w_lo + 1;
    int seen = 0;
    if (lane == 0) seen = atomicAdd(sp.counters + tile, 1);
    seen = __shfl_sync(0xffffffffu, seen, 0);
    if (seen != parts - 1) return;
    __threadfence();
    const Acc* slots = slots_of(tile);
    Acc sum[MT][4];
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int m = mt * 8 + 2 * j + e;
          Acc t = 0;
          if (m < p.m)
            for (int q = 0; q < parts; ++q)
              t += __ldcg(slots + (int64_t(q) * 16 + r + 8 * h) * p.m + m);  // L2, not L1
          sum[mt][2 * h + e] = t;
        }
    store_out(tile, sum);
    if (lane == 0) sp.counters[tile] = 0;
  };

  int first_tile = -1;  // the first tile, when begun by an earlier warp: its sums wait here
  Acc first_acc[MT][4];
  auto finish_tile = [&](int tile) {  // the stream left `tile` (not the range's last tile)
    if (whole(tile)) {
      store_out(tile, acc);
    } else {
      first_tile = tile;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) first_acc[mt][i] = acc[mt][i];
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][i] = 0;
  };

  auto compute = [&](int s, const In& in) {
    if (s != 0 && cp.cs == 0) finish_tile(cp.tile - 1);  // the previous stage ended a tile
    // Groups spanning whole stages (GU = 0) start and end on stage boundaries.
    if constexpr (GU == 0)
      if (s == 0 || cp.gs == 0) set_group(in, 0);
    const uint8_t* src = ring + (s % S) * kStage + lane * WB;
#pragma unroll
    for (int v = 0; v < U; ++v) {
      if constexpr (GU > 0)
        if (v % GU == 0) set_group(in, v / GU);
      const uint2 w = *reinterpret_cast<const uint2*>(src + v * kUnit);
      uint32_t a0[4], a1[4];
      dequant_w4_int(w.x, zlo, zhi, a0, T());
      dequant_w4_int(w.y, zlo, zhi, a1, T());
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_16816(gacc[0][mt], a0, in.x[v][mt].x, in.x[v][mt].y, T());
        mma_16816(gacc[1][mt], a1, in.x[v][mt].z, in.x[v][mt].w, T());
      }
      if constexpr (GU > 0)
        if ((v + 1) % GU == 0) fold_group();
    }
    if constexpr (GU == 0)
      if (cp.gs == spg - 1) fold_group();  // the stage ends its group
    next(cp);
  };

  // One stage: its weights landed (all but the newest S-2 copy groups are complete), refill the
  // slot the previous stage freed, read the next stage's inputs, multiply this one.
  auto step = [&](int s, const In& cur, In& nxt) {
    cp_async_wait<S - 2>();
    __syncwarp();  // other lanes' pieces of this slot are visible; all lanes left slot s-1
    if (s + S - 1 < n_stages) issue(s + S - 1);
    cp_async_commit();  // one group per stage, empty or not, so the wait count stays exact
    if (s + 1 < n_stages) load_in(nxt);
    compute(s, cur);
  };

#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < n_stages) issue(s);
    cp_async_commit();
  }
  if constexpr (MT == 1) {
    In in0, in1;
    load_in(in0);
    int s = 0;
    for (; s + 1 < n_stages; s += 2) {  // two per iteration: the register buffers swap by name
      step(s, in0, in1);
      step(s + 1, in1, in0);
    }
    if (s < n_stages) step(s, in0, in1);
  } else {
    // 16 rows of x: a second register buffer of fragments would spill (ptxas), so each stage
    // reads its own just before use (from L1: every warp of the SM reads the same x).
    In in;
    for (int s = 0; s < n_stages; ++s) {
      cp_async_wait<S - 2>();
      __syncwarp();
      if (s + S - 1 < n_stages) issue(s + S - 1);
      cp_async_commit();
      load_in(in);
      compute(s, in);
    }
  }
  cp_async_wait<0>();
  fold_group();  // a range may end inside a group that spans several stages
  // The stream's last tile: cp is one past the last stage.
  const int last_tile = cp.cs == 0 ? cp.tile - 1 : cp.tile;
  const bool last_whole = whole(last_tile);
  if (last_whole) store_out(last_tile, acc);
  if (first_tile >= 0 || !last_whole) {
    if (first_tile >= 0) write_part(first_tile, first_acc);
    if (!last_whole) write_part(last_tile, acc);
    __threadfence();  // the slots are visible device-wide before the counts say so
    __syncwarp();
    if (first_tile >= 0) arrive(first_tile);
    if (!last_whole) arrive(last_tile);
  }
}

#if !defined(LLMACCEL_SIMT_EMU)  // launch syntax: nvcc only (the emulator includes the kernels)
// Configurations: U units per stage, S stages: 5 KB of weights in flight per warp at U = 4.
template <class T, bool ZP, int MT, int U, int GU>
void launch_decode_cfg(const SwapAbParams& p, const DecodeSplit& sp, int cpg,
                       cudaStream_t stream) {
  constexpr int S = U == 4 ? 6 : 8;
  constexpr int kSmem = kDecodeWarps * S * U * 256;  // ≤ 48 KB: no opt-in needed
  static_assert(kSmem <= 48 * 1024, "above 48 KB the kernel needs cudaFuncSetAttribute");
  const int blocks = (sp.warps + kDecodeWarps - 1) / kDecodeWarps;
  gemm_decode_w4_kernel<T, ZP, MT, U, GU, S><<<blocks, kDecodeWarps * 32, kSmem, stream>>>(
      p, sp, cpg);
}

template <class T, bool ZP, int U, int GU>
void launch_decode_u(const SwapAbParams& p, const DecodeSplit& sp, int cpg, cudaStream_t stream) {
  if (p.m <= 8) launch_decode_cfg<T, ZP, 1, U, GU>(p, sp, cpg, stream);
  else launch_decode_cfg<T, ZP, 2, U, GU>(p, sp, cpg, stream);
}


// Plans the split for the current device, checks the caller's workspace, launches.
template <class T, bool ZP>
void run_decode_w4(const char* op, const SwapAbParams& p, const DecodeWorkspace& ws, int cpg,
                   cudaStream_t stream) {
  require(int64_t(p.n_tiles) * p.nk < (int64_t(1) << 31), op, "too many weight chunks");
  const DecodeShape sh = decode_shape(p.nk, cpg);
  DecodeSplit sp = plan_decode(p.n_tiles, p.nk, sh.u, current_device_sms());
  require(ws.counters && ws.partials && ws.n_counters >= p.n_tiles &&
              ws.partial_bytes >= decode_partial_bytes(sp, p.m, p.n_tiles),
          op, "the decode workspace is missing or too small (size it with decode_workspace)");
  sp.counters = ws.counters;
  sp.partials = static_cast<float*>(ws.partials);
  if (sh.u == 1) launch_decode_u<T, ZP, 1, 0>(p, sp, cpg, stream);
  else if (sh.gu == 0) launch_decode_u<T, ZP, 4, 0>(p, sp, cpg, stream);
  else if (sh.gu == 1) launch_decode_u<T, ZP, 4, 1>(p, sp, cpg, stream);
  else launch_decode_u<T, ZP, 4, 2>(p, sp, cpg, stream);
}

#endif  // LLMACCEL_SIMT_EMU

}  // namespace llmaccel::cuda
