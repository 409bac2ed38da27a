#include "common/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <new>

#include "common/cpu_features.h"
#include "common/parallel.h"

namespace llmaccel {

namespace detail {
// XOR of 64-byte lines [b, e) of buf; the value only keeps the reads from being optimized away.
uint64_t read_lines_scalar(const uint64_t* buf, int64_t b, int64_t e) {
  uint64_t acc[8] = {};
  for (int64_t line = b; line < e; ++line)
    for (int j = 0; j < 8; ++j) acc[j] ^= buf[line * 8 + j];
  uint64_t s = 0;
  for (uint64_t a : acc) s ^= a;
  return s;
}
}  // namespace detail

double read_bandwidth_gbs(int64_t bytes, int reps, int num_threads) {
  const int64_t lines = bytes / 64;
  auto* buf = static_cast<uint64_t*>(std::aligned_alloc(64, lines * 64));
  if (!buf) throw std::bad_alloc();
  parallel_for(lines, num_threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b * 8; i < e * 8; ++i) buf[i] = static_cast<uint64_t>(i);  // fault pages in
  });
  const bool simd = cpu_isa_avx512(), simd2 = cpu_isa_avx2();
  uint64_t sink = 0;
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    parallel_for(lines, num_threads, [&](int64_t b, int64_t e) {
      const uint64_t v = [&] {
#ifdef LLMACCEL_HAVE_AVX512
        if (simd) return detail::read_lines_avx512(buf, b, e);
#endif
#ifdef LLMACCEL_HAVE_AVX2
        if (simd2) return detail::read_lines_avx2(buf, b, e);
#endif
        (void)simd, (void)simd2;
        return detail::read_lines_scalar(buf, b, e);
      }();
      __atomic_fetch_xor(&sink, v, __ATOMIC_RELAXED);
    });
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, lines * 64 / sec / 1e9);
  }
  std::free(buf);
  volatile uint64_t keep = sink;
  (void)keep;
  return best;
}

}  // namespace llmaccel
