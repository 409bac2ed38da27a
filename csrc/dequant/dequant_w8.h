// dequant_w8: packed int8 ("int8_tile16x4") → fp32 weight (N, K), row stride ldo.
//   out[n][k] = q[n][k] · scale[n], the exact fp32 product.
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {
void dequant_w8(const PackedW8& w, float* out, int64_t ldo, int num_threads);
}
