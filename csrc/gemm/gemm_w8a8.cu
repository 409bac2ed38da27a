// gemm_w8a8 on CUDA: int8 activations (quantized per token) × int8 per-channel weights on the
// int8 tensor cores, both scales applied in the fp32 epilogue (see gemm_cuda.h).
//
// Large M: a classic tiled GEMM. Block tile 128 (x rows) × 128 (weight rows) × 64 (K), 8 warps
// as 2 × 4, each 64 × 32 (4 × 4 m16n8k32 MMAs per 32 columns), a 4-stage cp.async pipeline.
// The weight layout is already in fragment order, so a stage copies whole 512-byte
// (tile, chunk) blocks and each lane reads its B fragments as one 16-byte word; the x tile keeps
// rows 96 bytes apart so the 8-byte A-fragment loads of a half-warp hit 32 different banks.
// On sm_90a, gemm_w8a8_wgmma (gemm_w8a8_wgmma.cuh, the Python op's choice above M = 32) is the
// warpgroup-MMA version of this product.
#include "cuda/cuda_common.cuh"
#include "gemm/gemm_cuda.h"
#include "gemm/gemm_cuda_checks.h"
#include "gemm/gemm_swapab.cuh"
#include "gemm/gemm_w8a8_wgmma.cuh"
#include "gemm/gemm_wgmma_launch.cuh"

namespace llmaccel::cuda {
namespace {

constexpr int kBM = 128, kBN = 128, kStages = 4;
constexpr int kXRow = 96;                      // bytes per x row in shared memory (64 used)
constexpr int kXStage = kBM * kXRow;           // 12 KB
constexpr int kWStage = (kBN / 16) * 2 * 512;  // 8 tiles × 2 chunks × 512 B = 8 KB
constexpr int kStageBytes = kXStage + kWStage;
constexpr int kSmemBytes = kStages * kStageBytes;

struct TiledParams {
  const int8_t* xq;
  const float* xscale;
  const uint8_t* w;  // bytes of the int8_cuda_mma16x32 layout
  const float* scales;
  const float* bias;
  void* out;
  int64_t ldx, ldo;
  int m, n, n_tiles, nk;
};

__device__ __forceinline__ void load_stage(const TiledParams& p, uint8_t* stage, int kt, int bm,
                                           int bn, int tid) {
  uint8_t* xs = stage;
  uint8_t* ws = stage + kXStage;
#pragma unroll
  for (int i = 0; i < 2; ++i) {  // x: 128 rows × 4 pieces of 16 B
    const int id = tid + i * 256, row = id >> 2, part = id & 3;
    const int grow = bm * kBM + row, chunk = kt * 2 + (part >> 1);
    const bool ok = grow < p.m && chunk < p.nk;
    const int8_t* src = ok ? p.xq + int64_t(grow) * p.ldx + kt * 64 + part * 16 : p.xq;
    cp_async16(xs + row * kXRow + part * 16, src, ok ? 16 : 0);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {  // w: 8 tiles × 2 chunks × 32 pieces of 16 B
    const int id = tid + i * 256, tile = id >> 6, half = (id >> 5) & 1, piece = id & 31;
    const int gtile = bn * (kBN / 16) + tile, chunk = kt * 2 + half;
    const bool ok = gtile < p.n_tiles && chunk < p.nk;
    const uint8_t* src = ok ? p.w + (int64_t(gtile) * p.nk + chunk) * 512 + piece * 16 : p.w;
    cp_async16(ws + (tile * 2 + half) * 512 + piece * 16, src, ok ? 16 : 0);
  }
}

template <class T>
__global__ void __launch_bounds__(256) gemm_w8a8_tiled_kernel(const TiledParams p) {
  extern __shared__ __align__(16) uint8_t smem[];
  using A = Act16<T>;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int r = lane >> 2, j = lane & 3;
  const int wm = warp >> 2, wn = warp & 3;  // 2 × 4 warps: 64 x rows × 32 weight rows each
  const int bn = blockIdx.x, bm = blockIdx.y;
  const int kt_count = (p.nk + 1) / 2;

  int acc[4][4][4];
#pragma unroll
  for (int a = 0; a < 4; ++a)
#pragma unroll
    for (int b = 0; b < 4; ++b)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[a][b][i] = 0;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < kt_count) load_stage(p, smem + s * kStageBytes, s, bm, bn, tid);
    cp_async_commit();
  }
  for (int kt = 0; kt < kt_count; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage kt landed for every thread; stage kt-1 is free to refill
    const int next = kt + kStages - 1;
    if (next < kt_count) load_stage(p, smem + (next % kStages) * kStageBytes, next, bm, bn, tid);
    cp_async_commit();

    const uint8_t* xs = smem + (kt % kStages) * kStageBytes;
    const uint8_t* ws = xs + kXStage;
#pragma unroll
    for (int ch = 0; ch < 2; ++ch) {
      uint32_t af[4][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int row = wm * 64 + mi * 16 + r;
        const uint2 lo = *reinterpret_cast<const uint2*>(xs + row * kXRow + ch * 32 + j * 8);
        const uint2 hi = *reinterpret_cast<const uint2*>(xs + (row + 8) * kXRow + ch * 32 + j * 8);
        af[mi][0] = lo.x; af[mi][1] = hi.x; af[mi][2] = lo.y; af[mi][3] = hi.y;
      }
#pragma unroll
      for (int ti = 0; ti < 2; ++ti) {
        const uint4 b = *reinterpret_cast<const uint4*>(ws + ((wn * 2 + ti) * 2 + ch) * 512 + lane * 16);
#pragma unroll
        for (int mi = 0; mi < 4; ++mi) {
          mma_16832_s8(acc[mi][ti * 2 + 0], af[mi], b.x, b.z);  // weight rows 0-7 of the tile
          mma_16832_s8(acc[mi][ti * 2 + 1], af[mi], b.y, b.w);  // rows 8-15
        }
      }
    }
  }
  cp_async_wait<0>();

  T* out = static_cast<T*>(p.out);
  const bool pairs = (p.ldo % 2) == 0;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = bm * kBM + wm * 64 + mi * 16 + r + 8 * h;
      if (m >= p.m) continue;
      const float sx = __ldg(p.xscale + m);
#pragma unroll
      for (int nj = 0; nj < 4; ++nj) {
        const int n = bn * kBN + wn * 32 + nj * 8 + 2 * j;
        if (n >= p.n) continue;
        float v[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int ne = min(n + e, p.n - 1);
          // one explicit fma, as the wgmma kernel's epilogue: the same bits from either
          v[e] = fmaf(float(acc[mi][nj][2 * h + e]), sx * __ldg(p.scales + ne),
                      p.bias ? __ldg(p.bias + ne) : 0.f);
        }
        T* dst = out + int64_t(m) * p.ldo + n;
        if (pairs && n + 1 < p.n) {
          *reinterpret_cast<uint32_t*>(dst) = A::pack2(v[0], v[1]);
        } else {
          dst[0] = A::from_float(v[0]);
          if (n + 1 < p.n) dst[1] = A::from_float(v[1]);
        }
      }
    }
  }
}

template <class T> void launch_w8a8_wgmma(const WgmmaParams& p, cudaStream_t stream) {
  wgmma_with_rows<kW8WgMinRows>(p, [&](auto n) {
    constexpr int kN = decltype(n)::value;
    if constexpr (kN == 256) {
      if (wgmma_w8a8_deep()) {
        constexpr int kR = kW8WgDeepRows;
        return wgmma_launch<W8WgCfg<kN, kR>, T, true, int, gemm_w8a8_wgmma_kernel<T, kN, kR>>(
            p, stream);
      }
    }
    wgmma_launch<W8WgCfg<kN>, T, true, int, gemm_w8a8_wgmma_kernel<T, kN>>(p, stream);
  });
}

template <class T> void launch_tiled(const TiledParams& p, cudaStream_t stream) {
  auto kernel = gemm_w8a8_tiled_kernel<T>;
  // Above 48 KB of dynamic shared memory a kernel must opt in (per device; cheap to repeat).
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  const dim3 grid((p.n_tiles * 16 + kBN - 1) / kBN, (p.m + kBM - 1) / kBM);
  kernel<<<grid, 256, kSmemBytes, stream>>>(p);
}

}  // namespace

void gemm_w8a8(const int8_t* xq, int64_t m, int64_t ldx, const float* xscale, const uint32_t* w,
               int64_t n_tiles, int64_t nk, const float* scales, int64_t n, const float* bias,
               void* out, int out_dtype, int64_t ldo, void* stream) {
  const char* op = "gemm_w8a8";
  check_gemm_sizes(op, m, nk * 32, ldx, n, n_tiles, nk, ldo, xq, w, out);
  require(ldx % 16 == 0, op, "ldx must be a multiple of 16 bytes");
  require(scales && xscale, op, "null scales");
  require(out_dtype == kF16 || out_dtype == kBF16, op, "out must be float16 or bfloat16");
  auto s = static_cast<cudaStream_t>(stream);
  if (m <= kSwapAbMaxM) {
    SwapAbParams p{xq, xscale, w, scales, nullptr, bias, out, ldx, ldo, int(m), int(n),
                   int(nk * 32), int(n_tiles), int(nk), 32, 1};
    if (out_dtype == kF16) launch_swapab<Wo::W8A8, __half, false>(p, s);
    else launch_swapab<Wo::W8A8, __nv_bfloat16, false>(p, s);
  } else {
    TiledParams p{xq, xscale, reinterpret_cast<const uint8_t*>(w), scales, bias, out, ldx, ldo,
                  int(m), int(n), int(n_tiles), int(nk)};
    if (out_dtype == kF16) launch_tiled<__half>(p, s);
    else launch_tiled<__nv_bfloat16>(p, s);
  }
  check_launch(op);
}

bool w8a8_wgmma_available() {
  static signed char cache[64] = {};
  return wgmma_built_for_device(gemm_w8a8_wgmma_kernel<__nv_bfloat16, 256>, cache);
}

int64_t w8a8_wgmma_partial_bytes(int64_t m, int64_t n_tiles, int64_t nk) {
  return wgmma_partial_bytes(
      wgmma_plan(m, n_tiles, nk, kW8WgChunks, kW8WgMinRows, W8WgCfg<64>::kWStage));
}

void gemm_w8a8_wgmma(const int8_t* xt, int64_t m, int64_t kt_count, const float* xscale,
                     const uint32_t* w, int64_t n_tiles, int64_t nk, const float* scales,
                     int64_t n, const float* bias, void* out, int out_dtype, int64_t ldo,
                     void* partial, int64_t partial_bytes, bool after_image, void* stream) {
  const char* op = "gemm_w8a8 (wgmma)";
  wgmma_check_common(op, m, n, n_tiles, nk, ldo, xt, w, out);
  require(kt_count == (nk + 3) / 4, op, "kt_count must be ceil(nk / 4): x tiles of 128 columns");
  require(scales && xscale, op, "null scales");
  require(out_dtype == kF16 || out_dtype == kBF16, op, "out must be float16 or bfloat16");
  require(w8a8_wgmma_available(), op,
          "needs a compute capability 9.0 device and a build with sm_90a code");
  WgmmaParams p = wgmma_plan(m, n_tiles, nk, kW8WgChunks, kW8WgMinRows, W8WgCfg<64>::kWStage);
  wgmma_bind(op, p, out, n, ldo, partial, partial_bytes);
  wgmma_bind_operands(p, xt, after_image, w, scales, bias);
  p.xscale = xscale;
  auto s = static_cast<cudaStream_t>(stream);
  if (out_dtype == kF16) launch_w8a8_wgmma<__half>(p, s);
  else launch_w8a8_wgmma<__nv_bfloat16>(p, s);
  check_launch(op);
}

}  // namespace llmaccel::cuda
