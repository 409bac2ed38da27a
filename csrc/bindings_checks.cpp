#include "bindings_checks.h"

namespace py = pybind11;

namespace llmaccel::bind {
namespace {

DType to_dtype(int code, const std::string& op) {
  if (code == 0) return DType::F32;
  if (code == 1) return DType::BF16;
  throw py::type_error("llmaccel." + op + ": activation dtype code " + std::to_string(code) +
                       " is not float32 (0) or bfloat16 (1)");
}

size_t dtype_size(DType d) { return d == DType::F32 ? 4 : 2; }

void check_padding(int64_t n, int64_t k, int64_t n_pad, int64_t k_pad, int64_t k_mult,
                   const std::string& op) {
  require(n >= 1 && k >= 1, op, "weight shape must be positive");
  require(n_pad % 16 == 0 && n_pad >= n && n_pad - n < 16, op,
          "n_pad must be N rounded up to a multiple of 16 (N=" + std::to_string(n) +
              ", n_pad=" + std::to_string(n_pad) + ")");
  require(k_pad >= k && k_pad % k_mult == 0, op,
          "k_pad=" + std::to_string(k_pad) + " must be >= K=" + std::to_string(k) +
              " and a multiple of " + std::to_string(k_mult));
}

}  // namespace

[[noreturn]] void fail(const std::string& op, const std::string& what) {
  throw py::value_error("llmaccel." + op + ": " + what);
}

void require(bool ok, const std::string& op, const std::string& what) {
  if (!ok) fail(op, what);
}

void check_ptr(uintptr_t p, size_t align, const std::string& op, const char* name) {
  require(p != 0, op, std::string(name) + " is a null pointer");
  require(p % align == 0, op,
          std::string(name) + " is not aligned to " + std::to_string(align) + " bytes");
}

Matrix act_matrix(uintptr_t p, int dtype, int64_t rows, int64_t cols, int64_t ld,
                  const std::string& op, const char* name) {
  DType d = to_dtype(dtype, op);
  check_ptr(p, dtype_size(d), op, name);
  require(rows >= 1, op, std::string(name) + " needs at least one row, got " + std::to_string(rows));
  require(cols >= 1, op, std::string(name) + " needs at least one column");
  require(ld >= cols, op, std::string(name) + " row stride " + std::to_string(ld) +
                              " is smaller than its " + std::to_string(cols) + " columns");
  return Matrix{reinterpret_cast<void*>(p), d, rows, cols, ld};
}

PackedW4 packed_w4(uintptr_t qweight, uintptr_t scales, uintptr_t zeros, int64_t n, int64_t k,
                   int64_t n_pad, int64_t k_pad, int64_t group, const std::string& op) {
  require(group >= 32 && group % 32 == 0, op,
          "group_size must be a positive multiple of 32, got " + std::to_string(group));
  check_padding(n, k, n_pad, k_pad, group, op);
  require(k_pad - k < group || k_pad == group, op,
          "k_pad must be K rounded up to the group size");
  check_ptr(qweight, 1, op, "qweight");
  check_ptr(scales, 4, op, "scales");
  if (zeros) check_ptr(zeros, 1, op, "zeros");
  return PackedW4{reinterpret_cast<const uint8_t*>(qweight), reinterpret_cast<const float*>(scales),
                  reinterpret_cast<const uint8_t*>(zeros), n, k, n_pad, k_pad, group};
}

PackedW8 packed_w8(uintptr_t qweight, uintptr_t scales, int64_t n, int64_t k, int64_t n_pad,
                   int64_t k_pad, const std::string& op) {
  check_padding(n, k, n_pad, k_pad, 4, op);
  require(k_pad - k < 4, op, "k_pad must be K rounded up to a multiple of 4");
  check_ptr(qweight, 1, op, "qweight");
  check_ptr(scales, 4, op, "scales");
  return PackedW8{reinterpret_cast<const int8_t*>(qweight), reinterpret_cast<const float*>(scales),
                  n, k, n_pad, k_pad};
}

// 2:4 int4 follows int4_tile16x8's padding rules (k_pad a multiple of the group, itself of 32).
PackedW4Sp24 packed_w4_sp24(uintptr_t qweight, uintptr_t scales, int64_t n, int64_t k,
                            int64_t n_pad, int64_t k_pad, int64_t group, const std::string& op) {
  const PackedW4 dense = packed_w4(qweight, scales, 0, n, k, n_pad, k_pad, group, op);
  return PackedW4Sp24{dense.qweight, dense.scales, n, k, n_pad, k_pad, group};
}

PackedSp24 packed_sp24(uintptr_t packed, int64_t n, int64_t k, int64_t n_pad, int64_t k_pad,
                       const std::string& op) {
  check_padding(n, k, n_pad, k_pad, 32, op);
  require(k_pad - k < 32, op, "k_pad must be K rounded up to a multiple of 32");
  check_ptr(packed, 1, op, "packed");
  return PackedSp24{reinterpret_cast<const uint8_t*>(packed), n, k, n_pad, k_pad};
}

const float* bias_ptr(uintptr_t bias, const std::string& op) {
  if (bias) check_ptr(bias, 4, op, "bias");
  return reinterpret_cast<const float*>(bias);
}

int threads(int nt, const std::string& op) {
  require(nt >= 1, op, "num_threads must be >= 1");
  return nt;
}

}  // namespace llmaccel::bind
