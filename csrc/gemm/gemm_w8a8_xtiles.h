// The x image gemm_w8a8_wgmma reads (gemm_w8a8_wgmma.cuh) and quant_act_int8_tiles writes:
// quantized int8 x as blocks of kWgXRows rows × kWgK columns, each block 32 KB of 128-byte rows
// ordered (row block, column block, row), the 16-byte pieces of row r XOR-swizzled by r % 8 —
// the shared-memory image of wgmma's K-major, 128-byte-swizzled B operand, so that one bulk
// copy lands a block ready to multiply. Zero past k and in the padding rows.
//
// Inside each 32-column chunk the columns are permuted to match the weights: int8_cuda_mma16x32
// gives lane t of a fragment the columns 8t .. 8t+7 (one 8-byte run per row, formats.py), which
// the MMA reads as its k indices 4t .. 4t+3 (register 0/1) and 16+4t .. 16+4t+3 (register 2/3).
// So column 8t + 4s + b of a chunk sits at byte 4t + 16s + b of the chunk in x's image, and the
// MMA pairs every weight with its own column of x.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define LLMACCEL_HD __host__ __device__
#else
#define LLMACCEL_HD
#endif

namespace llmaccel::cuda {

constexpr int kWgXRows = 256;  // x rows per block: the wgmma N
constexpr int kWgK = 128;      // columns per block: one 128-byte swizzled row

// Byte offset of x[row][col] in the image (kt_count = padded columns / kWgK).
LLMACCEL_HD inline int64_t w8a8_x_tile_offset(int64_t row, int64_t col, int64_t kt_count) {
  const int64_t r = row % kWgXRows, c = col % kWgK;
  const int64_t block = (row / kWgXRows) * kt_count + col / kWgK;
  const int64_t pos = (c & ~31) | ((c >> 3 & 3) << 2) | ((c >> 2 & 1) << 4) | (c & 3);
  return (block * kWgXRows + r) * kWgK + ((((pos >> 4) ^ (r & 7)) << 4) | (pos & 15));
}

}  // namespace llmaccel::cuda

#undef LLMACCEL_HD
