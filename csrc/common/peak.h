// Compute-peak probe for benchmarks: the int8 multiply-accumulate rate (VNNI vpdpbusd) this
// machine reaches with all threads, so GEMM results are reported as % of a measured ceiling
// rather than of a datasheet figure (clocks vary by part, power state and neighbours).
#pragma once
#include <cstdint>

namespace llmaccel {
// GMAC/s over `reps` timed passes (best); 0 when the AVX-512 path is unavailable.
double vnni_peak_gmacs(int reps, int num_threads);

namespace detail {
// Runs `iters` steps of 24 independent vpdpbusd (64 MACs each); returns a value to keep.
int64_t vnni_spin_avx512(int64_t iters);
}  // namespace detail
}  // namespace llmaccel
