// The probe's loop: 24 independent accumulators, more than the instruction's latency × issue
// width, so only vpdpbusd throughput limits it; operands stay in registers (no memory traffic).
#include <immintrin.h>

#include "common/avx512_util.h"
#include "common/peak.h"

namespace llmaccel::detail {

int64_t vnni_spin_avx512(int64_t iters) {
  __m512i acc[24];
#pragma GCC unroll 24
  for (int j = 0; j < 24; ++j) acc[j] = _mm512_setzero_si512();
  const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(2);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < 24; ++j) avx512::dpbusd(acc[j], a, b);
  }
  __m512i s = acc[0];
#pragma GCC unroll 24
  for (int j = 1; j < 24; ++j) s = _mm512_add_epi32(s, acc[j]);
  return _mm512_reduce_add_epi32(s);
}

}  // namespace llmaccel::detail
