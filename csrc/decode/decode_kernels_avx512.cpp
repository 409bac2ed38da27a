// decode_kernels_impl.h compiled with this file's AVX-512 flags (see CMakeLists.txt).
#define DECODE_KERNELS_NAME decode_kernels_avx512
#include "decode/decode_kernels_impl.h"
