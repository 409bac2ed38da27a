// Memory read-bandwidth probe for benchmarks: the "measured bandwidth" that kernel results are
// reported against. Reads a buffer with every thread (contiguous chunks, the access pattern of
// a weight-streaming GEMV) and returns the best of `reps` passes in GB/s.
#pragma once
#include <cstdint>

namespace llmaccel {
double read_bandwidth_gbs(int64_t bytes, int reps, int num_threads);
}
