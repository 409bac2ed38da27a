// The argument checks every binding shares: each turns a raw address and its sizes into a
// kernel view, or raises ValueError/TypeError (llmaccel.<op>: ...) before a kernel runs.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "common/tensor_view.h"

namespace llmaccel::bind {

[[noreturn]] void fail(const std::string& op, const std::string& what);
void require(bool ok, const std::string& op, const std::string& what);
void check_ptr(uintptr_t p, size_t align, const std::string& op, const char* name);
// Activations/outputs: dtype code 0 float32, 1 bfloat16.
Matrix act_matrix(uintptr_t p, int dtype, int64_t rows, int64_t cols, int64_t ld,
                  const std::string& op, const char* name);
PackedW4 packed_w4(uintptr_t qweight, uintptr_t scales, uintptr_t zeros, int64_t n, int64_t k,
                   int64_t n_pad, int64_t k_pad, int64_t group, const std::string& op);
PackedW8 packed_w8(uintptr_t qweight, uintptr_t scales, int64_t n, int64_t k, int64_t n_pad,
                   int64_t k_pad, const std::string& op);
PackedW4Sp24 packed_w4_sp24(uintptr_t qweight, uintptr_t scales, int64_t n, int64_t k,
                            int64_t n_pad, int64_t k_pad, int64_t group, const std::string& op);
PackedSp24 packed_sp24(uintptr_t packed, int64_t n, int64_t k, int64_t n_pad, int64_t k_pad,
                       const std::string& op);
const float* bias_ptr(uintptr_t bias, const std::string& op);
int threads(int nt, const std::string& op);

}  // namespace llmaccel::bind
