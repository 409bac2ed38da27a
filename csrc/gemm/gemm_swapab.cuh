// Small-M GEMM on tensor cores with the operands swapped: outᵀ (N × M) = W (N × K) · xᵀ (K × M).
// The weight tile is the 16-row MMA operand A and the few activation rows fill the 8-wide
// operand B, so M = 1..8 wastes nothing of the weight stream (the reason decode is fast).
//
// Work split: one block = 8 warps on R row tiles (16·R output rows) and 8·MT rows of x; the
// warps split K, each taking U consecutive 32-column chunks at a time (U·256 B of int4 weights
// per warp, contiguous: the block reads one stretch of the tile), and their partial sums meet
// in shared memory at the end. Weights go straight from global memory into registers in the
// fragment order the MMA takes (formats.py: int4/int8_cuda_mma16x32): each byte is read once,
// with an L2 evict-first hint, and needs no shared-memory staging because no other warp uses
// it. x is read through L1 (every block reads it).
//
// Dequantization is by bit tricks: a nibble OR-ed under the 2^p magic (Act16) gives 2^p + q
// exactly, one subtraction of 2^p + zero gives q − zero exactly, and one multiply by the group
// scale rounds once to the activation type (int4). int8 codes stay exact integers in the MMA and
// their per-row scale is applied in fp32 at the end (int8 × 16-bit) or multiplied exactly as
// int8 × int8 (W8A8, int32 accumulators).
#pragma once
#include "cuda/cuda_common.cuh"

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

// One chunk's weight words of one lane for one tile.
template <Wo KIND> struct WFrag { uint32_t v[WoWords<KIND>::kWords]; };

template <Wo KIND>
__device__ __forceinline__ WFrag<KIND> load_wfrag(const uint32_t* w, int64_t idx, uint64_t pol) {
  WFrag<KIND> f;
  if constexpr (KIND == Wo::W4A16) {
    uint2 u = ld_stream_v2(w + idx * 2, pol);
    f.v[0] = u.x; f.v[1] = u.y;
  } else {
    uint4 u = ld_stream_v4(w + idx * 4, pol);
    f.v[0] = u.x; f.v[1] = u.y; f.v[2] = u.z; f.v[3] = u.w;
  }
  return f;
}

// int4 word (8 nibbles, formats.py order) → the four A registers of one m16n8k16 step:
// (q − zero) · scale in T, rows r (regs 0, 2) and r + 8 (regs 1, 3).
template <class T>
__device__ __forceinline__ void dequant_w4_step(uint32_t word, uint32_t zp_lo, uint32_t zp_hi,
                                                uint32_t s_lo, uint32_t s_hi, uint32_t a[4]) {
  using A = Act16<T>;
  using T2 = typename A::T2;
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const uint32_t v = ((word >> (4 * p)) & 0x000F000Fu) | A::kMagic;
    const uint32_t zp = (p & 1) ? zp_hi : zp_lo, s = (p & 1) ? s_hi : s_lo;
    a[p] = as_u32(A::mul(A::sub(as_t2<T2>(v), as_t2<T2>(zp)), as_t2<T2>(s)));
  }
}

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
template <Wo KIND, class T, bool ZP, int MT, int R, int U>
__global__ void __launch_bounds__(kSwapAbWarps * 32)
    gemm_swapab_kernel(const SwapAbParams p) {
  constexpr int KW = kSwapAbWarps;
  constexpr bool kInt = KIND == Wo::W8A8;
  using Acc = typename std::conditional<kInt, int, float>::type;
  using XFrag = typename std::conditional<kInt, uint2, uint4>::type;  // one lane, one chunk
  using A = Act16<T>;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r = lane >> 2, j = lane & 3;
  const int tile0 = blockIdx.x * R;
  const int m0 = blockIdx.y * MT * 8;
  const uint64_t pol = l2_evict_first_policy();

  Acc acc[R][MT][4];
#pragma unroll
  for (int t = 0; t < R; ++t)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[t][mt][i] = 0;

  // Row of x this lane feeds into operand B of m-tile mt, or -1 past m.
  int xrow[MT];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) xrow[mt] = (m0 + mt * 8 + r < p.m) ? m0 + mt * 8 + r : -1;

  // Weights: register double buffer, so the next trip's U chunks are in flight while this
  // trip's are multiplied (a warp alone keeps U·256 B of int4 codes on the way at all times).
  // Activations and scales are read when used: they are L1/L2 hits shared by every block.
  auto load_trip = [&](int c0, WFrag<KIND> (&wf)[U][R]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
#pragma unroll
      for (int t = 0; t < R; ++t) {
        if (c < p.nk && tile0 + t < p.n_tiles) {
          wf[u][t] = load_wfrag<KIND>(p.w, (int64_t(tile0 + t) * p.nk + c) * 32 + lane, pol);
        } else {
#pragma unroll
          for (int i = 0; i < WoWords<KIND>::kWords; ++i) wf[u][t].v[i] = 0;
        }
      }
    }
  };
  auto compute_trip = [&](int c0, const WFrag<KIND> (&wf)[U][R]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      if (c >= p.nk) break;
      const int col = c * 32 + j * 8;
      XFrag xf[MT];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if (xrow[mt] >= 0 && col < p.k) {
          if constexpr (kInt)
            xf[mt] = __ldg(reinterpret_cast<const uint2*>(
                static_cast<const int8_t*>(p.x) + xrow[mt] * p.ldx + col));
          else
            xf[mt] = __ldg(reinterpret_cast<const uint4*>(
                static_cast<const T*>(p.x) + xrow[mt] * p.ldx + col));
        } else {
          if constexpr (kInt) xf[mt] = make_uint2(0, 0);
          else xf[mt] = make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int t = 0; t < R; ++t) {
        if constexpr (KIND == Wo::W8A8) {
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) mma_16832_s8(acc[t][mt], wf[u][t].v, xf[mt].x, xf[mt].y);
        } else {
          uint32_t a[2][4];
          if constexpr (KIND == Wo::W4A16) {
            // Group of this chunk (groups are whole chunks); padded tiles have scale 0.
            const int tile = min(tile0 + t, p.n_tiles - 1);
            const int g = min(c * 32 / p.group, p.n_groups - 1);
            const int64_t mi = (int64_t(tile) * p.n_groups + g) * 16 + r;
            const uint32_t s_lo = as_u32(A::splat(__ldg(p.scales + mi)));
            const uint32_t s_hi = as_u32(A::splat(__ldg(p.scales + mi + 8)));
            uint32_t zp_lo = A::kMagic | 0x00080008u, zp_hi = zp_lo;
            if constexpr (ZP) {
              zp_lo = A::kMagic | (uint32_t(__ldg(p.zeros + mi)) * 0x00010001u);
              zp_hi = A::kMagic | (uint32_t(__ldg(p.zeros + mi + 8)) * 0x00010001u);
            }
            dequant_w4_step<T>(wf[u][t].v[0], zp_lo, zp_hi, s_lo, s_hi, a[0]);
            dequant_w4_step<T>(wf[u][t].v[1], zp_lo, zp_hi, s_lo, s_hi, a[1]);
          } else {
            dequant_w8_step(wf[u][t].v[0], wf[u][t].v[1], a[0], T());
            dequant_w8_step(wf[u][t].v[2], wf[u][t].v[3], a[1], T());
          }
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816(acc[t][mt], a[0], xf[mt].x, xf[mt].y, T());
            mma_16816(acc[t][mt], a[1], xf[mt].z, xf[mt].w, T());
          }
        }
      }
    }
  };

  WFrag<KIND> buf[2][U][R];
  int c0 = warp * U;
  if (c0 < p.nk) load_trip(c0, buf[0]);
  // Two trips per iteration so the buffers swap roles by name, not by register copies.
  for (; c0 < p.nk; c0 += 2 * KW * U) {
    const int c1 = c0 + KW * U;
    if (c1 < p.nk) load_trip(c1, buf[1]);
    compute_trip(c0, buf[0]);
    if (c1 >= p.nk) break;
    const int c2 = c1 + KW * U;
    if (c2 < p.nk) load_trip(c2, buf[0]);
    compute_trip(c1, buf[1]);
  }

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
}

}  // namespace llmaccel::cuda

namespace llmaccel::cuda {

// MT (8-row tiles of x per block) by M; R (row tiles per warp) grows with MT so a fetched
// activation fragment feeds more MMAs; U (chunks per warp per trip) keeps 4 KB of weights in
// flight per warp (double-buffered: 8 KB of registers) at M ≤ 16, less where the accumulators
// take the room. First H100 run with 2 KB and no double buffer: 35-39 % of HBM bandwidth.
template <Wo KIND, class T, bool ZP, int MT, int R, int U>
void launch_swapab_mt(const SwapAbParams& p, cudaStream_t stream) {
  const dim3 grid((p.n_tiles + R - 1) / R, (p.m + MT * 8 - 1) / (MT * 8));
  gemm_swapab_kernel<KIND, T, ZP, MT, R, U><<<grid, kSwapAbWarps * 32, 0, stream>>>(p);
}

template <Wo KIND, class T, bool ZP>
void launch_swapab(const SwapAbParams& p, cudaStream_t stream) {
  constexpr int kU = KIND == Wo::W4A16 ? 16 : 8;  // 4 KB of weights per warp per trip
  if (p.m <= 8) launch_swapab_mt<KIND, T, ZP, 1, 1, kU>(p, stream);
  else if (p.m <= 16) launch_swapab_mt<KIND, T, ZP, 2, 1, kU>(p, stream);
  else if (p.m <= 32) launch_swapab_mt<KIND, T, ZP, 4, 2, kU / 2>(p, stream);
  else launch_swapab_mt<KIND, T, ZP, 8, 2, kU / 4>(p, stream);
}

}  // namespace llmaccel::cuda
