#include "decode/llama_decode.h"

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

#include "decode/decode_kernels.h"
#include "gemm/gemm_f32.h"
#include "gemm/gemm_w4a16.h"
#include "gemm/gemm_w4a8.h"
#include "gemm/gemm_w8a16.h"
#include "gemm/gemm_w8a8.h"
#include "sparse/gemm_sp24.h"

namespace llmaccel {
namespace {

void run_linear(const DecodeLinear& l, const float* x, int64_t m, float* y, int nt) {
  const Matrix xm{const_cast<float*>(x), DType::F32, m, l.k, l.k};
  const Matrix ym{y, DType::F32, m, l.n, l.n};
  switch (l.kind) {
    case LinearKind::F32: return gemm_f32(xm, l.weight_f32, l.n, l.bias, ym, nt);
    case LinearKind::W4A16: return gemm_w4a16(xm, l.w4, l.bias, ym, nt);
    case LinearKind::W4A8: return gemm_w4a8(xm, l.w4, l.bias, ym, nt);
    case LinearKind::W8A16: return gemm_w8a16(xm, l.w8, l.bias, ym, nt);
    case LinearKind::W8A8: return gemm_w8a8(xm, l.w8, l.bias, ym, nt, l.act_block);
    case LinearKind::W4A16_SP24: return gemm_w4a16_sp24(xm, l.w4_sp24, l.bias, ym, nt);
    case LinearKind::SP24: return gemm_sp24(xm, l.sp24, l.bias, ym, nt);
    case LinearKind::W4A8_SP24: return gemm_w4a8_sp24(xm, l.w4_sp24, l.bias, ym, nt);
  }
}

// Charges the time since the previous mark to a part, when profiling.
class PartClock {
 public:
  PartClock(bool on, double* seconds) : on_(on), seconds_(seconds) {
    if (on_) last_ = std::chrono::steady_clock::now();
  }
  void mark(int part) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    seconds_[part] += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  bool on_;
  double* seconds_;
  std::chrono::steady_clock::time_point last_;
};

enum Part { kQkv, kO, kGateUp, kDown, kLmHead, kAttention, kOther };

}  // namespace

std::vector<double> time_linears(const std::vector<DecodeLinear>& linears, const float* x,
                                 int64_t m, float* y, int64_t calls, int num_threads) {
  std::vector<double> seconds(static_cast<size_t>(calls));
  for (int64_t c = 0; c < calls; ++c) {
    const DecodeLinear& l = linears[static_cast<size_t>(c) % linears.size()];
    const auto start = std::chrono::steady_clock::now();
    run_linear(l, x, m, y, num_threads);
    seconds[static_cast<size_t>(c)] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return seconds;
}

void LlamaDecodeStep::set_profiling(bool on) {
  profiling_ = on;
  std::fill(seconds_, seconds_ + kParts, 0.0);
}

LlamaDecodeStep::LlamaDecodeStep(const LlamaDims& dims, const float* embed, const float* rot,
                                 std::vector<DecodeLayer> layers, const float* norm,
                                 DecodeLinear lm_head, float* cache)
    : d_(dims), embed_(embed), rot_(rot), norm_(norm), layers_(std::move(layers)),
      lm_head_(lm_head), cache_(cache) {
  const int64_t b = d_.batch, q = d_.heads * d_.head_dim, kv = d_.kv_heads * d_.head_dim;
  x_.resize(b * d_.hidden);
  xn_.resize(b * std::max(d_.hidden, d_.inter));
  qkv_.resize(b * (q + 2 * kv));
  attn_.resize(b * q);
  gu_.resize(b * 2 * d_.inter);
  act_.resize(b * d_.inter);
  tmp_.resize(b * d_.hidden);
  scores_.resize((d_.heads / d_.kv_heads) * d_.max_len);
}

void LlamaDecodeStep::run(const int64_t* ids, int64_t pos, float* logits, int nt) {
  const DecodeKernels& kern = decode_kernels();
  const int64_t B = d_.batch, H = d_.hidden, hd = d_.head_dim, G = d_.heads / d_.kv_heads;
  const int64_t q_size = d_.heads * hd, kv_size = d_.kv_heads * hd, qkv_n = q_size + 2 * kv_size;
  if (pos < 0 || pos >= d_.max_len)
    throw std::invalid_argument("position " + std::to_string(pos) + " is outside the cache of " +
                                std::to_string(d_.max_len) + " positions");
  PartClock clock(profiling_, seconds_);
  for (int64_t b = 0; b < B; ++b) {
    if (ids[b] < 0 || ids[b] >= d_.vocab)
      throw std::invalid_argument("token id " + std::to_string(ids[b]) +
                                  " is outside the vocabulary of " + std::to_string(d_.vocab));
    std::copy(embed_ + ids[b] * H, embed_ + (ids[b] + 1) * H, x_.data() + b * H);
  }
  const float* rot = rot_ + pos * hd;  // hd/2 (cos, sin) pairs
  // Strides of the cache (layers, 2, batch, kv_heads, max_len, head_dim).
  const int64_t s_head = d_.max_len * hd, s_batch = d_.kv_heads * s_head, s_kv = B * s_batch;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const DecodeLayer& L = layers_[i];
    float* kcache = cache_ + static_cast<int64_t>(i) * 2 * s_kv;
    float* vcache = kcache + s_kv;
    for (int64_t b = 0; b < B; ++b) kern.rms_norm(&x_[b * H], L.ln1, d_.eps, H, &xn_[b * H]);
    clock.mark(kOther);
    run_linear(L.qkv, xn_.data(), B, qkv_.data(), nt);
    clock.mark(kQkv);
    for (int64_t b = 0; b < B; ++b) {
      float* y = &qkv_[b * qkv_n];
      kern.rotate(y, rot, d_.heads + d_.kv_heads, hd);
      for (int64_t g = 0; g < d_.kv_heads; ++g) {
        float* kc = kcache + b * s_batch + g * s_head;
        float* vc = vcache + b * s_batch + g * s_head;
        std::copy(y + q_size + g * hd, y + q_size + (g + 1) * hd, kc + pos * hd);
        std::copy(y + q_size + kv_size + g * hd, y + q_size + kv_size + (g + 1) * hd, vc + pos * hd);
        kern.attend(y + g * G * hd, kc, vc, pos + 1, hd, G, d_.scale, scores_.data(),
                    &attn_[b * q_size + g * G * hd]);
      }
    }
    clock.mark(kAttention);
    run_linear(L.o, attn_.data(), B, tmp_.data(), nt);
    clock.mark(kO);
    kern.add(x_.data(), tmp_.data(), B * H);
    for (int64_t b = 0; b < B; ++b) kern.rms_norm(&x_[b * H], L.ln2, d_.eps, H, &xn_[b * H]);
    clock.mark(kOther);
    run_linear(L.gate_up, xn_.data(), B, gu_.data(), nt);
    clock.mark(kGateUp);
    for (int64_t b = 0; b < B; ++b)
      kern.silu_mul(&gu_[b * 2 * d_.inter], d_.inter, &act_[b * d_.inter]);
    clock.mark(kOther);
    run_linear(L.down, act_.data(), B, tmp_.data(), nt);
    clock.mark(kDown);
    kern.add(x_.data(), tmp_.data(), B * H);
  }
  for (int64_t b = 0; b < B; ++b) kern.rms_norm(&x_[b * H], norm_, d_.eps, H, &xn_[b * H]);
  clock.mark(kOther);
  run_linear(lm_head_, xn_.data(), B, logits, nt);
  clock.mark(kLmHead);
}

}  // namespace llmaccel
