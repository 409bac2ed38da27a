// The probe's read loop with 64-byte loads: the portable loop is limited by its own instruction
// count on one core and would understate the ceiling the AVX-512 kernels are measured against.
#include <immintrin.h>

#include "common/bandwidth.h"

namespace llmaccel::detail {

uint64_t read_lines_avx512(const uint64_t* buf, int64_t b, int64_t e) {
  // Four sequential streams per thread, 64 KiB apart and each prefetched ahead: the GEMV
  // kernels' pattern (NR row blocks of a few tens of KiB read side by side). One stream per
  // core leaves DRAM latency-bound here; streams far apart lose DRAM page locality.
  constexpr int kStreams = 4;
  constexpr int64_t kSpan = 1024;  // lines per stream per chunk (64 KiB)
  const auto* p = reinterpret_cast<const __m512i*>(buf);
  __m512i a0 = _mm512_setzero_si512(), a1 = a0;
  int64_t line = b;
  for (; line + kStreams * kSpan <= e; line += kStreams * kSpan)
    for (int64_t i = 0; i < kSpan; i += 2)
      for (int s = 0; s < kStreams; ++s) {
        const __m512i* q = p + line + s * kSpan + i;
        _mm_prefetch(reinterpret_cast<const char*>(q + 16), _MM_HINT_T0);
        a0 = _mm512_xor_si512(a0, _mm512_load_si512(q));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512(q + 1));
      }
  for (; line < e; ++line) a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + line));
  return static_cast<uint64_t>(_mm512_reduce_or_epi64(_mm512_xor_si512(a0, a1)));
}

}  // namespace llmaccel::detail
