#include "decode/decode_kernels.h"

#include "common/cpu_features.h"

#define DECODE_KERNELS_NAME decode_kernels_scalar
#include "decode/decode_kernels_impl.h"
#undef DECODE_KERNELS_NAME

namespace llmaccel {

const DecodeKernels& decode_kernels() {
#ifdef LLMACCEL_HAVE_AVX512
  if (cpu_isa_avx512()) return detail::decode_kernels_avx512;
#endif
  return detail::decode_kernels_scalar;
}

}  // namespace llmaccel
