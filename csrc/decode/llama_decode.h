// llama_decode_step: one greedy-decode step of a Llama-family model (Llama, Mistral, Qwen2) for a
// batch of sequences at the same position, with the layer loop in C++.
//
// Why: at 135M parameters a token's weights stream in ~2 ms, while driving ~10 small torch ops
// per layer from Python costs ~4 ms more (see runtime/llama.py). Here a step is one call; the
// matrix products are the same kernels the ops run (gemm_w4a16, gemm_w8a8, gemm_f32, ...).
//
// Contract (everything float32, row-major, owned by the caller and alive while the step is used):
//   embed (vocab, hidden); rot (max_len, head_dim/2, 2): cos/sin per position and pair;
//   per layer: ln1, ln2 (hidden); qkv projection (hidden → (heads + 2·kv_heads)·head_dim) whose
//   q and k output rows are interleaved per head as (0, d/2, 1, d/2+1, ...), so rotary is a
//   complex multiply of adjacent pairs; o ((heads·head_dim) → hidden); gate_up (hidden →
//   2·inter, gate rows first); down (inter → hidden); final norm (hidden); lm_head (hidden →
//   vocab). cache (layers, 2, batch, kv_heads, max_len, head_dim): keys (rotated) and values of
//   positions < pos must already be there (prefill); the step writes position pos.
// Output: logits (batch, vocab) of the token after ids.
#pragma once
#include <cstdint>
#include <vector>

#include "common/tensor_view.h"

namespace llmaccel {

enum class LinearKind : int {
  F32 = 0, W4A16 = 1, W4A8 = 2, W8A16 = 3, W8A8 = 4, W4A16_SP24 = 5, SP24 = 6, W4A8_SP24 = 7
};

// One projection and the kernel that runs it at this batch size.
struct DecodeLinear {
  LinearKind kind;
  const float* weight_f32;  // F32: (n, k) row-major
  PackedW4 w4;              // W4A16, W4A8
  PackedW8 w8;              // W8A16, W8A8
  PackedW4Sp24 w4_sp24;     // W4A16_SP24, W4A8_SP24
  PackedSp24 sp24;          // SP24
  const float* bias;        // (n) or null
  int64_t n, k;
  int64_t act_block;  // W8A8 only: activation block along K (0 = per token)
};

// Seconds of each of `calls` calls of run_linear, cycling through `linears` (copies of one
// projection: a benchmark rotates through enough of them that every call reads its weights
// from DRAM). x: (m, k) float32, y: (m, n) float32. A kernel's own time, without the Python
// dispatch that an op call adds (~12 µs here, more than a small projection's kernel).
std::vector<double> time_linears(const std::vector<DecodeLinear>& linears, const float* x,
                                 int64_t m, float* y, int64_t calls, int num_threads);

struct DecodeLayer {
  const float *ln1, *ln2;
  DecodeLinear qkv, o, gate_up, down;
};

struct LlamaDims {
  int64_t hidden, heads, kv_heads, head_dim, inter, vocab, max_len, batch;
  float eps, scale;
};

class LlamaDecodeStep {
 public:
  LlamaDecodeStep(const LlamaDims& dims, const float* embed, const float* rot,
                  std::vector<DecodeLayer> layers, const float* norm, DecodeLinear lm_head,
                  float* cache);
  // ids (batch) token ids; throws std::invalid_argument for an id outside the vocabulary or a
  // position outside the cache. logits: (batch, vocab).
  void run(const int64_t* ids, int64_t pos, float* logits, int num_threads);

  // Where the time of run() goes, summed over calls since the last reset, in seconds per part
  // (kPartNames order). Off by default; on, it costs a clock read per part (~20 ns each).
  static constexpr int kParts = 7;
  static constexpr const char* kPartNames[kParts] = {"qkv", "o", "gate_up", "down", "lm_head",
                                                     "attention", "other"};
  void set_profiling(bool on);
  const double* profile() const { return seconds_; }

 private:
  LlamaDims d_;
  const float *embed_, *rot_, *norm_;
  std::vector<DecodeLayer> layers_;
  DecodeLinear lm_head_;
  float* cache_;
  bool profiling_ = false;
  double seconds_[kParts] = {};
  // Activations for one step: x (residual), xn (normed), qkv, attn, gu, act, tmp, scores.
  std::vector<float> x_, xn_, qkv_, attn_, gu_, act_, tmp_, scores_;
};

}  // namespace llmaccel
