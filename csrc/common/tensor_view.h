// The plain-buffer views that kernels receive. The byte layouts are defined once, in
// python/llmaccel/formats/; these structs only name the pointers and sizes.
#pragma once
#include <cstdint>
#include <cstring>

namespace llmaccel {

enum class DType : int { F32 = 0, BF16 = 1 };

// Activations (M, K) or outputs (M, N): rows of `cols` elements, row stride `ld` elements.
struct Matrix {
  void* data;
  DType dtype;
  int64_t rows, cols, ld;
};

// Format "int4_tile16x8" v1 (see formats/dense.py). Rows are padded to n_pad (a multiple of 16)
// and the reduction dim to k_pad (a multiple of group_size, itself a multiple of 32).
//   qweight [n_pad/16][k_pad/8][16][4] bytes: lane l, byte j of a k8 step holds
//           w[16b+l][8s+j] in its low nibble and w[16b+l][8s+4+j] in its high nibble;
//   scales  [n_pad/16][n_groups][16] float;  zeros [n_pad/16][n_groups][16] uint8 or null
//   (null: symmetric, every zero point is 8). Weight = (q - zero) * scale.
struct PackedW4 {
  const uint8_t* qweight;
  const float* scales;
  const uint8_t* zeros;
  int64_t n, k, n_pad, k_pad, group_size;
  int64_t n_groups() const { return k_pad / group_size; }
};

// Format "int8_tile16x4" v1: qweight [n_pad/16][k_pad/4][16][4] signed bytes, lane l byte j of a
// k4 step holds w[16b+l][4s+j]; scales [n_pad] float. Weight = q * scale.
struct PackedW8 {
  const int8_t* qweight;
  const float* scales;
  int64_t n, k, n_pad, k_pad;
};

// Format "int4_sp24_tile16x32" v1 (see formats/sp24.py): 2:4 sparse symmetric int4. Per 16-row
// block and 32-column chunk, 192 bytes: two value planes (16 uint32 lanes each: q_a of groups
// 4h..4h+3 as nibbles in the low 16 bits, q_b in the high 16), then a position plane (pos_a of
// group j at bits 2j of the low 16 bits, pos_b at bits 16 + 2j). Weight = (q − 8) · scale.
struct PackedW4Sp24 {
  const uint8_t* qweight;
  const float* scales;  // [n_pad/16][n_groups][16]
  int64_t n, k, n_pad, k_pad, group_size;
  int64_t n_groups() const { return k_pad / group_size; }
};

// Format "bf16_sp24_tile16x32" v1: per 16-row block and 32-column chunk, 576 bytes: eight value
// planes (group j: lane l holds bf16 w_a | w_b << 16), then the position plane as above.
struct PackedSp24 {
  const uint8_t* packed;
  int64_t n, k, n_pad, k_pad;
};

// Per-token dynamic int8 activations, quantized in blocks of `block` along K (block == k_pad for
// one scale per token). q[m][k_pad] (zero beyond k), scale[m][k_pad/block],
// qsum[m][k_pad/block] = sum of q over the block (for zero-point and offset corrections).
struct QuantAct {
  int8_t* q;
  float* scale;
  int32_t* qsum;
  int64_t m, k_pad, block;
};

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as torch's float->bfloat16 conversion; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float load_act(const Matrix& x, int64_t r, int64_t c) {
  if (x.dtype == DType::F32) return static_cast<const float*>(x.data)[r * x.ld + c];
  return bf16_to_f32(static_cast<const uint16_t*>(x.data)[r * x.ld + c]);
}

inline void store_out(const Matrix& y, int64_t r, int64_t c, float v) {
  if (y.dtype == DType::F32)
    static_cast<float*>(y.data)[r * y.ld + c] = v;
  else
    static_cast<uint16_t*>(y.data)[r * y.ld + c] = f32_to_bf16(v);
}

}  // namespace llmaccel
