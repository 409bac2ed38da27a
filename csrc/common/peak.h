// Compute-peak probe for benchmarks: the int8 multiply-accumulate rate this machine reaches with
// all threads on the current CPU path's int8 instruction, so GEMM results are reported as % of a
// measured ceiling rather than of a datasheet figure (clocks vary by part, power state and
// neighbours).
//   avx512, avx512_bf16  vpdpbusd: 64 u8·s8 products summed into int32 lanes per instruction
//   avx2                 vpmaddubsw: 32 u8·s8 products summed in pairs into int16 lanes; the
//                        kernels also spend vpmaddwd + vpaddd per 32 to widen and accumulate,
//                        so this is a ceiling they cannot reach, not one they should
//   scalar               0 (no probe)
#pragma once
#include <cstdint>

namespace llmaccel {
// GMAC/s over `reps` timed passes (best); 0 on the scalar path.
double int8_peak_gmacs(int reps, int num_threads);

namespace detail {
// Runs `iters` steps of 24 independent vpdpbusd (64 MACs each); returns a value to keep.
int64_t vnni_spin_avx512(int64_t iters);
// Runs `iters` steps of 12 independent vpmaddubsw (32 MACs each); returns a value to keep.
int64_t maddubs_spin_avx2(int64_t iters);
}  // namespace detail
}  // namespace llmaccel
