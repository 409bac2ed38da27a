// The wgmma GEMMs' plan of a call (host side, shared by the launchers in gemm_wgmma_launch.cuh
// and the SIMT emulator's driver): argument checks, x rows per block, the K split, the grid.
// Benchmark knobs are read per call: LLMACCEL_WGMMA_N, _SPLITS, _PERSISTENT, _GROUP, _RELEASE,
// _XCOPY, _XPIECES, _WWARPS.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_wgmma.cuh"

namespace llmaccel::cuda {

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
// x rows per block: for M ≤ 64 the least of 16, 32, 64 that holds M (never below `min_rows`:
// 64 for int8, whose wgmma forms start there); 16-bit x: 128 up to M = 128, then 256; int8:
// 256 unless that leaves the grid under two waves of `sms` blocks (then 128, twice the blocks).
// LLMACCEL_WGMMA_N=16|32|64|128|256 forces one at or above min_rows (a benchmark knob, read per
// call).
inline int wgmma_x_rows(int64_t m, int64_t n_tiles, int sms, int min_rows) {
  if (const char* e = std::getenv("LLMACCEL_WGMMA_N")) {
    for (int r = min_rows; r <= kWgXRows; r *= 2)
      if (std::atoi(e) == r) return r;
  }
  if (m <= 64) {
    int r = min_rows;
    while (r < m) r *= 2;
    return r;
  }
  // 16-bit x (the weights dequantized per x block): 256-row blocks from M = 129 on, H100
  // 2026-11-23: M = 192-512 at 4096→14336 in 71-138 µs, against 96-187 µs in 128-row blocks
  if (min_rows < 64) return m <= 128 ? 128 : 256;
  const int64_t blocks = (n_tiles + kWgWTiles - 1) / kWgWTiles * ((m + 255) / 256);
  return blocks < 2 * int64_t(sms) ? 128 : 256;
}
// Blocks to launch: as many as the SMs hold at once (wgmma_blocks_per_sm each; clusters: `slots`
// of p.cluster blocks, that many per SM unless the device says fewer fit at once), each looping
// over work items (persistent), unless there are fewer; LLMACCEL_WGMMA_PERSISTENT=0 launches one
// block (cluster) per work item (a benchmark knob).
inline int wgmma_launch_blocks(const WgmmaParams& p, int sms, int slots = 0) {
  if (slots <= 0) slots = sms * p.blocks_per_sm / p.cluster;
  if (env_is("LLMACCEL_WGMMA_PERSISTENT", "0")) return p.tiles * p.splits * p.cluster;
  return std::max(1, std::min(p.tiles * p.splits, slots)) * p.cluster;
}
// The K split for `sms` resident blocks (SMs × blocks per SM). Only where the tiles alone leave SMs
// idle, and only where it cuts the k blocks of the busiest block (persistent, round robin) by a
// fifth or more: a split costs a round trip of raw sums through global memory and a second launch
// (~1-3 µs, most of what a smaller gain would save at decode sizes). Up to 8 splits of at least 4 k
// blocks each, the count with the fewest k blocks on the busiest block, the smaller count on a tie.
// At 8192→8192 with 64 tiles on 132 SMs: 2 splits (64 k blocks, not 3 splits, whose 192 items leave
// 60 blocks with two); at 4096→14336 with 112 tiles none (8 splits would give 56 k blocks against
// 64). LLMACCEL_WGMMA_SPLITS forces a count (a benchmark and test knob, read per call). Sets
// p.splits and p.kts.
inline int64_t wgmma_split_cost(const WgmmaParams& p, int want, int sms, int* kts_out) {
  // whole copy groups per item (wgmma_stages_per_copy), so that only K's end pads a group
  const int g = wgmma_stages_per_copy(p.x_rows);  // as Cfg::padded, for the launched Cfg
  const int kts = ((p.kt_count + want - 1) / want + g - 1) / g * g;
  const int splits = (p.kt_count + kts - 1) / kts;
  if (kts_out) *kts_out = kts;
  return (int64_t(p.tiles) * splits + sms - 1) / sms * kts;
}
inline void wgmma_split(WgmmaParams& p, int sms) {
  sms = std::max(sms, 1);  // no device (a plan asked for its workspace size only)
  int want = 1;
  if (p.tiles < sms) {
    const int64_t unsplit = wgmma_split_cost(p, 1, sms, nullptr);
    int64_t best = unsplit;
    for (int s = 2; s <= std::min(8, p.kt_count / 4); ++s) {
      const int64_t c = wgmma_split_cost(p, s, sms, nullptr);
      if (c < best) best = c, want = s;
    }
    if (5 * best > 4 * unsplit) want = 1;
  }
  if (const char* e = std::getenv("LLMACCEL_WGMMA_SPLITS")) {
    const int v = std::atoi(e);
    if (v >= 1) want = std::min(v, p.kt_count);
  }
  wgmma_split_cost(p, want, sms, &p.kts);
  p.splits = (p.kt_count + p.kts - 1) / p.kts;
}
// Bytes of the partial sums a call with this plan needs (0 without a split).
inline int64_t wgmma_partial_bytes(const WgmmaParams& p) {
  return p.splits > 1 ? int64_t(p.splits) * p.m * p.n_tiles * 16 * 4 : 0;
}
// LLMACCEL_W8A8_DEEP=1: gemm_w8a8's 256-row blocks with a 4-stage ring, the epilogue staged in
// passes of 64 rows (3 stages otherwise: 48 KB each beside the whole 256-row staging tile).
// Opt-in until run on a GPU (written 2026-11-23 without one); read per call.
inline bool wgmma_w8a8_deep() { return env_is("LLMACCEL_W8A8_DEEP", "1"); }
// LLMACCEL_WGMMA_CLUSTER=2: clusters of 2 blocks sharing each x stage (opt-in: no gain on the
// H100, bench/gpu/NOTES.md 2026-11-23; read per call), where there are two weight blocks to pair.
inline int wgmma_cluster_size(int w_blocks) {
  return env_is("LLMACCEL_WGMMA_CLUSTER", "2") && w_blocks >= 2 ? 2 : 1;
}
// Who issues the copies (WgmmaParams::x_warp, x_piece_shift, w_warps): LLMACCEL_WGMMA_WWARPS=2
// two weights warps taking the copy groups in turn; LLMACCEL_WGMMA_XCOPY=warp a producer warp
// of its own for x; LLMACCEL_WGMMA_XPIECES=P (a power of two) P copies per stage, as many as
// fit: the issuing lanes (one warp's, past the 8 weight lanes unless the x warp issues them) and
// 16-byte pieces of the stage (or cluster share) bound it.
inline void wgmma_x_copies(WgmmaParams& p) {
  p.w_warps = env_is("LLMACCEL_WGMMA_WWARPS", "2") ? 2 : 1;
  p.x_warp = env_is("LLMACCEL_WGMMA_XCOPY", "warp");
  const char* e = std::getenv("LLMACCEL_WGMMA_XPIECES");
  const int want = e ? std::atoi(e) : 1;
  const int stages = wgmma_stages_per_copy(p.x_rows), lanes = p.x_warp ? 32 : 32 - kWgWTiles;
  const int share = p.x_rows * kWgRowBytes / p.cluster;
  int shift = 0;
  while ((2 << shift) <= want && stages * (2 << shift) <= lanes && share % (16 << (shift + 1)) == 0)
    ++shift;
  p.x_piece_shift = shift;
  // LLMACCEL_WGMMA_XTMA=1: the x copies through a tensor map (single blocks: the multicast form
  // stays 1D), boxes of a piece's rows over the image's whole 256-row blocks
  const int64_t rows = (int64_t(p.m) + kWgXRows - 1) / kWgXRows * p.kt_count * kWgXRows;
  p.x_tma = env_is("LLMACCEL_WGMMA_XTMA", "1") && p.cluster == 1 && rows < (int64_t(1) << 31);
  p.x_box_rows = p.x_rows >> shift;
  p.x_map_rows = p.x_tma ? int(rows) : 0;
}
// The grid for x_rows-row blocks on `sms` SMs, of a kernel whose stages hold w_stage weight
// bytes (Cfg::kWStage: whether two blocks fit on an SM).
inline void wgmma_grid(WgmmaParams& p, int x_rows, int sms, int w_stage) {
  p.x_rows = x_rows;
  p.blocks_per_sm = wgmma_blocks_per_sm(x_rows, w_stage);
  p.w_blocks = (p.n_tiles + kWgWTiles - 1) / kWgWTiles;
  p.x_blocks = (p.m + x_rows - 1) / x_rows;
  p.cluster = wgmma_cluster_size(p.w_blocks);
  p.w_units = (p.w_blocks + p.cluster - 1) / p.cluster;
  p.tiles = p.w_units * p.x_blocks;
  wgmma_split(p, sms * p.blocks_per_sm / p.cluster);
  // LLMACCEL_WGMMA_GROUP: weight blocks per raster group, a benchmark knob read per call (a
  // whole positive number, else 16); in units of p.cluster blocks.
  const char* e = std::getenv("LLMACCEL_WGMMA_GROUP");
  char* end = nullptr;
  const long v = e && *e ? std::strtol(e, &end, 10) : 0;
  const int blocks = end && *end == '\0' && v > 0 && v < (1 << 20) ? int(v) : kWgGroup;
  p.raster_group = std::max(1, blocks / p.cluster);
  p.release_lanes = env_is("LLMACCEL_WGMMA_RELEASE", "lanes");
  wgmma_x_copies(p);
  p.w_evict_first = weights_evict_first() && p.x_blocks == 1;
}

}  // namespace llmaccel::cuda
