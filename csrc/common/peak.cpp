#include "common/peak.h"

#include <algorithm>
#include <chrono>

#include "common/cpu_features.h"
#include "common/parallel.h"

namespace llmaccel {

double vnni_peak_gmacs(int reps, int num_threads) {
#ifdef LLMACCEL_HAVE_AVX512
  if (!avx512_supported()) return 0.0;
  constexpr int64_t kIters = 1 << 20;  // ~25 ms per thread at 1 vpdpbusd/cycle
  double best = 0;
  int64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(num_threads, num_threads, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) __atomic_fetch_add(&sink, detail::vnni_spin_avx512(kIters), __ATOMIC_RELAXED);
    });
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, num_threads * kIters * 24 * 64 / sec / 1e9);
  }
  volatile int64_t keep = sink;
  (void)keep;
  return best;
#else
  (void)reps;
  (void)num_threads;
  return 0.0;
#endif
}

}  // namespace llmaccel
