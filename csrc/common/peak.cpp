#include "common/peak.h"

#include <algorithm>
#include <chrono>

#include "common/cpu_features.h"
#include "common/parallel.h"

namespace llmaccel {

double int8_peak_gmacs(int reps, int num_threads) {
  int64_t (*spin)(int64_t) = nullptr;
  int64_t macs_per_iter = 0;
#ifdef LLMACCEL_HAVE_AVX512
  if (cpu_isa_avx512()) spin = detail::vnni_spin_avx512, macs_per_iter = 24 * 64;
#endif
#ifdef LLMACCEL_HAVE_AVX2
  if (cpu_isa_avx2()) spin = detail::maddubs_spin_avx2, macs_per_iter = 12 * 32;
#endif
  if (!spin) return 0.0;
  constexpr int64_t kIters = 1 << 20;  // ~10-25 ms per thread
  double best = 0;
  int64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(num_threads, num_threads, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) __atomic_fetch_add(&sink, spin(kIters), __ATOMIC_RELAXED);
    });
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, num_threads * kIters * macs_per_iter / sec / 1e9);
  }
  volatile int64_t keep = sink;
  (void)keep;
  return best;
}

}  // namespace llmaccel
