// Per-thread reusable scratch buffers: a decode step calls each kernel hundreds of times, and a
// fresh allocation per call costs more than small-M work itself.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace llmaccel {

class Scratch {
 public:
  ~Scratch() { std::free(ptr_); }
  // 64-byte aligned (one cache line, one zmm); contents are unspecified.
  void* get(size_t bytes) {
    if (bytes > cap_) {
      std::free(ptr_);
      cap_ = (bytes + 63) / 64 * 64;
      ptr_ = std::aligned_alloc(64, cap_);
      if (!ptr_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t cap_ = 0;
};

// Slot 0 holds converted activations, slot 1 quantized activations' scales and sums, slot 2
// activations repacked for one kernel (gemm_w4a8_sp24's AVX-512 path).
inline Scratch& scratch(int slot) {
  thread_local Scratch s[3];
  return s[slot];
}

}  // namespace llmaccel
