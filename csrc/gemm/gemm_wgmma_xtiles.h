// The x images the wgmma GEMMs read (gemm_wgmma.cuh): x as blocks of kWgXRows rows × 128 bytes,
// each block 32 KB of 128-byte rows ordered (row block, column block, row), the 16-byte pieces
// of row r XOR-swizzled by r % 8 — the shared-memory image of wgmma's K-major, 128-byte-swizzled
// B operand, so that one bulk copy lands a block ready to multiply. Zero past k. The padding
// rows up to a multiple of kWgXRows may hold anything: an x row only meets its own output row,
// and those past m are never stored (quant_act_int8_tiles writes zeros there, x_tiles_16bit
// leaves them). int8 x (gemm_w8a8, written by quant_act_int8_tiles): 128 columns per block;
// 16-bit x (gemm_w4a16, written by x_tiles_16bit): 64 columns per block.
//
// Inside each 32-column chunk the columns are permuted to match the weights. The
// int*_cuda_mma16x32 layouts give lane t of a fragment the columns 8t .. 8t+7 of its rows (one
// run per row, formats/cuda.py), which the MMA reads under other k indices:
// - int8 (k32 steps): MMA k 4t .. 4t+3 (registers 0/1) and 16+4t .. 16+4t+3 (registers 2/3), so
//   column 8t + 4s + b of a chunk sits at byte 4t + 16s + b;
// - 16-bit (two k16 steps per chunk, step s from columns 8t+4s .. 8t+4s+3): MMA k 2t, 2t+1
//   (registers 0/1) and 8+2t, 8+2t+1 (registers 2/3), so column 8t + 4s + 2h + e sits at
//   element 16s + 8h + 2t + e.
// The MMA then pairs every weight with its own column of x (tests/ops/test_wgmma_layout.py).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define LLMACCEL_HD __host__ __device__
#else
#define LLMACCEL_HD
#endif

namespace llmaccel::cuda {

constexpr int kWgXRows = 256;  // x rows per block: the wgmma N
constexpr int kWgRowBytes = 128;  // bytes per x row and block: one 128-byte swizzled row

// Byte offset of the element whose byte position in its row of the block is `pos`.
LLMACCEL_HD inline int64_t wgmma_x_block_byte(int64_t row, int64_t col_block, int64_t pos,
                                              int64_t kt_count) {
  const int64_t r = row % kWgXRows, block = (row / kWgXRows) * kt_count + col_block;
  return (block * kWgXRows + r) * kWgRowBytes + ((((pos >> 4) ^ (r & 7)) << 4) | (pos & 15));
}
// int8 x[row][col] (kt_count = padded columns / 128).
LLMACCEL_HD inline int64_t w8a8_x_tile_offset(int64_t row, int64_t col, int64_t kt_count) {
  const int64_t c = col % 128;
  const int64_t pos = (c & ~31) | ((c >> 3 & 3) << 2) | ((c >> 2 & 1) << 4) | (c & 3);
  return wgmma_x_block_byte(row, col / 128, pos, kt_count);
}

}  // namespace llmaccel::cuda

#undef LLMACCEL_HD
