// Memory read-bandwidth probe for benchmarks: the "measured bandwidth" that kernel results are
// reported against. Every thread reads its contiguous share of the buffer as several prefetched
// streams (the access pattern of a weight-streaming GEMV); returns the best of `reps` passes in
// GB/s.
#pragma once
#include <cstdint>

namespace llmaccel {
double read_bandwidth_gbs(int64_t bytes, int reps, int num_threads);

namespace detail {
uint64_t read_lines_scalar(const uint64_t* buf, int64_t line_begin, int64_t line_end);
uint64_t read_lines_avx512(const uint64_t* buf, int64_t line_begin, int64_t line_end);
uint64_t read_lines_avx2(const uint64_t* buf, int64_t line_begin, int64_t line_end);
}  // namespace detail
}  // namespace llmaccel
