// llmaccel._C: with bindings_decode.cpp and bindings_cuda.cpp, the only files that see Python
// objects. Buffers arrive as raw addresses (from torch's data_ptr(), so the module needs no
// libtorch) with their sizes; every size, alignment and address is checked (bindings_checks.h)
// and a bad one raises ValueError/TypeError before a kernel runs.
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "bindings_checks.h"

#include "common/bandwidth.h"
#include "common/cpu_features.h"
#include "common/peak.h"
#include "common/tensor_view.h"
#include "dequant/dequant_sp24.h"
#include "dequant/dequant_w4.h"
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

using namespace llmaccel::bind;

namespace llmaccel {
void bind_decode(py::module_& m);  // bindings_decode.cpp
#ifdef LLMACCEL_WITH_CUDA
void bind_cuda(py::module_& m);  // bindings_cuda.cpp
#endif
}  // namespace llmaccel

namespace {
// The dequant ops' shared tail: the fp32 output's checks (row stride ldo ≥ k), then
// fn(out, threads) without the GIL.
template <typename Fn>
void dequant_into(const std::string& op, uintptr_t out, int64_t ldo, int64_t k, int nt, Fn fn) {
  check_ptr(out, 4, op, "out");
  require(ldo >= k, op, "out row stride is smaller than K");
  const int t = threads(nt, op);
  py::gil_scoped_release nogil;
  fn(reinterpret_cast<float*>(out), t);
}
}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "llmaccel native kernels (torch-free). Use llmaccel.ops, not this module.";

  // The current path's name alone: cheap enough for a layer's forward to ask.
  m.def("cpu_isa", [] { return std::string(cpu_isa_name(cpu_isa())); });
  m.def("cpu_info", [] {
    const CpuFeatures& f = cpu_features();
    py::dict d;
    d["isa"] = cpu_isa_name(cpu_isa());
    d["reason"] = cpu_isa_reason();
    d["avx2_available"] = isa_supported(CpuIsa::Avx2);
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
    feats["avx512vbmi"] = f.avx512vbmi;
    feats["avx512bf16"] = f.avx512bf16;
    feats["amx"] = f.amx;
    feats["os_ymm_state"] = f.os_ymm;
    feats["os_zmm_state"] = f.os_zmm;
    d["features"] = feats;
    d["vbmi"] = cpu_vbmi();
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
  m.def("int8_peak_gmacs",
        [](int reps, int nt) {
          require(reps >= 1, "int8_peak_gmacs", "reps must be >= 1");
          int t = threads(nt, "int8_peak_gmacs");
          py::gil_scoped_release nogil;
          return int8_peak_gmacs(reps, t);
        },
        py::arg("reps"), py::arg("num_threads"));
  m.def("set_cpu_isa", [](const std::string& name) { set_cpu_isa(name); }, py::arg("name"));
  m.def("cpu_vbmi", [] { return cpu_vbmi(); });
  m.def("set_cpu_vbmi", [](bool enabled) { set_cpu_vbmi(enabled); }, py::arg("enabled"));

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

  // The two ops over int4_sp24 weights: float activations, or int8 quantized on the fly.
  auto def_w4_sp24 = [&m](const char* name, void (*fn)(const Matrix&, const PackedW4Sp24&,
                                                       const float*, const Matrix&, int)) {
    m.def(name, [name, fn](uintptr_t x, int dtype, int64_t rows, int64_t k, int64_t ldx,
                           uintptr_t qweight, uintptr_t scales, int64_t n, int64_t n_pad,
                           int64_t k_pad, int64_t group, uintptr_t bias, uintptr_t y, int64_t ldy,
                           int nt) {
      const std::string op = name;
      Matrix xm = act_matrix(x, dtype, rows, k, ldx, op, "x");
      Matrix ym = act_matrix(y, dtype, rows, n, ldy, op, "out");
      const PackedW4Sp24 w = packed_w4_sp24(qweight, scales, n, k, n_pad, k_pad, group, op);
      const float* b = bias_ptr(bias, op);
      int t = threads(nt, op);
      py::gil_scoped_release nogil;
      fn(xm, w, b, ym, t);
    });
  };
  def_w4_sp24("gemm_w4a16_sp24", gemm_w4a16_sp24);
  def_w4_sp24("gemm_w4a8_sp24", gemm_w4a8_sp24);
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
    const PackedW4 w = packed_w4(qweight, scales, zeros, n, k, n_pad, k_pad, group, "dequant_w4");
    dequant_into("dequant_w4", out, ldo, k, nt, [&](float* o, int t) { dequant_w4(w, o, ldo, t); });
  });
  m.def("dequant_w8", [](uintptr_t qweight, uintptr_t scales, int64_t n, int64_t k, int64_t n_pad,
                         int64_t k_pad, uintptr_t out, int64_t ldo, int nt) {
    const PackedW8 w = packed_w8(qweight, scales, n, k, n_pad, k_pad, "dequant_w8");
    dequant_into("dequant_w8", out, ldo, k, nt, [&](float* o, int t) { dequant_w8(w, o, ldo, t); });
  });
  m.def("dequant_w4_sp24", [](uintptr_t qweight, uintptr_t scales, int64_t n, int64_t k,
                              int64_t n_pad, int64_t k_pad, int64_t group, uintptr_t out,
                              int64_t ldo, int nt) {
    const std::string op = "dequant_w4_sp24";
    const PackedW4Sp24 w = packed_w4_sp24(qweight, scales, n, k, n_pad, k_pad, group, op);
    dequant_into(op, out, ldo, k, nt, [&](float* o, int t) { dequant_w4_sp24(w, o, ldo, t); });
  });
  m.def("dequant_sp24", [](uintptr_t packed, int64_t n, int64_t k, int64_t n_pad, int64_t k_pad,
                           uintptr_t out, int64_t ldo, int nt) {
    const PackedSp24 w = packed_sp24(packed, n, k, n_pad, k_pad, "dequant_sp24");
    dequant_into("dequant_sp24", out, ldo, k, nt,
                 [&](float* o, int t) { dequant_sp24(w, o, ldo, t); });
  });

  bind_decode(m);
}
