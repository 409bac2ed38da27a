// The probe's read loop with 32-byte loads, in the AVX-512 loop's pattern (bandwidth_avx512.cpp:
// four prefetched streams 64 KiB apart per thread), so the AVX2 kernels are measured against
// the same kind of ceiling. The portable loop reads less: on a Zen 3 VM, 2 threads, 25.5-29.5
// GB/s against this loop's 29.7-32.4 (5 alternating passes, 1-24 % apart).
#include <immintrin.h>

#include "common/bandwidth.h"

namespace llmaccel::detail {

uint64_t read_lines_avx2(const uint64_t* buf, int64_t b, int64_t e) {
  constexpr int kStreams = 4;
  constexpr int64_t kSpan = 1024;  // lines per stream per chunk (64 KiB)
  const auto* p = reinterpret_cast<const __m256i*>(buf);  // two per 64-byte line
  __m256i a0 = _mm256_setzero_si256(), a1 = a0;
  int64_t line = b;
  for (; line + kStreams * kSpan <= e; line += kStreams * kSpan)
    for (int64_t i = 0; i < kSpan; ++i)
      for (int s = 0; s < kStreams; ++s) {
        const __m256i* q = p + 2 * (line + s * kSpan + i);
        _mm_prefetch(reinterpret_cast<const char*>(q + 32), _MM_HINT_T0);
        a0 = _mm256_xor_si256(a0, _mm256_load_si256(q));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256(q + 1));
      }
  for (; line < e; ++line) {
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(p + 2 * line));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(p + 2 * line + 1));
  }
  const __m256i a = _mm256_xor_si256(a0, a1);
  const __m128i h = _mm_xor_si128(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(h) ^ _mm_extract_epi64(h, 1));
}

}  // namespace llmaccel::detail
