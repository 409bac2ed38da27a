#include "dequant/dequant_sp24.h"

#include <algorithm>

#include "common/parallel.h"
#include "sparse/gemm_sp24.h"

namespace llmaccel {
namespace {

// One row of a 2:4 weight, chunk by chunk: the chunk's 32 columns start at zero, then each of
// its 8 groups writes its two slots (a then b, as formats/sp24.py unpacks) at their positions.
// value(t, j, l, slot, r, c): the float value of slot (0: a, 1: b) of group j in lane l of tile t
// (chunk c of row r); chunk_bytes: the tiles' stride.
template <typename Value>
void dequant_rows(const uint8_t* tiles, int64_t chunk_bytes, int64_t pos_offset, int64_t n,
                  int64_t k, int64_t k_pad, float* out, int64_t ldo, int num_threads,
                  Value value) {
  // chunks of the tile rows' stride, and the ones holding columns < k (k_pad may be a group
  // of several chunks past k)
  const int64_t chunks = k_pad / 32, used = (k + 31) / 32;
  parallel_for(n, num_threads, [&](int64_t n0, int64_t n1) {
    float buf[32];
    for (int64_t r = n0; r < n1; ++r) {
      const int l = static_cast<int>(r % 16);
      const uint8_t* row_tiles = tiles + (r / 16) * chunks * chunk_bytes;
      for (int64_t c = 0; c < used; ++c) {
        const uint8_t* t = row_tiles + c * chunk_bytes;
        const uint32_t pos = detail::lane_word(t + pos_offset, l);
        std::fill(buf, buf + 32, 0.f);
        for (int j = 0; j < 8; ++j) {
          buf[4 * j + ((pos >> (2 * j)) & 3)] = value(t, j, l, 0, r, c);
          buf[4 * j + ((pos >> (16 + 2 * j)) & 3)] = value(t, j, l, 1, r, c);
        }
        const int64_t cols = std::min<int64_t>(32, k - c * 32);
        std::copy(buf, buf + cols, out + r * ldo + c * 32);
      }
    }
  });
}

}  // namespace

void dequant_w4_sp24(const PackedW4Sp24& w, float* out, int64_t ldo, int num_threads) {
  const int64_t n_groups = w.n_groups(), chunks_per_group = w.group_size / 32;
  dequant_rows(w.qweight, 192, 128, w.n, w.k, w.k_pad, out, ldo, num_threads,
               [&](const uint8_t* t, int j, int l, int slot, int64_t r, int64_t c) {
                 // value plane j / 4, nibble j % 4 of the low (slot a) or high (b) 16 bits
                 const uint32_t v = detail::lane_word(t + 64 * (j / 4), l);
                 const int q = static_cast<int>((v >> (16 * slot + 4 * (j % 4))) & 15);
                 const float s = w.scales[((r / 16) * n_groups + c / chunks_per_group) * 16 + l];
                 return static_cast<float>(q - 8) * s;
               });
}

void dequant_sp24(const PackedSp24& w, float* out, int64_t ldo, int num_threads) {
  dequant_rows(w.packed, 576, 512, w.n, w.k, w.k_pad, out, ldo, num_threads,
               [](const uint8_t* t, int j, int l, int slot, int64_t, int64_t) {
                 const uint32_t v = detail::lane_word(t + 64 * j, l);
                 return bf16_to_f32(static_cast<uint16_t>(slot ? v >> 16 : v & 0xFFFF));
               });
}

}  // namespace llmaccel
