#include "dequant/dequant_w4.h"

#include "common/parallel.h"

namespace llmaccel {

void dequant_w4(const PackedW4& w, float* out, int64_t ldo, int num_threads) {
  const int64_t n_groups = w.n_groups(), steps = w.k_pad / 8;
  parallel_for(w.n, num_threads, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t b = n / 16, l = n % 16;
      const uint8_t* qb = w.qweight + b * steps * 64;
      for (int64_t k = 0; k < w.k; ++k) {
        const int64_t s = k / 8, j = k % 8;
        const uint8_t byte = qb[(s * 16 + l) * 4 + (j & 3)];
        const int q = j < 4 ? (byte & 15) : (byte >> 4);
        const int64_t meta = (b * n_groups + k / w.group_size) * 16 + l;
        const float zero = w.zeros ? w.zeros[meta] : 8.f;
        out[n * ldo + k] = (static_cast<float>(q) - zero) * w.scales[meta];
      }
    }
  });
}

}  // namespace llmaccel
