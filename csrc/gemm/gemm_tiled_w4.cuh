// gemm_w4a16 for M above the decode range: x rows as the MMA's A operand, int4 weights as B.
//
// OPT-IN (written 2026-11-22 without a GPU; correct on the H100 2026-11-23 under the tests and
// sanitizers, not yet timed; LLMACCEL_W4_TILED=<max M> turns it on, see gemm_w4a16.cu). The
// swapped kernel it was meant to replace spends 61-107 µs on 4096→14336 at M = 32-64 where the
// bytes take ~12 µs, and dequantize + cuBLAS cannot reach bf16 below M ≈ 2048 (the
// dequantization alone costs about as much as the bf16 GEMM).
//
// Shape of the work: a block is 4 warps over 64 rows of x (four m16 tiles) and 64 outputs; each
// warp owns one 16-row weight tile and multiplies it against all 64 rows, so each dequantized
// weight feeds 8 MMAs (4 m16 tiles × 2 n8 halves). K is split over grid.z when the (N, M) grid
// alone would leave SMs idle; the splits' fp32 partial sums meet in a second kernel, in split
// order (bit-identical run to run).
//
// Why the fragments need no ldmatrix: the int4_cuda_mma16x32 layout holds a lane's weights in the
// MMA A-operand order of the swapped kernel, 16 rows (outputs) × 16 k per word. Read as B (k × n),
// registers a0/a2 of that word are exactly the B fragment of outputs 0-7 and a1/a3 of outputs
// 8-15. The layout's k order inside a chunk is lane j ↔ columns 8j .. 8j+7 (step 0 takes
// 8j .. 8j+3, step 1 8j+4 .. 8j+7), so lane (g, j) needs x[g][8j .. 8j+7]: one 16-byte
// shared-memory read covers both k16 steps' A registers of row g, and a quarter warp (rows g,
// g+1) reads 128 contiguous bytes, free of bank conflicts without a swizzle.
#pragma once
#include <algorithm>
#include <cstdlib>

#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_swapab.cuh"

namespace llmaccel::cuda {

constexpr int kTiledWarps = 4;        // weight tiles (16 outputs each) per block
constexpr int kTiledRows = 64;        // rows of x per block
constexpr int kTiledStages = 4;       // cp.async ring depth, in 32-column chunks
constexpr int kTiledXBytes = kTiledRows * 32 * 2;    // one chunk of x: 64 rows × 32 T
constexpr int kTiledWBytes = kTiledWarps * 32 * 8;   // one chunk of weights: 4 tiles × 256 B
constexpr int kTiledStageBytes = kTiledXBytes + kTiledWBytes;

// LLMACCEL_W4_TILED=<max M>: the largest M (above the decode range) this kernel takes; unset or
// 0: off. Read on every call, like the decode knobs, so one process can compare paths.
// A value that is not a whole integer counts as 0, as in ops/cuda.py's tiled_max_m.
inline int64_t tiled_max_m() {
  const char* e = std::getenv("LLMACCEL_W4_TILED");
  if (!e || !*e) return 0;
  char* end = nullptr;
  const long long v = std::strtoll(e, &end, 10);
  return *end == '\0' && v > 0 ? v : 0;
}

// How many K splits a (m, n_tiles, nk) call uses on `sms` SMs: enough blocks for two waves, each
// split at least 4 chunks, at most 8 splits.
inline int tiled_splits(int64_t m, int64_t n_tiles, int64_t nk, int sms) {
  const int64_t blocks = ((n_tiles + kTiledWarps - 1) / kTiledWarps) *
                         ((m + kTiledRows - 1) / kTiledRows);
  if (blocks >= sms) return 1;
  int64_t s = std::min<int64_t>((2 * sms + blocks - 1) / blocks, 8);
  s = std::max<int64_t>(1, std::min<int64_t>(s, nk / 4));
  const int64_t cps = (nk + s - 1) / s;
  return int((nk + cps - 1) / cps);
}
// fp32 partial sums of a split call: (splits, m, n_tiles·16).
inline int64_t tiled_partial_bytes(int64_t m, int64_t n_tiles, int splits) {
  return splits > 1 ? int64_t(splits) * m * n_tiles * 16 * 4 : 0;
}

template <class T, bool ZP>
__global__ void __launch_bounds__(kTiledWarps * 32)
    gemm_tiled_w4_kernel(const SwapAbParams p, float* partial, int chunks_per_split) {
  using A = Act16<T>;
  LLMACCEL_DYNAMIC_SMEM(smem);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, j = lane & 3;
  const int tile = blockIdx.x * kTiledWarps + warp;  // ≥ n_tiles: zero weights, nothing written
  const int m0 = blockIdx.y * kTiledRows;
  const int c_begin = blockIdx.z * chunks_per_split;
  const int n_chunks = max(0, min(p.nk, c_begin + chunks_per_split) - c_begin);
  const T* x = static_cast<const T*>(p.x);
  const uint8_t* wbytes = reinterpret_cast<const uint8_t*>(p.w);

  // Stage i holds chunk c_begin + i: x rows m0 .. m0+63 (zero past m or past k), then each warp's
  // 256 B of weights.
  auto issue = [&](int i) {
    uint8_t* st = smem + (i % kTiledStages) * kTiledStageBytes;
    const int c = c_begin + i;
#pragma unroll
    for (int e = 0; e < 2; ++e) {  // 256 pieces of 16 B: 64 rows × 4
      const int q = tid + e * kTiledWarps * 32, row = q >> 2, piece = q & 3;
      const int col = c * 32 + piece * 8;
      const bool ok = m0 + row < p.m && col < p.k;
      const T* src = ok ? x + int64_t(m0 + row) * p.ldx + col : x;
      cp_async16(st + row * 64 + piece * 16, src, ok ? 16 : 0);
    }
    if (lane < 16) {
      const bool ok = tile < p.n_tiles;
      const uint8_t* src = ok ? wbytes + (int64_t(tile) * p.nk + c) * 256 + lane * 16 : wbytes;
      cp_async16(st + kTiledXBytes + warp * 256 + lane * 16, src, ok ? 16 : 0);
    }
  };

  float acc[4][2][4] = {};  // [m16 tile][outputs 0-7, 8-15][C fragment]

  const int stile = min(tile, p.n_tiles - 1);
  uint32_t s_lo = 0, s_hi = 0, zp_lo = A::kMagic | 0x00080008u, zp_hi = zp_lo;
  int cur_group = -1;

#pragma unroll
  for (int s = 0; s < kTiledStages - 1; ++s) {
    if (s < n_chunks) issue(s);
    cp_async_commit();
  }
  for (int i = 0; i < n_chunks; ++i) {
    cp_async_wait<kTiledStages - 2>();
    __syncthreads();  // stage i landed for every thread; every warp left stage i - 1
    if (i + kTiledStages - 1 < n_chunks) issue(i + kTiledStages - 1);
    cp_async_commit();  // one group per chunk, empty or not, so the wait count stays exact

    const int c = c_begin + i;
    const int grp = min(c * 32 / p.group, p.n_groups - 1);
    if (grp != cur_group) {
      cur_group = grp;
      const int64_t mi = (int64_t(stile) * p.n_groups + grp) * 16 + g;
      s_lo = as_u32(A::splat(__ldg(p.scales + mi)));
      s_hi = as_u32(A::splat(__ldg(p.scales + mi + 8)));
      if constexpr (ZP) {
        zp_lo = A::kMagic | (uint32_t(__ldg(p.zeros + mi)) * 0x00010001u);
        zp_hi = A::kMagic | (uint32_t(__ldg(p.zeros + mi + 8)) * 0x00010001u);
      }
    }
    const uint8_t* st = smem + (i % kTiledStages) * kTiledStageBytes;
    const uint2 wv = *reinterpret_cast<const uint2*>(st + kTiledXBytes + warp * 256 + lane * 8);
    uint32_t b[2][4];  // per k16 step: outputs 0-7 in b[0], b[2]; outputs 8-15 in b[1], b[3]
    dequant_w4_step<T>(wv.x, zp_lo, zp_hi, s_lo, s_hi, b[0]);
    dequant_w4_step<T>(wv.y, zp_lo, zp_hi, s_lo, s_hi, b[1]);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      const uint4 lo = *reinterpret_cast<const uint4*>(st + (mt * 16 + g) * 64 + j * 16);
      const uint4 hi = *reinterpret_cast<const uint4*>(st + (mt * 16 + g + 8) * 64 + j * 16);
      const uint32_t a0[4] = {lo.x, hi.x, lo.y, hi.y};  // k16 step 0: columns 8j .. 8j+3
      const uint32_t a1[4] = {lo.z, hi.z, lo.w, hi.w};  // k16 step 1: columns 8j+4 .. 8j+7
      mma_16816(acc[mt][0], a0, b[0][0], b[0][2], T());
      mma_16816(acc[mt][1], a0, b[0][1], b[0][3], T());
      mma_16816(acc[mt][0], a1, b[1][0], b[1][2], T());
      mma_16816(acc[mt][1], a1, b[1][1], b[1][3], T());
    }
  }
  cp_async_wait<0>();
  if (tile >= p.n_tiles) return;

  // C fragment of m16n8: (row g, columns 2j, 2j+1) and (row g + 8, same); rows are x rows,
  // columns outputs.
  const int64_t n_pad = int64_t(p.n_tiles) * 16;
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int m = m0 + mt * 16 + g + 8 * (e >> 1);
        const int n = tile * 16 + h * 8 + 2 * j + (e & 1);
        if (m >= p.m || n >= p.n) continue;
        if (partial) {
          partial[(int64_t(blockIdx.z) * p.m + m) * n_pad + n] = acc[mt][h][e];
        } else {
          const float b = p.bias ? __ldg(p.bias + n) : 0.f;
          out[int64_t(m) * p.ldo + n] = A::from_float(acc[mt][h][e] + b);
        }
      }
}

// The splits' partial sums in split order, plus bias, rounded to T.
template <class T>
__global__ void gemm_tiled_w4_reduce(const SwapAbParams p, const float* partial, int splits) {
  const int64_t n_pad = int64_t(p.n_tiles) * 16;
  const int64_t total = int64_t(p.m) * p.n;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = idx / p.n, n = idx % p.n;
    float v = p.bias ? __ldg(p.bias + n) : 0.f;
    for (int z = 0; z < splits; ++z) v += partial[(z * int64_t(p.m) + m) * n_pad + n];
    static_cast<T*>(p.out)[m * p.ldo + n] = Act16<T>::from_float(v);
  }
}

}  // namespace llmaccel::cuda
