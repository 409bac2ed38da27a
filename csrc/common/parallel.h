// Threading: OpenMP with an explicit thread count from the caller (torch.get_num_threads()), so
// torch.set_num_threads governs our kernels whichever OpenMP runtime is loaded.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace llmaccel {

// Runs fn(begin, end) over [0, total) split into contiguous chunks, one per thread.
template <typename F>
void parallel_for(int64_t total, int num_threads, F&& fn) {
  int nt = static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), std::max<int64_t>(total, 1)));
  if (nt <= 1) {
    fn(int64_t{0}, total);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num();
    int64_t chunk = (total + nt - 1) / nt;
    int64_t begin = std::min<int64_t>(total, t * chunk);
    int64_t end = std::min<int64_t>(total, begin + chunk);
    if (begin < end) fn(begin, end);
  }
}

}  // namespace llmaccel
