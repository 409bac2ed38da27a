// Small-M GEMM on tensor cores with the operands swapped: outᵀ (N × M) = W (N × K) · xᵀ (K × M).
// The weight tile is the 16-row MMA operand A and the few activation rows fill the 8-wide
// operand B, so M = 1..8 wastes nothing of the weight stream (the reason decode is fast).
//
// Work split: one block = 8 warps on R row tiles (16·R output rows) and 8·MT rows of x; the
// warps split K, each taking U consecutive 32-column chunks per trip (trips interleave, so the
// block reads one stretch of the tile), and their partial sums meet in shared memory at the end.
// Weights are read once, in the fragment order the MMA takes (formats/cuda.py:
// int4/int8_cuda_mma16x32), through a per-warp multi-stage cp.async ring (.cg: past L1); no other
// warp uses them, so the ring needs no block barrier. x and the group scales are read one trip
// ahead into registers through L1 (every block reads x). Measured on H100 (bench/gpu/NOTES.md):
// bound by instruction issue, not by bytes in flight.
//
// Dequantization is by bit tricks: a nibble OR-ed under the 2^p magic (Act16) gives 2^p + q
// exactly, one subtraction of 2^p + zero gives q − zero exactly, and one multiply by the group
// scale rounds once to the activation type (int4). int8 codes stay exact integers in the MMA and
// their per-row scale is applied in fp32 at the end (int8 × 16-bit) or multiplied exactly as
// int8 × int8 (W8A8, int32 accumulators).
#pragma once
#include "cuda/cuda_common.cuh"
#include "cuda/kernel_trace.cuh"
#include "gemm/gemm_dequant_frag.cuh"

namespace llmaccel::cuda {

enum class Wo { W4A16, W8A16, W8A8 };

struct SwapAbParams {
  const void* x;        // (m, ldx): T for W4A16/W8A16, int8 for W8A8; columns ≥ k are not read
  const float* xscale;  // W8A8: per-row activation scale (m)
  const uint32_t* w;    // device layout, (n_tiles, nk, 32, 2 or 4) words
  const float* scales;  // W4: (n_tiles, n_groups, 16); W8: (n_tiles*16)
  const uint8_t* zeros; // W4 asymmetric: like scales; else null
  const float* bias;    // (n) or null
  void* out;            // (m, ldo), T
  int64_t ldx, ldo;
  int m, n, k;          // k: valid columns of x, a multiple of 8
  int n_tiles, nk;      // 16-row tiles and 32-column chunks in the layout
  int group, n_groups;  // W4
};

constexpr int kSwapAbWarps = 8;

template <Wo KIND> struct WoWords { static constexpr int kWords = KIND == Wo::W4A16 ? 2 : 4; };

// int8 words (row r: w_lo, row r + 8: w_hi; bytes = columns) → the A registers of one
// m16n8k16 step as exact integers in T.
__device__ __forceinline__ void dequant_w8_step(uint32_t w_lo, uint32_t w_hi, uint32_t a[4],
                                                __half) {
  // Bias the signed byte to 0..255, place it under fp16 1024 (ULP 1), subtract 1024 + 128.
  const uint32_t lo = w_lo ^ 0x80808080u, hi = w_hi ^ 0x80808080u;
  const __half2 bias = as_t2<__half2>(0x64806480u);
  a[0] = as_u32(__hsub2(as_t2<__half2>(__byte_perm(lo, 0x64646464u, 0x4140)), bias));
  a[1] = as_u32(__hsub2(as_t2<__half2>(__byte_perm(hi, 0x64646464u, 0x4140)), bias));
  a[2] = as_u32(__hsub2(as_t2<__half2>(__byte_perm(lo, 0x64646464u, 0x4342)), bias));
  a[3] = as_u32(__hsub2(as_t2<__half2>(__byte_perm(hi, 0x64646464u, 0x4342)), bias));
}
__device__ __forceinline__ uint32_t w8_pair_bf16(uint32_t biased, int first) {
  // bf16 has no exponent with ULP 1 over 0..255, so go through fp32: 2^23 + u, minus 2^23 + 128.
  const float f0 = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7440 + first)) - 8388736.f;
  const float f1 =
      __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7440 + first + 1)) - 8388736.f;
  return Act16<__nv_bfloat16>::pack2(f0, f1);
}
__device__ __forceinline__ void dequant_w8_step(uint32_t w_lo, uint32_t w_hi, uint32_t a[4],
                                                __nv_bfloat16) {
  const uint32_t lo = w_lo ^ 0x80808080u, hi = w_hi ^ 0x80808080u;
  a[0] = w8_pair_bf16(lo, 0);
  a[1] = w8_pair_bf16(hi, 0);
  a[2] = w8_pair_bf16(lo, 2);
  a[3] = w8_pair_bf16(hi, 2);
}

// T: the activation/output type (for W8A8 only the output type).
// Per chunk and row tile, what a lane needs besides its weights: the activation fragments and
// (int4) the two group scales and zero points of its rows. Read one trip ahead into registers.
template <Wo KIND, class T, int MT, int R> struct ChunkIn {
  typename std::conditional<KIND == Wo::W8A8, uint2, uint4>::type x[MT];
  uint32_t s_lo[R], s_hi[R], zp_lo[R], zp_hi[R];  // T2 bit patterns (W4A16 only)
};

// T: the activation/output type (for W8A8 only the output type). U chunks per trip, S stages.
template <Wo KIND, class T, bool ZP, int MT, int R, int U, int S>
__global__ void __launch_bounds__(kSwapAbWarps * 32, MT == 1 ? 3 : 1)  // M ≤ 8: 24 warps per SM
    gemm_swapab_kernel(const SwapAbParams p) {
  constexpr int KW = kSwapAbWarps;
  constexpr bool kInt = KIND == Wo::W8A8;
  constexpr int WB = WoWords<KIND>::kWords * 4;  // weight bytes per lane, chunk and tile
  constexpr int kStage = U * R * 32 * WB;        // one warp's ring slot
  using Acc = typename std::conditional<kInt, int, float>::type;
  using A = Act16<T>;
  using In = ChunkIn<KIND, T, MT, R>;

  LLMACCEL_DYNAMIC_SMEM(smem);
  LLMACCEL_TRACE(const TraceEntry trace_in = trace_entry());
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r = lane >> 2, j = lane & 3;
  const int tile0 = blockIdx.x * R;
  const int m0 = blockIdx.y * MT * 8;
  uint8_t* ring = smem + warp * S * kStage;  // this warp's S slots
  const uint8_t* wbytes = reinterpret_cast<const uint8_t*>(p.w);

  Acc acc[R][MT][4];
#pragma unroll
  for (int t = 0; t < R; ++t)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[t][mt][i] = 0;

  int xrow[MT];  // row of x this lane feeds into operand B of m-tile mt, or -1 past m
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) xrow[mt] = (m0 + mt * 8 + r < p.m) ? m0 + mt * 8 + r : -1;

  // Trips of this warp: U consecutive chunks at c0 = (warp + KW·t)·U.
  const int first = warp * U;
  const int trips = first < p.nk ? (p.nk - first + KW * U - 1) / (KW * U) : 0;
  auto trip_c0 = [&](int t) { return first + t * KW * U; };

  // Weights: a multi-stage cp.async ring per warp, in 16-byte pieces: a (chunk, tile) unit
  // is 32·WB bytes, so piece q of unit v lands at v·32·WB + 16q. int4 units hold two lanes'
  // words per piece, so the warp syncs (__syncwarp) after each wait before lanes read.
  constexpr int kPieces = U * R * 2 * WB;  // 16-byte pieces per slot (≡ 32·WB·U·R / 16)
  static_assert(kPieces % 32 == 0, "a slot must split evenly over the warp's lanes");
  auto issue = [&](int t) {
    uint8_t* dst = ring + (t % S) * kStage;
    const int c0 = trip_c0(t);
#pragma unroll
    for (int i = 0; i < kPieces / 32; ++i) {
      const int q = i * 32 + lane, unit = q / (2 * WB), piece = q % (2 * WB);
      const int u = unit / R, rt = unit % R, c = c0 + u;
      void* d = dst + unit * 32 * WB + piece * 16;
      if (c < p.nk && tile0 + rt < p.n_tiles)
        cp_async16(d, wbytes + (int64_t(tile0 + rt) * p.nk + c) * 32 * WB + piece * 16, 16);
      else
        cp_async16(d, wbytes, 0);
    }
  };
  auto load_in = [&](int t, In (&in)[U]) {
    const int c0 = trip_c0(t);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u, col = c * 32 + j * 8;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if (xrow[mt] >= 0 && c < p.nk && col < p.k) {
          if constexpr (kInt)
            in[u].x[mt] = __ldg(reinterpret_cast<const uint2*>(
                static_cast<const int8_t*>(p.x) + xrow[mt] * p.ldx + col));
          else
            in[u].x[mt] = __ldg(reinterpret_cast<const uint4*>(
                static_cast<const T*>(p.x) + xrow[mt] * p.ldx + col));
        } else {
          if constexpr (kInt) in[u].x[mt] = make_uint2(0, 0);
          else in[u].x[mt] = make_uint4(0, 0, 0, 0);
        }
      }
      if constexpr (KIND == Wo::W4A16) {
#pragma unroll
        for (int rt = 0; rt < R; ++rt) {
          // Group of this chunk (groups are whole chunks); padded tiles have scale 0.
          const int tile = min(tile0 + rt, p.n_tiles - 1);
          const int g = min(min(c, p.nk - 1) * 32 / p.group, p.n_groups - 1);
          const int64_t mi = (int64_t(tile) * p.n_groups + g) * 16 + r;
          in[u].s_lo[rt] = as_u32(A::splat(__ldg(p.scales + mi)));
          in[u].s_hi[rt] = as_u32(A::splat(__ldg(p.scales + mi + 8)));
          if constexpr (ZP) {
            in[u].zp_lo[rt] = A::kMagic | (uint32_t(__ldg(p.zeros + mi)) * 0x00010001u);
            in[u].zp_hi[rt] = A::kMagic | (uint32_t(__ldg(p.zeros + mi + 8)) * 0x00010001u);
          } else {
            in[u].zp_lo[rt] = in[u].zp_hi[rt] = A::kMagic | 0x00080008u;
          }
        }
      }
    }
  };
  auto compute = [&](int t, const In (&in)[U]) {
    const uint8_t* src = ring + (t % S) * kStage;
    const int c0 = trip_c0(t);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (c0 + u >= p.nk) break;
#pragma unroll
      for (int rt = 0; rt < R; ++rt) {
        const uint8_t* wp = src + ((u * R + rt) * 32 + lane) * WB;
        uint32_t w[4];
        if constexpr (WB == 8) {
          const uint2 v = *reinterpret_cast<const uint2*>(wp);
          w[0] = v.x; w[1] = v.y; w[2] = w[3] = 0;
        } else {
          const uint4 v = *reinterpret_cast<const uint4*>(wp);
          w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
        }
        if constexpr (KIND == Wo::W8A8) {
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) mma_16832_s8(acc[rt][mt], w, in[u].x[mt].x, in[u].x[mt].y);
        } else {
          uint32_t a[2][4];
          if constexpr (KIND == Wo::W4A16) {
            dequant_w4_step<T>(w[0], in[u].zp_lo[rt], in[u].zp_hi[rt], in[u].s_lo[rt],
                               in[u].s_hi[rt], a[0]);
            dequant_w4_step<T>(w[1], in[u].zp_lo[rt], in[u].zp_hi[rt], in[u].s_lo[rt],
                               in[u].s_hi[rt], a[1]);
          } else {
            dequant_w8_step(w[0], w[1], a[0], T());
            dequant_w8_step(w[2], w[3], a[1], T());
          }
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816(acc[rt][mt], a[0], in[u].x[mt].x, in[u].x[mt].y, T());
            mma_16816(acc[rt][mt], a[1], in[u].x[mt].z, in[u].x[mt].w, T());
          }
        }
      }
    }
  };
  // One trip: its weights landed (all but the newest S-2 copy groups are complete), refill the
  // slot the previous trip freed, fetch the next trip's activations, multiply this one.
  auto step = [&](int t, const In (&cur)[U], In (&nxt)[U]) {
    LLMACCEL_TRACE(if (threadIdx.x == 0) trace_stage(t, kTsWaitFull, trace_clock()));
    cp_async_wait<S - 2>();
    __syncwarp();  // other lanes' pieces of this slot are visible; all lanes left slot t-1
    LLMACCEL_TRACE(if (threadIdx.x == 0) {
      trace_stage(t, kTsFull, trace_clock());
      if (t == 0) trace_head_now(kTrFirstFull, kTrFirstFullClk);
    });
    if (t + S - 1 < trips) issue(t + S - 1);
    cp_async_commit();  // one group per trip, empty or not, so the wait count stays exact
    if (t + 1 < trips) load_in(t + 1, nxt);
    compute(t, cur);
    LLMACCEL_TRACE(if (threadIdx.x == 0) trace_stage(t, kTsReleased, trace_clock()));
  };

#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < trips) issue(s);
    cp_async_commit();
  }
  In in0[U], in1[U];
  if (trips > 0) load_in(0, in0);
  for (int t = 0; t < trips; t += 2) {  // two per iteration: the register buffers swap by name
    step(t, in0, in1);
    if (t + 1 < trips) step(t + 1, in1, in0);
  }
  cp_async_wait<0>();
  LLMACCEL_TRACE(if (threadIdx.x == 0) trace_head_now(kTrConsumed, kTrConsumedClk));

  // The warps' partial sums over their K chunks meet in shared memory (a tree of halvings).
  constexpr int kRegs = R * MT * 4;
  __shared__ Acc red[KW / 2][kRegs][32];
#pragma unroll
  for (int half = KW / 2; half >= 1; half >>= 1) {
    if (warp >= half && warp < 2 * half) {
#pragma unroll
      for (int t = 0; t < R; ++t)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int i = 0; i < 4; ++i) red[warp - half][(t * MT + mt) * 4 + i][lane] = acc[t][mt][i];
    }
    __syncthreads();
    if (warp < half) {
#pragma unroll
      for (int t = 0; t < R; ++t)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[t][mt][i] += red[warp][(t * MT + mt) * 4 + i][lane];
    }
    __syncthreads();
  }
  if (warp != 0) return;

  // C fragment: (row r, cols 2j, 2j+1) and (row r+8, same); rows are outputs n, cols are m.
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int t = 0; t < R; ++t) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int n = (tile0 + t) * 16 + r + 8 * h;
      if (n >= p.n) continue;
      const float b = p.bias ? __ldg(p.bias + n) : 0.f;
      const float ws = KIND == Wo::W4A16 ? 1.f : __ldg(p.scales + n);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int m = m0 + mt * 8 + 2 * j + e;
          if (m >= p.m) continue;
          float v;
          if constexpr (kInt)
            v = float(acc[t][mt][2 * h + e]) * (__ldg(p.xscale + m) * ws) + b;
          else
            v = acc[t][mt][2 * h + e] * ws + b;
          out[int64_t(m) * p.ldo + n] = A::from_float(v);
        }
      }
    }
  }
  LLMACCEL_TRACE(trace_exit(trace_in, S, 1));
}

}  // namespace llmaccel::cuda

#if !defined(LLMACCEL_SIMT_EMU)  // launch syntax: nvcc only (the emulator includes the kernels)
namespace llmaccel::cuda {

// MT (8-row tiles of x per block) by M; R (row tiles per warp) grows with MT so a fetched
// activation fragment feeds more MMAs; U (chunks per trip) shrinks as the activation registers
// grow, and S (ring stages) grows so each warp keeps ~3 KB of weights in flight: 3 (S-1) slots
// of U·R·256 B (int4). Earlier versions held weights in registers: 2 KB per warp without
// overlap, 35-39 % of HBM at M=1; 4 KB double-buffered with x read at use, 25-28 % (H100).
template <Wo KIND, class T, bool ZP, int MT, int R, int U, int S>
void launch_swapab_mt(const SwapAbParams& p, cudaStream_t stream) {
  constexpr int kSmem = kSwapAbWarps * S * U * R * 32 * WoWords<KIND>::kWords * 4;
  auto kernel = gemm_swapab_kernel<KIND, T, ZP, MT, R, U, S>;
  // Static (the reduction buffer) plus dynamic shared memory above 48 KB needs this opt-in
  // (per device; cheap to repeat).
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  const dim3 grid((p.n_tiles + R - 1) / R, (p.m + MT * 8 - 1) / (MT * 8));
  kernel<<<grid, kSwapAbWarps * 32, kSmem, stream>>>(p);
}

// int4 at M ≤ kDecodeMaxM runs the decode kernel (gemm_decode.cuh) instead; int8 stays here at
// every M (on the H100 the decode kernel was 5-10 % slower for int8 at M ≤ 16, 2026-11-22).
// M > 16: a 32-row kernel over ceil(M/32) row blocks of x (grid.y), each reading the weights
// again. A 64-row variant (MT=8, one chunk per trip) stopped with an illegal instruction on the
// H100, likely the ptxas fault described at cp_async16 (found later), so it is not built.
template <Wo KIND, class T, bool ZP>
void launch_swapab(const SwapAbParams& p, cudaStream_t stream) {
  constexpr bool k4 = KIND == Wo::W4A16;  // int4: 256 B per chunk and tile; int8: 512 B
  if constexpr (!k4) {
    if (p.m <= 8) return launch_swapab_mt<KIND, T, ZP, 1, 1, 4, 3>(p, stream);
    if (p.m <= 16) return launch_swapab_mt<KIND, T, ZP, 2, 1, 4, 3>(p, stream);
  }
  launch_swapab_mt<KIND, T, ZP, 4, 2, 2, k4 ? 4 : 3>(p, stream);
}

}  // namespace llmaccel::cuda
#endif  // LLMACCEL_SIMT_EMU
