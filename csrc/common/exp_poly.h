// e^x in float32 for kernels that need many of them (softmax, SiLU, losses): Cephes' expf, a
// degree-6 polynomial after range reduction, relative error <= 2e-7 on [-87, 88]; inputs are
// clamped to that range, so e^x never underflows to a denormal or overflows (e^-87 ~ 1.6e-38
// stands in for 0). The AVX-512 twin, exp16, is in avx512_util.h.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace llmaccel {

inline float exp_poly(float x) {
  // Cephes expf: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n through the
  // exponent bits. Clamped so that n stays in [-126, 127] (no denormal or infinite 2^n).
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float t = x * 1.44269504088896341f;
  const int n = static_cast<int>(t + (t >= 0.f ? 0.5f : -0.5f));
  const float fn = static_cast<float>(n);
  const float r = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

}  // namespace llmaccel
