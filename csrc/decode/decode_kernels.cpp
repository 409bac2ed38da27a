// Portable decode kernels and the choice of path. Reductions keep 16 partial sums, which lets a
// compiler vectorize them without reassociating (no -ffast-math) on any target.
#include "decode/decode_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/cpu_features.h"
#include "common/exp_poly.h"

namespace llmaccel {
namespace {

constexpr int kLanes = 16;

inline float sum_lanes(const float* acc) {
  float s = 0.f;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

inline float dot(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  float s = sum_lanes(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void rms_norm(const float* x, const float* w, float eps, int64_t n, float* y) {
  const float inv = 1.0f / std::sqrt(dot(x, x, n) / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * inv) * w[i];
}

void rotate(float* v, const float* rot, int64_t heads, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* p = v + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float a = p[2 * i], b = p[2 * i + 1], c = rot[2 * i], s = rot[2 * i + 1];
      p[2 * i] = a * c - b * s;
      p[2 * i + 1] = a * s + b * c;
    }
  }
}

void attend(const float* q, const float* k, const float* v, int64_t len, int64_t head_dim,
            int64_t group, float scale, float* scores, float* out) {
  // Position-major over the cache: each cached key and value row is read once for the whole group.
  for (int64_t t = 0; t < len; ++t)
    for (int64_t h = 0; h < group; ++h)
      scores[h * len + t] = dot(q + h * head_dim, k + t * head_dim, head_dim) * scale;
  for (int64_t h = 0; h < group; ++h) {
    float* s = scores + h * len;
    float mx = s[0];
    for (int64_t t = 1; t < len; ++t) mx = std::max(mx, s[t]);
    for (int64_t t = 0; t < len; ++t) s[t] = exp_poly(s[t] - mx);
    float acc[kLanes] = {};
    int64_t t = 0;
    for (; t + kLanes <= len; t += kLanes)
      for (int j = 0; j < kLanes; ++j) acc[j] += s[t + j];
    float total = sum_lanes(acc);
    for (; t < len; ++t) total += s[t];
    const float inv = 1.0f / total;
    for (int64_t i = 0; i < len; ++i) s[i] *= inv;
  }
  std::fill(out, out + group * head_dim, 0.f);
  for (int64_t t = 0; t < len; ++t) {
    const float* vr = v + t * head_dim;
    for (int64_t h = 0; h < group; ++h) {
      const float p = scores[h * len + t];
      float* o = out + h * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) o[d] += p * vr[d];
    }
  }
}

void silu_mul(const float* gu, int64_t inter, float* out) {
  for (int64_t i = 0; i < inter; ++i) {
    const float g = gu[i];
    out[i] = g / (1.0f + exp_poly(-g)) * gu[inter + i];
  }
}

void add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

namespace detail {
const DecodeKernels decode_kernels_scalar = {rms_norm, rotate, attend, silu_mul, add};
}  // namespace detail

const DecodeKernels& decode_kernels() {
#ifdef LLMACCEL_HAVE_AVX512
  if (cpu_isa_avx512()) return detail::decode_kernels_avx512;
#endif
#ifdef LLMACCEL_HAVE_AVX2
  if (cpu_isa_avx2()) return detail::decode_kernels_avx2;
#endif
  return detail::decode_kernels_scalar;
}

}  // namespace llmaccel
