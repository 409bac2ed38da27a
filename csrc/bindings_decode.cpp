// llmaccel._C's decode-step entry points: the whole-model step (decode/llama_decode.h) and the
// per-call kernel clock over its projections (time_linears). Python keeps every buffer alive.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bindings_checks.h"
#include "decode/llama_decode.h"
#include "gemm/gemm_w8a8.h"

namespace py = pybind11;

namespace llmaccel {
namespace {

using namespace bind;

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
    case static_cast<int>(LinearKind::W4A8_SP24):
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

void bind_decode(py::module_& m) {
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

  // The whole-model decode step.
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

}  // namespace llmaccel
