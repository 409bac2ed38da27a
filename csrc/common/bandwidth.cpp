#include "common/bandwidth.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "common/parallel.h"

namespace llmaccel {

double read_bandwidth_gbs(int64_t bytes, int reps, int num_threads) {
  const int64_t n = bytes / 8 / 64 * 64;
  auto* buf = static_cast<uint64_t*>(std::aligned_alloc(64, n * 8));
  if (!buf) throw std::bad_alloc();
  parallel_for(n, num_threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[i] = static_cast<uint64_t>(i);  // fault pages per thread
  });
  std::vector<uint64_t> sink(64, 0);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    parallel_for(n / 64, num_threads, [&](int64_t b, int64_t e) {
      // Eight independent accumulators: enough loads in flight to saturate DRAM, not the ALUs.
      uint64_t acc[8] = {};
      for (int64_t line = b; line < e; ++line)
        for (int j = 0; j < 64; ++j) acc[j & 7] ^= buf[line * 64 + j];
      uint64_t s = 0;
      for (uint64_t a : acc) s ^= a;
      sink[(b * 7) & 63] ^= s;
    });
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, n * 8 / sec / 1e9);
  }
  std::free(buf);
  volatile uint64_t keep = sink[0];
  (void)keep;
  return best;
}

}  // namespace llmaccel
