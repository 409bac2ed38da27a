// dequant_w4: packed int4 ("int4_tile16x8") → fp32 weight (N, K), row stride ldo.
//   out[n][k] = (q[n][k] − zero[n][g]) · scale[n][g], the exact fp32 product.
// For fallbacks, debugging and export; inference kernels never call it.
#pragma once
#include "common/tensor_view.h"

namespace llmaccel {
void dequant_w4(const PackedW4& w, float* out, int64_t ldo, int num_threads);
}
