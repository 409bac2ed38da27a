// The consumer warpgroups' side of the wgmma GEMMs (gemm_wgmma.cuh has the block's shape and
// the main loop, gemm_wgmma_produce.cuh the block's start and the producer): the loop over a block's work items, the epilogue, a K split's raw sums and
// the kernel that reduces them. The kernels (gemm_w8a8_wgmma.cuh, gemm_w4a16_wgmma.cuh,
// gemm_w8a16_wgmma.cuh) include this header.
#pragma once
#include "gemm/gemm_wgmma.cuh"

namespace llmaccel::cuda {

// Epilogue of a consumer thread (threads 0-255). acc[4i + e] is (weight row g, x row
// 8i + 2t + e) of its warp's 16 rows, acc[4i + 2 + e] the same x rows for weight row g + 8
// (CLayout_64xN). y = acc · (xscale[m] · scale[n]) + bias[n] with kOutScales (int8 weights: the
// per-channel scale, and w8a8's per-token x scale where p.xscale is given; else acc + bias[n]:
// the int4 scales are already in the weights), rounded to T, staged as y[x row][output] in the
// staging tile (the first barrier: every consumer has stored the previous tile, or pass, from
// it) and stored as 16-byte row pieces; kRows x rows at a time (Cfg::kStagingRows).
template <class T, bool kOutScales, int kRows, class Acc, int kA>
__device__ void wgmma_epilogue(const WgmmaParams& p, const Acc (&acc)[kA], int wb, int xb,
                               uint8_t* smem) {
  constexpr int kN = 2 * kA;  // x rows of the block
#if defined(LLMACCEL_WGMMA_BODY)
  using A = Act16<T>;
  const int tid = threadIdx.x, lane = tid & 31, wwarp = tid >> 5;
  T* stage = reinterpret_cast<T*>(smem);
  const int g = lane >> 2, t = lane & 3;
  const int nl = wwarp * 16 + g, n0 = wb * kWgWRows + nl;
  const auto per_output = [&](const float* v, int n, float dflt) {
    return v && n < p.n ? __ldg(v + n) : dflt;
  };
  const float sw0 = per_output(kOutScales ? p.scales : nullptr, n0, 1.f);
  const float sw1 = per_output(kOutScales ? p.scales : nullptr, n0 + 8, 1.f);
  const float b0 = per_output(p.bias, n0, 0.f), b1 = per_output(p.bias, n0 + 8, 0.f);
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int pass = 0; pass < kN / kRows; ++pass) {
    const int r0 = pass * kRows;  // the pass's first x row in the block
    consumer_barrier();
#pragma unroll
    for (int i = r0 / 8; i < (r0 + kRows) / 8; ++i) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int ml = 8 * i + 2 * t + e, m = xb * kN + ml, sl = (ml - r0) * kWgPitch + nl;
        const float sx = kOutScales && p.xscale && m < p.m ? __ldg(p.xscale + m) : 1.f;
        stage[sl] = A::from_float(fmaf(float(acc[4 * i + e]), sx * sw0, b0));
        stage[sl + 8] = A::from_float(fmaf(float(acc[4 * i + 2 + e]), sx * sw1, b1));
      }
    }
    consumer_barrier();
#pragma unroll 4
    for (int it = 0; it < kRows * (kWgWRows / 8) / 256; ++it) {
      const int idx = it * 256 + tid, row = idx >> 4, piece = idx & 15;
      const int m = xb * kN + r0 + row, n = wb * kWgWRows + piece * 8;
      if (m >= p.m || n >= p.n) continue;
      const T* src = stage + row * kWgPitch + piece * 8;
      T* dst = out + int64_t(m) * p.ldo + n;
      if (p.vec_out && n + 8 <= p.n) {
        *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
      } else {
        for (int e = 0; e < 8 && n + e < p.n; ++e) dst[e] = src[e];
      }
    }
  }
#endif
}

// A split work item's raw sums into partial[split][m][n] (threads 0-255; the CLayout of the
// epilogue): no scales, no rounding, so that the reduction sees exact int32 sums (w8a8) or the
// fp32 sums (w4a16, w8a16).
template <class Acc, int kA>
__device__ void wgmma_store_partial(const WgmmaParams& p, const Acc (&acc)[kA], int wb, int xb,
                                    int split) {
  constexpr int kN = 2 * kA;
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int n0 = wb * kWgWRows + (threadIdx.x >> 5) * 16 + g;
  const int64_t n_pad = int64_t(p.n_tiles) * 16;
  Acc* part = static_cast<Acc*>(p.partial) + int64_t(split) * p.m * n_pad;
#pragma unroll
  for (int i = 0; i < kN / 8; ++i)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int m = xb * kN + 8 * i + 2 * t + e;
      if (m >= p.m) continue;
      if (n0 < p.n) part[m * n_pad + n0] = acc[4 * i + e];
      if (n0 + 8 < p.n) part[m * n_pad + n0 + 8] = acc[4 * i + 2 + e];
    }
}

// The consumer warpgroups' whole part of a kernel: for each of the block's work items, zeroed
// accumulators, the main loop with the kernel's fragment filler (Filler(p, sm, work, wb), made
// per work item; operator()(slot, kt, a) fills a stage's Filler::kSteps A fragments), then the
// epilogue (kOutScales: wgmma_epilogue's) or the split's raw sums; the cluster's closing sync.
template <class Cfg, class T, bool kOutScales, class Acc, class Filler>
__device__ __forceinline__ void wgmma_consume(const WgmmaParams& p, const WgmmaSmem<Cfg>& sm) {
#if defined(LLMACCEL_WGMMA_BODY)
  const WgmmaSeat seat = wgmma_seat(p);
  const int peer = p.cluster > 1 ? seat.rank ^ 1 : -1;
  int it = 0;  // stages consumed, over all of this block's work items (the producer's count)
  for (int w = seat.first; w < p.tiles * p.splits; w += seat.stride) {
    const WgmmaWork work(p, w);
    int wb, xb;
    wgmma_block_coords(p, work.tile, seat.rank, wb, xb);
    const bool active = wb < p.w_blocks;
    Acc acc[Cfg::kAcc];
    wgmma_zero_acc(acc);
    Filler fill(p, sm, work, wb);
    wgmma_mainloop<Cfg, Filler::kSteps, T>(sm, work, it, acc, fill, active, peer,
                                           p.release_lanes);
    LLMACCEL_TRACE(if (threadIdx.x == 0) trace_head_now(kTrConsumed, kTrConsumedClk));
    if (!active) continue;
    if (p.splits > 1) wgmma_store_partial(p, acc, wb, xb, work.split);
    else wgmma_epilogue<T, kOutScales, Cfg::kStagingRows>(p, acc, wb, xb, sm.staging);
  }
  wgmma_cluster_sync(p);
#endif
}

// The splits' sums in split order, then the epilogue's formula (wgmma_epilogue): bit-identical to
// one work item per tile for w8a8 (exact int32 sums), run to run for all.
template <class T, bool kOutScales, class Acc>
__global__ void __launch_bounds__(256) wgmma_reduce_kernel(const WgmmaParams p) {
  const int64_t n_pad = int64_t(p.n_tiles) * 16, total = int64_t(p.m) * p.n;
  const Acc* part = static_cast<const Acc*>(p.partial);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = idx / p.n, n = idx % p.n;
    Acc sum = part[m * n_pad + n];
    for (int z = 1; z < p.splits; ++z) sum += part[(z * int64_t(p.m) + m) * n_pad + n];
    const float sx = kOutScales && p.xscale ? __ldg(p.xscale + m) : 1.f;
    const float sw = kOutScales ? __ldg(p.scales + n) : 1.f;
    const float b = p.bias ? __ldg(p.bias + n) : 0.f;
    static_cast<T*>(p.out)[m * p.ldo + n] = Act16<T>::from_float(fmaf(float(sum), sx * sw, b));
  }
}

}  // namespace llmaccel::cuda
