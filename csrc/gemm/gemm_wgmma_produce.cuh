// The producer side of the sm_90a wgmma GEMMs (gemm_wgmma.cuh has the shape, the parameters,
// the shared memory and the consumers' main loop; gemm_wgmma_consume.cuh the consumers' loop
// over work items and the epilogue): the start of a block, which hands warpgroup 2 to the
// producer, and the producer warps' copies of weights and x into the ring. The kernels
// (gemm_w8a8_wgmma.cuh, gemm_w4a16_wgmma.cuh, gemm_w8a16_wgmma.cuh) include this header.
#pragma once
#include "gemm/gemm_wgmma.cuh"

namespace llmaccel::cuda {

// One x copy through the tensor map: the box at image row `row` (x_tensor_copy's rows count
// 128-byte rows from the image's start). The emulator has no tensor maps: it copies the bytes
// the box covers, after the bounds the map would enforce.
__device__ __forceinline__ void x_tensor_copy(const WgmmaParams& p, void* dst, int row,
                                              uint64_t* bar) {
#if defined(LLMACCEL_SIMT_EMU)
  if (row < 0 || row + p.x_box_rows > p.x_map_rows) emu::fail("x tensor copy outside the image");
  bulk_copy_g2s(dst, p.xt + int64_t(row) * kWgRowBytes, uint32_t(p.x_box_rows * kWgRowBytes),
                bar);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
      "[%0], [%1, {%2, %3}], [%4];\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(&p.x_map)), "r"(0), "r"(row), "r"(smem_addr(bar))
      : "memory");
#endif
}

// The producer warp: for each of the block's tiles, per k block one bulk copy of its kN rows of
// x (all or part of an image block) and, per weight tile, one run of kChunks chunks of
// kChunkBytes per stage, for Cfg::kG stages at once (fewer at the end of K). Lane t copies
// tile t's run, lane 8 + j the x of the group's stage j: a bulk copy holds its issuing thread,
// so copies from several lanes overlap (wgmma_stages_per_copy). Producer warps (`warp`, the
// benchmark knobs of WgmmaParams::w_warps): with p.w_warps = 2, warps 0 and 1 take the copy
// groups in turn (their weights, their barriers' arming and, without an x warp, their x); with
// p.x_warp the next warp issues every x copy, lanes j · P + q, and the weights warps none. With
// P = 2^p.x_piece_shift a stage's x is P copies, piece q from lane 8 + j · P + q (a weights
// warp) or j · P + q (the x warp). Every warp waits for the released slots of the groups it
// copies into; an x copy that lands before its barrier is armed takes the transaction count
// below zero for a moment, which mbarriers allow (the cluster's multicast copies rely on it too).
// A work item's stages are padded to whole groups: a padding slot gets a plain arrival on its
// full barrier and the consumers pass it back unread (wgmma_mainloop), so both sides count the
// same slots. The ring runs on across tiles, so the next tile's first stages land while the
// consumers finish the last one.
// Tiles past n_tiles and chunks past nk are never copied: their stale bytes meet x columns that
// are zero (past k) or feed outputs never stored (past n).
// The kernel may start before the one that writes x's image has finished (programmatic
// dependent launch, wgmma_launch): the weights do not depend on it, so the first work item's
// first groups (as many as the ring holds) get their weight copies at once, and griddep_wait
// holds only the x copies. In a cluster each block copies its share of the x stage into every
// block's slot (multicast): a slot is refilled only once every block's consumers let it go (the
// empty barriers count the whole cluster's consumer warps).
template <class Cfg>
__device__ void wgmma_produce(const WgmmaParams& p, const WgmmaSmem<Cfg>& sm, int warp) {
  constexpr int kChunks = Cfg::kChunks, kChunkBytes = Cfg::kChunkBytes, kS = Cfg::kStages;
  constexpr int kG = Cfg::kG, kXStage = Cfg::kXStage;
  const int lane = threadIdx.x & 31;
  // weights warps copy the groups g with g % w_warps == warp; the x warp, x for every group
  const bool w_role = warp < p.w_warps, x_role = p.x_warp && warp == p.w_warps;
  const int w_mask = p.w_warps - 1;  // 1 or 2 warps: g % w_warps
  // Arms the group at slot s (n of its kG stages real: k blocks kt ..) and copies its weights.
  const auto weights = [&](int s, int wb, int kt, int n) {
    const int tiles = max(0, min(kWgWTiles, p.n_tiles - wb * kWgWTiles));
    const int chunks = min(n * kChunks, p.nk - kt * kChunks);
    if (lane == 0) {
      for (int j = 0; j < kG; ++j) {
        const int wbytes = j ? 0 : tiles * chunks * kChunkBytes;  // the run lands on stage 0's
        if (j < n) mbar_expect_tx(&sm.full[s + j], kXStage + wbytes);
        else mbar_arrive(&sm.full[s + j]);
      }
    }
    __syncwarp();
    if (lane < tiles)
      bulk_copy_weights(sm.ws + Cfg::w_stage(s) + Cfg::w_tile(lane),
                        p.w + (int64_t(wb * kWgWTiles + lane) * p.nk + kt * kChunks) * kChunkBytes,
                        chunks * kChunkBytes, &sm.full[s], p.w_evict_first);
    if constexpr (Cfg::kGroupScales && kG > 1) {  // in 128-row blocks it cost ~10 % at M = 128
      // Lanes 16-23 (scales) and 24-31 (zero points) pull tile lane % 8's rows of the group's
      // quantization groups into L2: the consumers load them a stage ahead, which covers L2's
      // latency but not DRAM's (a fifth of the int4 kernel's stalls at M = 1 before).
      const int t = lane & 7, role = lane >> 3;
      if (role >= 2 && t < tiles && (role == 2 || p.zeros)) {
        const int g0 = wgmma_chunk_group(p, kt * kChunks);
        const int g1 = wgmma_chunk_group(p, kt * kChunks + chunks - 1);
        const int64_t row = int64_t(wb * kWgWTiles + t) * p.n_groups * 16;
        const uint8_t* first = role == 2
                                   ? reinterpret_cast<const uint8_t*>(p.scales + row + g0 * 16)
                                   : p.zeros + row + g0 * 16;
        const uintptr_t last = uintptr_t(first) + (g1 - g0 + 1) * 16 * (role == 2 ? 4 : 1) - 1;
        for (uintptr_t a = uintptr_t(first) & ~uintptr_t(127); a <= last; a += 128)
          prefetch_l2(reinterpret_cast<const void*>(a));  // each 128-byte line of the rows
      }
    }
  };
  const WgmmaSeat seat = wgmma_seat(p);
  int early = 0;  // stages whose weights went out before griddep_wait
  if (w_role && seat.first < p.tiles * p.splits) {
    const WgmmaWork work(p, seat.first);
    int wb, xb;
    wgmma_block_coords(p, work.tile, seat.rank, wb, xb);
    const int n = work.kt1 - work.kt0;
    early = min(kS, Cfg::padded(n));
    for (int j = 0; j < early; j += kG)
      if (((j / kG) & w_mask) == warp) weights(j, wb, work.kt0 + j, min(kG, n - j));
  }
  const bool copies_x = x_role || (w_role && !p.x_warp);
  if (copies_x) griddep_wait();  // x is the one input the kernel before may still be writing
  constexpr int kShare = kXStage / 2;  // a cluster block's share of an x stage (2 blocks)
  // this lane's x piece: stage j of a group, piece q of the stage (or of the cluster share)
  const int xi = lane - (x_role ? 0 : kWgWTiles), shift = p.x_piece_shift;
  const int xj = copies_x && xi >= 0 ? xi >> shift : kG, xq = xi & ((1 << shift) - 1);
  const int piece = (p.cluster == 1 ? kXStage : kShare) >> shift;
  int it = 0;  // stage slots used, over all of this block's work items
  for (int w = seat.first; w < p.tiles * p.splits; w += seat.stride) {
    const WgmmaWork work(p, w);
    int wb, xb;
    wgmma_block_coords(p, work.tile, seat.rank, wb, xb);
    const int64_t row0 = int64_t(xb) * Cfg::kN;  // first x row: image block row0 / 256
    const int8_t* xsrc = p.xt + (row0 / kWgXRows) * p.kt_count * (kWgXRows * kWgRowBytes) +
                         (row0 % kWgXRows) * kWgRowBytes;
    const int xrow0 = int((xsrc - p.xt) / kWgRowBytes);  // the same place in 128-byte rows
    for (int kt = work.kt0; kt < work.kt1; kt += kG, it += kG) {
      // signed, not Cfg::slot / pass: in the producer's 56 registers the unsigned forms spilled
      // 8 bytes in the 3-slot rings (ptxas, 2026-11-23); once per group, off the hot path
      const int s = it % kS, n = min(kG, work.kt1 - kt);
      const bool my_w = w_role && ((it / kG) & w_mask) == warp;
      if (!my_w && !x_role) continue;  // another weights warp's group
      // (stamps after the first fill only: the sink's first load must not delay a copy)
      LLMACCEL_TRACE(const bool trace_w = lane == 0 && my_w && it >= kS);
      LLMACCEL_TRACE(if (trace_w) trace_stage(it, kTsWaitEmpty, trace_clock()));
      if (it >= kS) {  // the group's last slot back means all of them are (released in order)
        mbar_wait(&sm.empty[s + kG - 1], ((it / kS) - 1) & 1);  // the previous pass's release
        fence_proxy_async_smem();  // the consumers' reads of the slots before the new copies
      }
      LLMACCEL_TRACE(if (trace_w) trace_stage(it, kTsEmpty, trace_clock()));
      if (my_w && it >= early) weights(s, wb, kt, n);
      LLMACCEL_TRACE(if (trace_w) trace_stage(it, kTsWCopied, trace_clock()));
      if (xj < n) {
        const int j = xj, at = xq * piece;
        const int8_t* src = xsrc + int64_t(kt + j) * (kWgXRows * kWgRowBytes) + at;
        if (p.x_tma) {
          x_tensor_copy(p, sm.xs + (s + j) * kXStage + at,
                        xrow0 + (kt + j) * kWgXRows + at / kWgRowBytes, &sm.full[s + j]);
        } else if (p.cluster == 1) {
          bulk_copy_g2s(sm.xs + (s + j) * kXStage + at, src, piece, &sm.full[s + j]);
        } else {  // rows [rank, rank + 1) · kN / 2 of the block, into both blocks' slot
          bulk_copy_g2s_multicast(sm.xs + (s + j) * kXStage + seat.rank * kShare + at,
                                  src + seat.rank * kShare, piece, &sm.full[s + j], 0x3);
        }
        LLMACCEL_TRACE(if (xq == 0 && it >= kS) trace_stage(it + j, kTsXCopied, trace_clock()));
      }
    }
  }
}

// Start of a block: the barriers, then the producer warpgroup's whole part (true there: the
// kernel ends, wgmma_cluster_sync) or the consumers' register budget (false: they go on to the
// main loop).
template <class Cfg>
__device__ bool wgmma_block_start(const WgmmaParams& p, const WgmmaSmem<Cfg>& sm) {
#if defined(LLMACCEL_WGMMA_BODY)
  if (threadIdx.x == 0) {
    for (int s = 0; s < Cfg::kStages; ++s) {
      mbar_init(&sm.full[s], 1);  // the producer's arrive.expect_tx; the copies complete it
      // one arrival per consumer warp (or thread: release_lanes) of the cluster
      mbar_init(&sm.empty[s], (p.release_lanes ? 256 : 8) * p.cluster);
    }
  }
  __syncthreads();
  wgmma_cluster_sync(p);
  if (threadIdx.x >= 256) {
    setmaxnreg_dec<kWgProducerRegs>();
    if (threadIdx.x < 256 + 32 * (p.w_warps + p.x_warp))
      wgmma_produce<Cfg>(p, sm, int(threadIdx.x >> 5) - 8);  // producer warps 0, 1, 2
    return true;
  }
  setmaxnreg_inc<Cfg::kConsumerRegs>();
  griddep_wait();  // the epilogue reads what the kernel before wrote (w8a8: x's scales)
#endif
  return false;
}

}  // namespace llmaccel::cuda
