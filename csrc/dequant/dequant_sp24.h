// dequant_w4_sp24 / dequant_sp24: 2:4 sparse weights ("int4_sp24_tile16x32",
// "bf16_sp24_tile16x32") → the fp32 weight (N, K) they represent, row stride ldo, zeros where
// pruned:
//   dequant_w4_sp24: out[n][k] = (q − 8) · scale[n][group of k], the exact fp32 product;
//   dequant_sp24:    out[n][k] = the stored bf16 value, exactly.
// What a backward through the 2:4 ops multiplies by (ops/autograd.py), and SparseLinear's
// dequantize(); inference kernels never call them.
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {
void dequant_w4_sp24(const PackedW4Sp24& w, float* out, int64_t ldo, int num_threads);
void dequant_sp24(const PackedSp24& w, float* out, int64_t ldo, int num_threads);
}  // namespace llmaccel
