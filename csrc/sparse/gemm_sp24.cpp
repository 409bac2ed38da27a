#include "sparse/gemm_sp24.h"

#include "common/cpu_features.h"
#include "common/parallel.h"
#include "common/scratch.h"
#include "gemm/gemm_common.h"

namespace llmaccel {
namespace {

using detail::lane_word;

// Σ over one 32-column chunk of row lane l: the two slots of each group times their activations.
// value(j, lane) gives the slot pair (w_a, w_b) of group j as floats.
template <typename Values>
float chunk_dot(const float* xc, const uint8_t* pos_plane, int l, Values value) {
  const uint32_t pos = lane_word(pos_plane, l);
  float acc = 0.f;
  for (int j = 0; j < 8; ++j) {
    const int pa = (pos >> (2 * j)) & 3, pb = (pos >> (16 + 2 * j)) & 3;
    float wa, wb;
    value(j, wa, wb);
    acc += xc[4 * j + pa] * wa;
    acc += xc[4 * j + pb] * wb;
  }
  return acc;
}

void w4_scalar(const float* xf, int64_t M, const PackedW4Sp24& w, const float* bias,
               const Matrix& y, int64_t nb0, int64_t nb1) {
  const int64_t chunks = w.k_pad / 32, per_group = w.group_size / 32, n_groups = w.n_groups();
  for (int64_t b = nb0; b < nb1; ++b)
    for (int l = 0; l < 16; ++l) {
      const int64_t n = b * 16 + l;
      if (n >= w.n) break;
      for (int64_t m = 0; m < M; ++m) {
        float acc = 0.f;
        for (int64_t g = 0; g < n_groups; ++g) {
          float part = 0.f;
          for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
            const uint8_t* t = w.qweight + (b * chunks + c) * 192;
            part += chunk_dot(xf + m * w.k_pad + c * 32, t + 128, l,
                              [&](int j, float& wa, float& wb) {
                                const uint32_t v = lane_word(t + 64 * (j / 4), l);
                                wa = static_cast<float>(static_cast<int>((v >> (4 * (j % 4))) & 15) - 8);
                                wb = static_cast<float>(static_cast<int>((v >> (16 + 4 * (j % 4))) & 15) - 8);
                              });
          }
          acc += part * w.scales[(b * n_groups + g) * 16 + l];
        }
        store_out(y, m, n, bias ? acc + bias[n] : acc);
      }
    }
}

// gemm_w4a8_sp24, portable: the exact integer group sums of the contract, one output at a time.
void w4a8_scalar(const QuantAct& xq, const PackedW4Sp24& w, const float* bias, const Matrix& y,
                 int64_t nb0, int64_t nb1) {
  const int64_t chunks = w.k_pad / 32, per_group = w.group_size / 32, n_groups = w.n_groups();
  for (int64_t b = nb0; b < nb1; ++b)
    for (int l = 0; l < 16; ++l) {
      const int64_t n = b * 16 + l;
      if (n >= w.n) break;
      for (int64_t m = 0; m < xq.m; ++m) {
        float acc = 0.f;
        for (int64_t g = 0; g < n_groups; ++g) {
          int32_t dot = 0;
          for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
            const uint8_t* t = w.qweight + (b * chunks + c) * 192;
            const int8_t* xc = xq.q + m * w.k_pad + c * 32;
            const uint32_t pos = lane_word(t + 128, l);
            for (int j = 0; j < 8; ++j) {
              const uint32_t v = lane_word(t + 64 * (j / 4), l);
              const int pa = (pos >> (2 * j)) & 3, pb = (pos >> (16 + 2 * j)) & 3;
              dot += xc[4 * j + pa] * (static_cast<int>((v >> (4 * (j % 4))) & 15) - 8);
              dot += xc[4 * j + pb] * (static_cast<int>((v >> (16 + 4 * (j % 4))) & 15) - 8);
            }
          }
          acc += static_cast<float>(dot) * (xq.scale[m * n_groups + g] *
                                            w.scales[(b * n_groups + g) * 16 + l]);
        }
        store_out(y, m, n, bias ? acc + bias[n] : acc);
      }
    }
}

void bf16_scalar(const float* xf, int64_t M, const PackedSp24& w, const float* bias,
                 const Matrix& y, int64_t nb0, int64_t nb1) {
  const int64_t chunks = w.k_pad / 32;
  for (int64_t b = nb0; b < nb1; ++b)
    for (int l = 0; l < 16; ++l) {
      const int64_t n = b * 16 + l;
      if (n >= w.n) break;
      for (int64_t m = 0; m < M; ++m) {
        float acc = 0.f;
        for (int64_t c = 0; c < chunks; ++c) {
          const uint8_t* t = w.packed + (b * chunks + c) * 576;
          acc += chunk_dot(xf + m * w.k_pad + c * 32, t + 512, l,
                           [&](int j, float& wa, float& wb) {
                             const uint32_t v = lane_word(t + 64 * j, l);
                             wa = bf16_to_f32(static_cast<uint16_t>(v & 0xFFFF));
                             wb = bf16_to_f32(static_cast<uint16_t>(v >> 16));
                           });
        }
        store_out(y, m, n, bias ? acc + bias[n] : acc);
      }
    }
}

#ifdef LLMACCEL_HAVE_AVX512
// x as bf16 words: hi = round(x), and lo = round(x − hi) when asked for and x is fp32 (bf16 x
// is exact: no lo).
struct SplitAct {
  const uint16_t *hi, *lo;
};

SplitAct split_act(const Matrix& x, int64_t k_pad, bool want_lo) {
  const float* xf = stage_act_f32(x, k_pad);
  const bool lo_needed = want_lo && x.dtype == DType::F32;
  auto* buf = static_cast<uint16_t*>(scratch(1).get(sizeof(uint16_t) * x.rows * k_pad * 2));
  uint16_t* lo = lo_needed ? buf + x.rows * k_pad : nullptr;
  detail::split_bf16_avx512(xf, x.rows * k_pad, buf, lo);
  return {buf, lo};
}
#endif

// x staged as fp32 (M, k_pad) for the portable path, rounded to bf16 once here when the kernel
// consumes bf16 activations.
const float* stage_portable(const Matrix& x, int64_t k_pad, bool x_bf16) {
  const float* xf = stage_act_f32(x, k_pad);
  if (!x_bf16 || x.dtype == DType::BF16) return xf;
  auto* out = static_cast<float*>(scratch(1).get(sizeof(float) * x.rows * k_pad));
  for (int64_t i = 0; i < x.rows * k_pad; ++i) out[i] = bf16_to_f32(f32_to_bf16(xf[i]));
  return out;
}

// Both kernels: activations staged once for the path, then row blocks split across threads.
// x_bf16: the kernel consumes x rounded to bf16 (no lo part on any path). The AVX2 kernels take
// the portable path's fp32 staging.
template <typename W, typename Avx512, typename Avx2, typename Scalar>
void run_sp24(const Matrix& x, const W& w, bool x_bf16, int num_threads, Avx512 avx512,
              Avx2 avx2, Scalar scalar) {
#ifdef LLMACCEL_HAVE_AVX512
  if (cpu_isa_avx512()) {
    const SplitAct a = split_act(x, w.k_pad, !x_bf16);
    const bool native = cpu_isa() == CpuIsa::Avx512Bf16;
    return parallel_for(w.n_pad / 16, num_threads,
                        [&](int64_t b, int64_t e) { avx512(a, native, b, e); });
  }
#endif
  (void)avx512;
  const float* xf = stage_portable(x, w.k_pad, x_bf16);
#ifdef LLMACCEL_HAVE_AVX2
  if (cpu_isa_avx2())
    return parallel_for(w.n_pad / 16, num_threads, [&](int64_t b, int64_t e) { avx2(xf, b, e); });
#endif
  (void)avx2;
  parallel_for(w.n_pad / 16, num_threads, [&](int64_t b, int64_t e) { scalar(xf, b, e); });
}

}  // namespace

void gemm_w4a8_sp24(const Matrix& x, const PackedW4Sp24& w, const float* bias, const Matrix& y,
                    int num_threads) {
  const QuantAct xq = stage_act_int8(x, w.k_pad, w.group_size, num_threads);
#ifdef LLMACCEL_HAVE_AVX512
  if (cpu_isa_avx512() && cpu_vbmi()) {
    // x + 128 (vpdpbusd's unsigned operand), repacked so that a row tile's windows are
    // consecutive lines; once per call, shared by the threads. On this thread: M · K bytes of
    // copying cost less than a second fork and join at small M, and ~1 % of the call at M = 256.
    auto* xp = static_cast<uint8_t*>(scratch(2).get(xq.m * ((xq.k_pad + 63) / 64) * 64));
    detail::gemm_w4a8_sp24_avx512_pack(xq, xp);
    return parallel_for(w.n_pad / 16, num_threads, [&](int64_t b, int64_t e) {
      detail::gemm_w4a8_sp24_avx512(xq, xp, w, bias, y, b, e);
    });
  }
#endif
#ifdef LLMACCEL_HAVE_AVX2
  if (cpu_isa() >= CpuIsa::Avx2) {
    // The kernel reads x + 128 as unsigned bytes (vpmaddubsw's unsigned operand): flipped once
    // here, in place in this call's staging buffer, before the threads share it. (The count is
    // a local: through xq's fields the byte stores would alias it and the loop would not
    // vectorize.)
    uint8_t* const xu = reinterpret_cast<uint8_t*>(xq.q);
    const int64_t count = xq.m * xq.k_pad;
    for (int64_t i = 0; i < count; ++i) xu[i] ^= 0x80;
    return parallel_for(w.n_pad / 16, num_threads, [&](int64_t b, int64_t e) {
      detail::gemm_w4a8_sp24_avx2(xq, xu, w, bias, y, b, e);
    });
  }
#endif
  parallel_for(w.n_pad / 16, num_threads,
               [&](int64_t b, int64_t e) { w4a8_scalar(xq, w, bias, y, b, e); });
}

void gemm_w4a16_sp24(const Matrix& x, const PackedW4Sp24& w, const float* bias, const Matrix& y,
                     int num_threads) {
  run_sp24(
      x, w, /*x_bf16=*/true, num_threads,  // see the header: x rounded to bf16
      [&](const auto& a, bool native, int64_t b, int64_t e) {
        detail::gemm_w4a16_sp24_avx512(a.hi, a.lo, x.rows, w, bias, y, b, e, native);
      },
      [&](const float* xf, int64_t b, int64_t e) {
        detail::gemm_w4a16_sp24_avx2(xf, x.rows, w, bias, y, b, e);
      },
      [&](const float* xf, int64_t b, int64_t e) { w4_scalar(xf, x.rows, w, bias, y, b, e); });
}

void gemm_sp24(const Matrix& x, const PackedSp24& w, const float* bias, const Matrix& y,
               int num_threads) {
  run_sp24(
      x, w, /*x_bf16=*/false, num_threads,
      [&](const auto& a, bool native, int64_t b, int64_t e) {
        detail::gemm_sp24_avx512(a.hi, a.lo, x.rows, w, bias, y, b, e, native);
      },
      [&](const float* xf, int64_t b, int64_t e) {
        detail::gemm_sp24_avx2(xf, x.rows, w, bias, y, b, e);
      },
      [&](const float* xf, int64_t b, int64_t e) { bf16_scalar(xf, x.rows, w, bias, y, b, e); });
}

}  // namespace llmaccel
