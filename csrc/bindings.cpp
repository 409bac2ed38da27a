// llmaccel._C: the only file that sees Python objects. Buffers arrive as raw addresses (from
// torch's data_ptr(), so the module needs no libtorch) with their sizes; every size, alignment
// and address is checked here and a bad one raises ValueError/TypeError before a kernel runs.
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "common/bandwidth.h"
#include "common/cpu_features.h"
#include "common/peak.h"
#include "common/tensor_view.h"
#include "dequant/dequant_w4.h"
#include "decode/llama_decode.h"
#include "dequant/dequant_w8.h"
#include "gemm/gemm_w4a16.h"
#include "gemm/gemm_w4a8.h"
#include "gemm/gemm_f32.h"
#include "gemm/gemm_w8a16.h"
#include "gemm/gemm_w8a8.h"
#include "quant/quant_act_int8.h"
#include "sparse/gemm_sp24.h"
#include "train/distill_loss.h"
#ifdef LLMACCEL_WITH_CUDA
#include "cuda/device_info.h"
#endif

namespace py = pybind11;
using namespace llmaccel;

#ifdef LLMACCEL_WITH_CUDA
namespace llmaccel {
void bind_cuda(py::module_& m);  // bindings_cuda.cpp
}
#endif

namespace {

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

DType to_dtype(int code, const std::string& op) {
  if (code == 0) return DType::F32;
  if (code == 1) return DType::BF16;
  throw py::type_error("llmaccel." + op + ": activation dtype code " + std::to_string(code) +
                       " is not float32 (0) or bfloat16 (1)");
}

size_t dtype_size(DType d) { return d == DType::F32 ? 4 : 2; }

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

// A projection of the decode step: (kind, weight, scales, zeros, bias, n, k, n_pad, k_pad, group,
// act_block), kind as LinearKind; weight is the float32 (n, k) matrix for F32, the packed
// buffer for SP24, else qweight.
DecodeLinear decode_linear(const py::tuple& t, const std::string& op, const std::string& name) {
  require(t.size() == 11, op, name + " needs an 11-field description");
  const int kind = t[0].cast<int>();
  const auto weight = t[1].cast<uintptr_t>(), scales = t[2].cast<uintptr_t>(),
             zeros = t[3].cast<uintptr_t>();
  const int64_t n = t[5].cast<int64_t>(), k = t[6].cast<int64_t>(), n_pad = t[7].cast<int64_t>(),
                k_pad = t[8].cast<int64_t>(), group = t[9].cast<int64_t>();
  DecodeLinear l{};
  l.bias = bias_ptr(t[4].cast<uintptr_t>(), op);
  l.n = n;
  l.k = k;
  l.act_block = t[10].cast<int64_t>();
  const std::string where = op + " (" + name + ")";
  switch (kind) {
    case static_cast<int>(LinearKind::F32):
      require(n >= 1 && k >= 1, where, "weight shape must be positive");
      check_ptr(weight, 4, where, "weight");
      l.weight_f32 = reinterpret_cast<const float*>(weight);
      break;
    case static_cast<int>(LinearKind::W4A16):
    case static_cast<int>(LinearKind::W4A8):
      l.w4 = packed_w4(weight, scales, zeros, n, k, n_pad, k_pad, group, where);
      break;
    case static_cast<int>(LinearKind::W8A16):
    case static_cast<int>(LinearKind::W8A8):
      l.w8 = packed_w8(weight, scales, n, k, n_pad, k_pad, where);
      if (kind == static_cast<int>(LinearKind::W8A8)) {
        require(k_pad <= kGemmW8A8MaxK, where, "K exceeds 65536, the int32 accumulation limit");
        require(l.act_block == 0 || (l.act_block >= 4 && l.act_block % 4 == 0), where,
                "act_block must be 0 (per token) or a positive multiple of 4");
      }
      break;
    case static_cast<int>(LinearKind::W4A16_SP24):
      l.w4_sp24 = packed_w4_sp24(weight, scales, n, k, n_pad, k_pad, group, where);
      break;
    case static_cast<int>(LinearKind::SP24):
      l.sp24 = packed_sp24(weight, n, k, n_pad, k_pad, where);
      break;
    default:
      fail(where, "unknown kernel kind " + std::to_string(kind));
  }
  l.kind = static_cast<LinearKind>(kind);
  return l;
}

void require_shape(const DecodeLinear& l, int64_t n, int64_t k, const std::string& op,
                   const std::string& name) {
  require(l.n == n && l.k == k, op,
          name + " is " + std::to_string(l.k) + " -> " + std::to_string(l.n) + ", expected " +
              std::to_string(k) + " -> " + std::to_string(n));
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "llmaccel native kernels (torch-free). Use llmaccel.ops, not this module.";

  m.def("cpu_info", [] {
    const CpuFeatures& f = cpu_features();
    py::dict d;
    d["isa"] = cpu_isa_name(cpu_isa());
    d["reason"] = cpu_isa_reason();
    d["avx512_available"] = avx512_supported();
    d["avx512_bf16_available"] = isa_supported(CpuIsa::Avx512Bf16);
    d["vendor"] = f.vendor;
    d["brand"] = f.brand;
    py::dict feats;
    feats["avx2"] = f.avx2;
    feats["fma"] = f.fma;
    feats["avx512f"] = f.avx512f;
    feats["avx512bw"] = f.avx512bw;
    feats["avx512vl"] = f.avx512vl;
    feats["avx512dq"] = f.avx512dq;
    feats["avx512vnni"] = f.avx512vnni;
    feats["avx512bf16"] = f.avx512bf16;
    feats["amx"] = f.amx;
    feats["os_zmm_state"] = f.os_zmm;
    d["features"] = feats;
    return d;
  });
  m.def("read_bandwidth_gbs",
        [](int64_t bytes, int reps, int nt) {
          require(bytes >= (1 << 20) && reps >= 1, "read_bandwidth_gbs", "need >= 1 MiB and reps >= 1");
          int t = threads(nt, "read_bandwidth_gbs");
          py::gil_scoped_release nogil;
          return read_bandwidth_gbs(bytes, reps, t);
        },
        py::arg("bytes"), py::arg("reps"), py::arg("num_threads"));
  m.def("vnni_peak_gmacs",
        [](int reps, int nt) {
          require(reps >= 1, "vnni_peak_gmacs", "reps must be >= 1");
          int t = threads(nt, "vnni_peak_gmacs");
          py::gil_scoped_release nogil;
          return vnni_peak_gmacs(reps, t);
        },
        py::arg("reps"), py::arg("num_threads"));
  m.def("set_cpu_isa", [](const std::string& name) { set_cpu_isa(name); }, py::arg("name"));

  m.def("cuda_info", [] {
    py::dict d;
#ifdef LLMACCEL_WITH_CUDA
    d["built"] = true;
    d["runtime_version"] = cuda::runtime_version();
    d["device_count"] = cuda::device_count();
#else
    d["built"] = false;
    d["runtime_version"] = py::none();
    d["device_count"] = 0;
#endif
    return d;
  });
#ifdef LLMACCEL_WITH_CUDA
  bind_cuda(m);
#endif

  m.def("distill_loss_rows",
        [](uintptr_t s, int s_dtype, int64_t rows, int64_t v, int64_t lds, uintptr_t t,
           int t_dtype, int64_t ldt, uintptr_t labels, float alpha, float temperature,
           float scale, uintptr_t g, int g_dtype, int64_t ldg, uintptr_t kl, uintptr_t nll,
           int nt) {
          const std::string op = "distill_loss_rows";
          require(alpha >= 0.f && alpha <= 1.f, op, "alpha must be in [0, 1]");
          require(std::isfinite(temperature) && temperature > 0.f, op,
                  "temperature must be finite and > 0");
          DistillLossArgs a{};
          a.student = act_matrix(s, s_dtype, rows, v, lds, op, "student");
          if (alpha > 0.f) {
            a.teacher = act_matrix(t, t_dtype, rows, v, ldt, op, "teacher");
            check_ptr(kl, 4, op, "kl");
            a.kl = reinterpret_cast<float*>(kl);
          }
          if (alpha < 1.f) {
            check_ptr(labels, 8, op, "labels");
            check_ptr(nll, 4, op, "nll");
            a.labels = reinterpret_cast<const int64_t*>(labels);
            a.nll = reinterpret_cast<float*>(nll);
          }
          a.grad = act_matrix(g, g_dtype, rows, v, ldg, op, "grad");
          a.alpha = alpha;
          a.temperature = temperature;
          a.scale = scale;
          py::gil_scoped_release nogil;
          distill_loss_rows(a, threads(nt, op));
        });

  m.def("quant_act_int8",
        [](uintptr_t x, int dtype, int64_t rows, int64_t k, int64_t ldx, int64_t block,
           int64_t k_pad, uintptr_t q, uintptr_t scale, uintptr_t qsum, int nt) {
          const std::string op = "quant_act_int8";
          Matrix xm = act_matrix(x, dtype, rows, k, ldx, op, "x");
          require(block >= 1 && k_pad % block == 0 && k_pad >= k && k_pad - k < block, op,
                  "k_pad must be K rounded up to a multiple of block");
          check_ptr(q, 1, op, "q");
          check_ptr(scale, 4, op, "scale");
          check_ptr(qsum, 4, op, "qsum");
          QuantAct out{reinterpret_cast<int8_t*>(q), reinterpret_cast<float*>(scale),
                       reinterpret_cast<int32_t*>(qsum), rows, k_pad, block};
          py::gil_scoped_release nogil;
          quant_act_int8(xm, out, threads(nt, op));
        });

  auto def_w4 = [&m](const char* name, void (*fn)(const Matrix&, const PackedW4&, const float*,
                                                   const Matrix&, int)) {
    m.def(name, [fn, name](uintptr_t x, int dtype, int64_t rows, int64_t k, int64_t ldx,
                           uintptr_t qweight, uintptr_t scales, uintptr_t zeros, int64_t n,
                           int64_t n_pad, int64_t k_pad, int64_t group, uintptr_t bias,
                           uintptr_t y, int64_t ldy, int nt) {
      const std::string op = name;
      Matrix xm = act_matrix(x, dtype, rows, k, ldx, op, "x");
      Matrix ym = act_matrix(y, dtype, rows, n, ldy, op, "out");
      PackedW4 w = packed_w4(qweight, scales, zeros, n, k, n_pad, k_pad, group, op);
      if (fn == &gemm_w4a8)
        require(group <= (int64_t{1} << 20), op,
                "group_size " + std::to_string(group) + " exceeds 2^20, the int32 accumulation limit");
      const float* b = bias_ptr(bias, op);
      int t = threads(nt, op);
      py::gil_scoped_release nogil;
      fn(xm, w, b, ym, t);
    });
  };
  m.def("gemm_f32", [](uintptr_t x, int dtype, int64_t rows, int64_t k, int64_t ldx, uintptr_t w,
                       int64_t n, uintptr_t bias, uintptr_t y, int64_t ldy, int nt) {
    const std::string op = "gemm_f32";
    Matrix xm = act_matrix(x, dtype, rows, k, ldx, op, "x");
    Matrix ym = act_matrix(y, dtype, rows, n, ldy, op, "out");
    require(w != 0 && n > 0, op, "weight must be a non-empty (N, K) float32 matrix");
    const float* b = bias_ptr(bias, op);
    int t = threads(nt, op);
    py::gil_scoped_release nogil;
    gemm_f32(xm, reinterpret_cast<const float*>(w), n, b, ym, t);
  });
  def_w4("gemm_w4a16", &gemm_w4a16);
  // gemm_w4a8 sums a whole group in int32: |Σ q·xq| ≤ 15 · 127 · group must stay below 2^31.
  def_w4("gemm_w4a8", &gemm_w4a8);

  // act_block: gemm_w8a8's activation block (0 = per token over all of K); must be 0 for w8a16.
  auto def_w8 = [&m](const char* name, auto fn, bool has_blocks) {
    m.def(name, [fn, name, has_blocks](uintptr_t x, int dtype, int64_t rows, int64_t k,
                                       int64_t ldx, uintptr_t qweight, uintptr_t scales,
                                       int64_t n, int64_t n_pad, int64_t k_pad, uintptr_t bias,
                                       uintptr_t y, int64_t ldy, int nt, int64_t act_block) {
      const std::string op = name;
      Matrix xm = act_matrix(x, dtype, rows, k, ldx, op, "x");
      Matrix ym = act_matrix(y, dtype, rows, n, ldy, op, "out");
      PackedW8 w = packed_w8(qweight, scales, n, k, n_pad, k_pad, op);
      if (has_blocks) {
        require(k_pad <= kGemmW8A8MaxK, op,
                "K=" + std::to_string(k) + " exceeds 65536, the int32 accumulation limit");
        require(act_block == 0 || (act_block >= 4 && act_block % 4 == 0), op,
                "act_block must be 0 (per token) or a positive multiple of 4, got " +
                    std::to_string(act_block));
      } else {
        require(act_block == 0, op, "this op has no activation blocks");
      }
      const float* b = bias_ptr(bias, op);
      int t = threads(nt, op);
      py::gil_scoped_release nogil;
      fn(xm, w, b, ym, t, act_block);
    });
  };
  def_w8("gemm_w8a16",
         [](const Matrix& x, const PackedW8& w, const float* b, const Matrix& y, int t, int64_t) {
           gemm_w8a16(x, w, b, y, t);
         },
         false);
  def_w8("gemm_w8a8",
         [](const Matrix& x, const PackedW8& w, const float* b, const Matrix& y, int t,
            int64_t blk) { gemm_w8a8(x, w, b, y, t, blk); },
         true);

  m.def("gemm_w4a16_sp24", [](uintptr_t x, int dtype, int64_t rows, int64_t k, int64_t ldx,
                              uintptr_t qweight, uintptr_t scales, int64_t n, int64_t n_pad,
                              int64_t k_pad, int64_t group, uintptr_t bias, uintptr_t y,
                              int64_t ldy, int nt) {
    const std::string op = "gemm_w4a16_sp24";
    Matrix xm = act_matrix(x, dtype, rows, k, ldx, op, "x");
    Matrix ym = act_matrix(y, dtype, rows, n, ldy, op, "out");
    const PackedW4Sp24 w = packed_w4_sp24(qweight, scales, n, k, n_pad, k_pad, group, op);
    const float* b = bias_ptr(bias, op);
    int t = threads(nt, op);
    py::gil_scoped_release nogil;
    gemm_w4a16_sp24(xm, w, b, ym, t);
  });
  m.def("gemm_sp24", [](uintptr_t x, int dtype, int64_t rows, int64_t k, int64_t ldx,
                        uintptr_t packed, int64_t n, int64_t n_pad, int64_t k_pad, uintptr_t bias,
                        uintptr_t y, int64_t ldy, int nt) {
    const std::string op = "gemm_sp24";
    Matrix xm = act_matrix(x, dtype, rows, k, ldx, op, "x");
    Matrix ym = act_matrix(y, dtype, rows, n, ldy, op, "out");
    const PackedSp24 w = packed_sp24(packed, n, k, n_pad, k_pad, op);
    const float* b = bias_ptr(bias, op);
    int t = threads(nt, op);
    py::gil_scoped_release nogil;
    gemm_sp24(xm, w, b, ym, t);
  });

  m.def("dequant_w4", [](uintptr_t qweight, uintptr_t scales, uintptr_t zeros, int64_t n,
                         int64_t k, int64_t n_pad, int64_t k_pad, int64_t group, uintptr_t out,
                         int64_t ldo, int nt) {
    const std::string op = "dequant_w4";
    PackedW4 w = packed_w4(qweight, scales, zeros, n, k, n_pad, k_pad, group, op);
    check_ptr(out, 4, op, "out");
    require(ldo >= k, op, "out row stride is smaller than K");
    int t = threads(nt, op);
    py::gil_scoped_release nogil;
    dequant_w4(w, reinterpret_cast<float*>(out), ldo, t);
  });
  m.def("dequant_w8", [](uintptr_t qweight, uintptr_t scales, int64_t n, int64_t k, int64_t n_pad,
                         int64_t k_pad, uintptr_t out, int64_t ldo, int nt) {
    const std::string op = "dequant_w8";
    PackedW8 w = packed_w8(qweight, scales, n, k, n_pad, k_pad, op);
    check_ptr(out, 4, op, "out");
    require(ldo >= k, op, "out row stride is smaller than K");
    int t = threads(nt, op);
    py::gil_scoped_release nogil;
    dequant_w8(w, reinterpret_cast<float*>(out), ldo, t);
  });

  m.def("time_linears",
        [](const py::list& linears, uintptr_t x, int64_t rows, uintptr_t y, int64_t calls,
           int nt) {
          const std::string op = "time_linears";
          require(linears.size() >= 1, op, "give at least one projection");
          require(rows >= 1 && calls >= 1, op, "rows and calls must be >= 1");
          check_ptr(x, 4, op, "x");
          check_ptr(y, 4, op, "y");
          std::vector<DecodeLinear> ls;
          for (size_t i = 0; i < linears.size(); ++i) {
            ls.push_back(decode_linear(linears[i].cast<py::tuple>(), op,
                                       "projection " + std::to_string(i)));
            require_shape(ls.back(), ls.front().n, ls.front().k, op,
                          "projection " + std::to_string(i));
          }
          int t = threads(nt, op);
          std::vector<double> seconds;
          {
            py::gil_scoped_release nogil;
            seconds = time_linears(ls, reinterpret_cast<const float*>(x), rows,
                                   reinterpret_cast<float*>(y), calls, t);
          }
          py::list out;
          for (double s : seconds) out.append(s);
          return out;
        });

  // The whole-model decode step (decode/llama_decode.h). Python keeps every buffer alive.
  py::class_<LlamaDecodeStep>(m, "LlamaDecodeStep")
      .def(py::init([](const py::tuple& dims, uintptr_t embed, uintptr_t rot, uintptr_t norm,
                       uintptr_t cache, const py::list& layers, const py::tuple& lm_head) {
             const std::string op = "LlamaDecodeStep";
             require(dims.size() == 10, op, "dims needs 10 fields");
             LlamaDims d{dims[0].cast<int64_t>(), dims[1].cast<int64_t>(), dims[2].cast<int64_t>(),
                         dims[3].cast<int64_t>(), dims[4].cast<int64_t>(), dims[5].cast<int64_t>(),
                         dims[6].cast<int64_t>(), dims[7].cast<int64_t>(), dims[8].cast<float>(),
                         dims[9].cast<float>()};
             require(d.hidden >= 1 && d.inter >= 1 && d.vocab >= 1 && d.max_len >= 1 &&
                         d.batch >= 1, op, "sizes must be positive");
             require(d.heads >= 1 && d.kv_heads >= 1 && d.heads % d.kv_heads == 0, op,
                     "heads must be a positive multiple of kv_heads");
             require(d.head_dim >= 2 && d.head_dim % 2 == 0, op, "head_dim must be even");
             require(layers.size() >= 1, op, "the model has no layers");
             check_ptr(embed, 4, op, "embed");
             check_ptr(rot, 4, op, "rot");
             check_ptr(norm, 4, op, "norm");
             check_ptr(cache, 4, op, "cache");
             const int64_t q = d.heads * d.head_dim, kv = d.kv_heads * d.head_dim;
             std::vector<DecodeLayer> ls;
             for (size_t i = 0; i < layers.size(); ++i) {
               const auto t = layers[i].cast<py::tuple>();
               require(t.size() == 6, op, "a layer needs (ln1, qkv, o, ln2, gate_up, down)");
               const std::string li = "layer " + std::to_string(i) + " ";
               DecodeLayer L{};
               check_ptr(t[0].cast<uintptr_t>(), 4, op, "ln1");
               check_ptr(t[3].cast<uintptr_t>(), 4, op, "ln2");
               L.ln1 = reinterpret_cast<const float*>(t[0].cast<uintptr_t>());
               L.ln2 = reinterpret_cast<const float*>(t[3].cast<uintptr_t>());
               L.qkv = decode_linear(t[1].cast<py::tuple>(), op, li + "qkv");
               L.o = decode_linear(t[2].cast<py::tuple>(), op, li + "o");
               L.gate_up = decode_linear(t[4].cast<py::tuple>(), op, li + "gate_up");
               L.down = decode_linear(t[5].cast<py::tuple>(), op, li + "down");
               require_shape(L.qkv, q + 2 * kv, d.hidden, op, li + "qkv");
               require_shape(L.o, d.hidden, q, op, li + "o");
               require_shape(L.gate_up, 2 * d.inter, d.hidden, op, li + "gate_up");
               require_shape(L.down, d.hidden, d.inter, op, li + "down");
               ls.push_back(L);
             }
             DecodeLinear head = decode_linear(lm_head, op, "lm_head");
             require_shape(head, d.vocab, d.hidden, op, "lm_head");
             return new LlamaDecodeStep(d, reinterpret_cast<const float*>(embed),
                                        reinterpret_cast<const float*>(rot),
                                        std::move(ls), reinterpret_cast<const float*>(norm), head,
                                        reinterpret_cast<float*>(cache));
           }),
           py::arg("dims"), py::arg("embed"), py::arg("rot"), py::arg("norm"), py::arg("cache"),
           py::arg("layers"), py::arg("lm_head"))
      .def("run",
           [](LlamaDecodeStep& s, uintptr_t ids, int64_t pos, uintptr_t logits, int nt) {
             const std::string op = "LlamaDecodeStep.run";
             check_ptr(ids, 8, op, "ids");
             check_ptr(logits, 4, op, "logits");
             int t = threads(nt, op);
             py::gil_scoped_release nogil;
             s.run(reinterpret_cast<const int64_t*>(ids), pos, reinterpret_cast<float*>(logits), t);
           },
           py::arg("ids"), py::arg("pos"), py::arg("logits"), py::arg("num_threads"))
      .def("set_profiling", &LlamaDecodeStep::set_profiling, py::arg("on"))
      .def("profile", [](const LlamaDecodeStep& s) {
        py::dict d;
        for (int i = 0; i < LlamaDecodeStep::kParts; ++i)
          d[LlamaDecodeStep::kPartNames[i]] = s.profile()[i];
        return d;
      });
}
