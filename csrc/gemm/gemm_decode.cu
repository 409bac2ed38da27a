// Host side of the decode kernel's workspace (gemm_decode.cuh): how much one call needs.
#include <algorithm>

#include "gemm/gemm_cuda.h"
#include "gemm/gemm_decode.cuh"
#include "gemm/gemm_decode_kslice_launch.cuh"
#include "gemm/gemm_tiled_w4.cuh"

namespace llmaccel::cuda {

void decode_workspace(int64_t m, int64_t n_tiles, int64_t nk, int64_t chunks_per_group,
                      int64_t* n_counters, int64_t* partial_bytes) {
  const char* op = "decode_workspace";
  require(m >= 1, op, "m must be >= 1");
  require(n_tiles >= 1 && nk >= 1, op, "the weight must have at least one tile and chunk");
  require(n_tiles * nk < (int64_t(1) << 31), op, "too many weight chunks");
  const int sms = current_device_sms();
  require(sms > 0, op, "no CUDA device");
  if (m > kDecodeMaxM) {  // the opt-in tiled kernel's split partial sums, or nothing
    *n_counters = 0;
    *partial_bytes = m <= tiled_max_m()
                         ? tiled_partial_bytes(m, n_tiles, tiled_splits(m, n_tiles, nk, sms))
                         : 0;
    return;
  }
  const DecodeShape sh = decode_shape(nk, chunks_per_group);
  const DecodeSplit sp = plan_decode(n_tiles, nk, sh.u, sms);
  // Room for either decode kernel (decode_use_kslice may pick either per call); the K-slice
  // kernel has at most n_tiles ranges.
  *n_counters = n_tiles;
  *partial_bytes = std::max(decode_partial_bytes(sp, m, n_tiles),
                            kslice_partial_bytes_bound(m, n_tiles, nk));
}

const char* decode_kernel(int64_t chunks_per_group) {
  require(chunks_per_group >= 1, "decode_kernel", "chunks_per_group (group / 32) must be >= 1");
  SwapAbParams aligned{};  // null pointers count as aligned
  return decode_use_kslice(aligned, chunks_per_group) ? "kslice" : "stream";
}

}  // namespace llmaccel::cuda
