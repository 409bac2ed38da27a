// The CUDA entry points of llmaccel._C (compiled only with LLMACCEL_WITH_CUDA). Device buffers
// arrive as raw addresses and the stream as its cudaStream_t value (torch's
// current_stream().cuda_stream); the launchers in gemm/gemm_cuda.h check sizes and alignment and
// throw std::invalid_argument (→ ValueError) before anything is launched.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "gemm/gemm_cuda.h"

namespace py = pybind11;

namespace llmaccel {

namespace {
template <class T> T* as(uintptr_t p) { return reinterpret_cast<T*>(p); }
void* stream_of(uintptr_t s) { return reinterpret_cast<void*>(s); }
cuda::DecodeWorkspace workspace(uintptr_t counters, int64_t n_counters, uintptr_t partials,
                                int64_t partial_bytes) {
  return {as<int>(counters), n_counters, as<void>(partials), partial_bytes};
}
}  // namespace

void bind_cuda(py::module_& m) {
  m.def("cuda_gemm_w4a16",
        [](uintptr_t x, int dt, int64_t m_, int64_t k, int64_t ldx, uintptr_t w, int64_t n_tiles,
           int64_t nk, uintptr_t scales, uintptr_t zeros, int64_t n_groups, int64_t group,
           int64_t n, uintptr_t bias, uintptr_t out, int64_t ldo, uintptr_t counters,
           int64_t n_counters, uintptr_t partials, int64_t partial_bytes, uintptr_t stream) {
          cuda::gemm_w4a16(as<const void>(x), dt, m_, k, ldx, as<const uint32_t>(w), n_tiles, nk,
                           as<const float>(scales), as<const uint8_t>(zeros), n_groups, group, n,
                           as<const float>(bias), as<void>(out), ldo,
                           workspace(counters, n_counters, partials, partial_bytes),
                           stream_of(stream));
        });
  m.def("cuda_gemm_w8a16",
        [](uintptr_t x, int dt, int64_t m_, int64_t k, int64_t ldx, uintptr_t w, int64_t n_tiles,
           int64_t nk, uintptr_t scales, int64_t n, uintptr_t bias, uintptr_t out, int64_t ldo,
           uintptr_t stream) {
          cuda::gemm_w8a16(as<const void>(x), dt, m_, k, ldx, as<const uint32_t>(w), n_tiles, nk,
                           as<const float>(scales), n, as<const float>(bias), as<void>(out), ldo,
                           stream_of(stream));
        });
  m.def("cuda_gemm_w8a8",
        [](uintptr_t xq, int64_t m_, int64_t ldx, uintptr_t xscale, uintptr_t w, int64_t n_tiles,
           int64_t nk, uintptr_t scales, int64_t n, uintptr_t bias, uintptr_t out, int out_dt,
           int64_t ldo, uintptr_t stream) {
          cuda::gemm_w8a8(as<const int8_t>(xq), m_, ldx, as<const float>(xscale),
                          as<const uint32_t>(w), n_tiles, nk, as<const float>(scales), n,
                          as<const float>(bias), as<void>(out), out_dt, ldo, stream_of(stream));
        });
  // The sm_90a wgmma paths (the ops' defaults over ops.cuda.WGMMA_M): x quantized (w8a8) or
  // copied (16-bit) into the kernel's swizzled image, then the wgmma GEMM.
  m.def("cuda_w8a8_wgmma_available", [] { return cuda::w8a8_wgmma_available(); });
  // Bytes of the partial sums a wgmma call of these sizes needs on the current device (0: none).
  m.def("cuda_wgmma_partial_bytes", [](bool w4, int64_t m_, int64_t n_tiles, int64_t nk) {
    return w4 ? cuda::w4a16_wgmma_partial_bytes(m_, n_tiles, nk)
              : cuda::w8a8_wgmma_partial_bytes(m_, n_tiles, nk);
  });
  m.def("cuda_wgmma_plan", [](bool x16, int64_t m_, int64_t n_tiles, int64_t nk) {
    const cuda::WgmmaPlanInfo i = cuda::wgmma_plan_info(x16, m_, n_tiles, nk);
    py::dict d;
    d["x_rows"] = i.x_rows;
    d["splits"] = i.splits;
    d["cluster"] = i.cluster;
    d["partial_bytes"] = i.partial_bytes;
    d["w_warps"] = i.w_warps;
    d["x_warp"] = i.x_warp;
    d["x_pieces"] = i.x_pieces;
    d["x_tma"] = i.x_tma;
    return d;
  });
  m.def("cuda_gemm_w8a8_wgmma",
        [](uintptr_t xt, int64_t m_, int64_t kt_count, uintptr_t xscale, uintptr_t w,
           int64_t n_tiles, int64_t nk, uintptr_t scales, int64_t n, uintptr_t bias,
           uintptr_t out, int out_dt, int64_t ldo, uintptr_t partial, int64_t partial_bytes,
           bool after_image, uintptr_t stream) {
          cuda::gemm_w8a8_wgmma(as<const int8_t>(xt), m_, kt_count, as<const float>(xscale),
                                as<const uint32_t>(w), n_tiles, nk, as<const float>(scales), n,
                                as<const float>(bias), as<void>(out), out_dt, ldo,
                                as<void>(partial), partial_bytes, after_image, stream_of(stream));
        });
  m.def("cuda_quant_act_int8_tiles",
        [](uintptr_t x, int dt, int64_t m_, int64_t k, int64_t ldx, uintptr_t q,
           int64_t kt_count, uintptr_t scale, uintptr_t stream) {
          cuda::quant_act_int8_tiles(as<const void>(x), dt, m_, k, ldx, as<int8_t>(q), kt_count,
                                     as<float>(scale), stream_of(stream));
        });
  m.def("cuda_w4a16_wgmma_available", [] { return cuda::w4a16_wgmma_available(); });
  m.def("cuda_gemm_w4a16_wgmma",
        [](uintptr_t xt, int dt, int64_t m_, int64_t kt_count, uintptr_t w, int64_t n_tiles,
           int64_t nk, uintptr_t scales, uintptr_t zeros, int64_t n_groups, int64_t group,
           int64_t n, uintptr_t bias, uintptr_t out, int64_t ldo, uintptr_t partial,
           int64_t partial_bytes, bool after_image, uintptr_t stream) {
          cuda::gemm_w4a16_wgmma(as<const int8_t>(xt), dt, m_, kt_count, as<const uint32_t>(w),
                                 n_tiles, nk, as<const float>(scales), as<const uint8_t>(zeros),
                                 n_groups, group, n, as<const float>(bias), as<void>(out), ldo,
                                 as<void>(partial), partial_bytes, after_image,
                                 stream_of(stream));
        });
  m.def("cuda_w8a16_wgmma_available", [] { return cuda::w8a16_wgmma_available(); });
  m.def("cuda_gemm_w8a16_wgmma",
        [](uintptr_t xt, int dt, int64_t m_, int64_t kt_count, uintptr_t w, int64_t n_tiles,
           int64_t nk, uintptr_t scales, int64_t n, uintptr_t bias, uintptr_t out, int64_t ldo,
           uintptr_t partial, int64_t partial_bytes, bool after_image, uintptr_t stream) {
          cuda::gemm_w8a16_wgmma(as<const int8_t>(xt), dt, m_, kt_count, as<const uint32_t>(w),
                                 n_tiles, nk, as<const float>(scales), n, as<const float>(bias),
                                 as<void>(out), ldo, as<void>(partial), partial_bytes,
                                 after_image, stream_of(stream));
        });
  m.def("cuda_x_tiles_16bit", [](uintptr_t x, int64_t m_, int64_t k, int64_t ldx, uintptr_t xt,
                                 int64_t kt_count, uintptr_t stream) {
    cuda::x_tiles_16bit(as<const void>(x), m_, k, ldx, as<int8_t>(xt), kt_count,
                        stream_of(stream));
  });
  // The images' geometry: blocks of 256 rows × 128 bytes (128 int8 or 64 16-bit columns).
  m.attr("cuda_wgmma_x_rows") = 256;
  m.def("cuda_quant_act_int8",
        [](uintptr_t x, int dt, int64_t m_, int64_t k, int64_t ldx, int64_t block,
           int64_t n_blocks, uintptr_t q, int64_t ldq, uintptr_t scale, uintptr_t qsum,
           uintptr_t stream) {
          cuda::quant_act_int8(as<const void>(x), dt, m_, k, ldx, block, n_blocks, as<int8_t>(q),
                               ldq, as<float>(scale), as<int32_t>(qsum), stream_of(stream));
        });
  m.def("cuda_dequant_w4",
        [](uintptr_t w, int64_t n_tiles, int64_t nk, uintptr_t scales, uintptr_t zeros,
           int64_t n_groups, int64_t group, int64_t n, int64_t k, uintptr_t out, int out_dt,
           int64_t ldo, uintptr_t stream) {
          cuda::dequant_w4(as<const uint32_t>(w), n_tiles, nk, as<const float>(scales),
                           as<const uint8_t>(zeros), n_groups, group, n, k, as<void>(out), out_dt,
                           ldo, stream_of(stream));
        });
  m.def("cuda_dequant_w8",
        [](uintptr_t w, int64_t n_tiles, int64_t nk, uintptr_t scales, int64_t n, int64_t k,
           uintptr_t out, int out_dt, int64_t ldo, uintptr_t stream) {
          cuda::dequant_w8(as<const uint32_t>(w), n_tiles, nk, as<const float>(scales), n, k,
                           as<void>(out), out_dt, ldo, stream_of(stream));
        });
  // (n_counters, partial_bytes) for a gemm_w4a16 call on the current device (cpg: int4 group /
  // 32): at m ≤ cuda_decode_max_m the decode kernels' (the op keeps one zeroed counter array
  // per stream and grows it as needed); above, the opt-in tiled kernel's partial sums or zeros.
  m.def("cuda_decode_workspace", [](int64_t m_, int64_t n_tiles, int64_t nk, int64_t cpg) {
    int64_t n_counters = 0, partial_bytes = 0;
    cuda::decode_workspace(m_, n_tiles, nk, cpg, &n_counters, &partial_bytes);
    return py::make_tuple(n_counters, partial_bytes);
  });
  m.def("cuda_decode_kernel", [](int64_t cpg) { return std::string(cuda::decode_kernel(cpg)); });
  m.attr("cuda_swapab_max_m") = cuda::kSwapAbMaxM;
  m.attr("cuda_decode_max_m") = cuda::kDecodeMaxM;
}

}  // namespace llmaccel
