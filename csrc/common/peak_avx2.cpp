// The AVX2 probe's loop: 12 independent chains, more than vpmaddubsw's latency × issue width,
// so only its throughput limits it; operands stay in registers (no memory traffic). Each chain
// feeds its int16 result back as the next unsigned operand: the values are meaningless, the
// dependency only keeps the compiler from hoisting the work out of the loop.
#include <immintrin.h>

#include "common/peak.h"

namespace llmaccel::detail {

int64_t maddubs_spin_avx2(int64_t iters) {
  __m256i acc[12];
#pragma GCC unroll 12
  for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_epi8(static_cast<char>(j + 1));
  const __m256i b = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_maddubs_epi16(acc[j], b);
  }
  __m256i s = acc[0];
#pragma GCC unroll 12
  for (int j = 1; j < 12; ++j) s = _mm256_add_epi16(s, acc[j]);
  alignas(32) int16_t t[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), s);
  int64_t total = 0;
  for (int16_t v : t) total += v;
  return total;
}

}  // namespace llmaccel::detail
