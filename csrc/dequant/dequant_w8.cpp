#include "dequant/dequant_w8.h"

#include "common/parallel.h"

namespace llmaccel {

void dequant_w8(const PackedW8& w, float* out, int64_t ldo, int num_threads) {
  const int64_t steps = w.k_pad / 4;
  parallel_for(w.n, num_threads, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int8_t* qb = w.qweight + (n / 16) * steps * 64 + (n % 16) * 4;
      for (int64_t k = 0; k < w.k; ++k)
        out[n * ldo + k] = static_cast<float>(qb[(k / 4) * 64 + k % 4]) * w.scales[n];
    }
  });
}

}  // namespace llmaccel
