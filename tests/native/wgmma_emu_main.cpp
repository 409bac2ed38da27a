// Runs kernels' own source on the host through the SIMT emulator (csrc/emu/simt_emu.h) for
// tests/ops/test_wgmma_emu.py, which writes the inputs and checks the output.
//   wgmma_emu KIND DIR
// KIND: w8a8 | w8a16 | w4a16 | xtiles16 | quant_tiles (the wgmma paths) | plan (their launchers' plan,
// printed, nothing run) | tiled_w4 (gemm_tiled_w4.cuh) |
// quant_rows (quant_act_int8's default mode) | kslice (gemm_decode_kslice.cuh, the decode kernel
// on sm_90, optionally its opt-in cluster reduction).
// DIR holds
// params.txt (whitespace-separated integers, below) and the raw arrays the kernel reads; the
// result is written to DIR/out.bin.
//   w8a8:  m n n_tiles nk kt_count out_is_bf16 has_bias sms — xt.bin w.bin scales.bin xscale.bin
//   w8a16: m n n_tiles nk kt_count x_is_bf16 has_bias sms — xt.bin (x_tiles_16bit's image)
//          w.bin scales.bin
//   w4a16: m n n_tiles nk kt_count x_is_bf16 has_bias group n_groups has_zeros sms
//          — xt.bin w.bin scales.bin [zeros.bin]
//   (sms: the x block size follows the launchers' rule for a GPU with that many SMs)
//   plan: m n_tiles nk chunks_per_stage min_rows sms — prints x_rows, splits, kts, blocks
//   cvt8: (no parameters) gemm_w8a16_wgmma's int8 → 16-bit conversion of every byte value
//   xtiles16: m k ldx kt_count — x.bin
//   quant_tiles: m k ldx kt_count x_dtype (0 fp16, 1 bf16, 2 fp32) — x.bin; also writes
//          DIR/scale_out.bin
//   quant_rows: m k ldx block x_dtype — x.bin; also writes DIR/scale_out.bin, DIR/qsum_out.bin
//   kslice: m n k n_tiles nk x_is_bf16 has_bias group n_groups has_zeros sms cluster [pass]
//          — x.bin w.bin scales.bin [zeros.bin] (the g128-and-coarser configurations); pass > 0
//          (a multiple of the configuration's ring slots) caps the plan's tiles per pass (the
//          emulator's shared memory is always an H100's most, so only this reaches the passes
//          of a plan that fits in one)
//   ksplan: m n_tiles nk sms minb nb has_zeros — prints the K-slice plan (kchunks, ranges, tpb,
//          pass) and its shared memory per block against what minb blocks per SM leave
//   race_probe: variant — in.bin (race_probe_kernel.h; for the race detector's own test)
//   tiled_w4: m n k n_tiles nk x_is_bf16 has_bias group n_groups has_zeros sms
//          — x.bin (m × k, k a multiple of 8) w.bin scales.bin [zeros.bin]; sms sets the
//          K split as on a GPU with that many SMs
// bias.bin when has_bias.
// Built with -DLLMACCEL_KERNEL_TRACE (tests/ops/test_kernel_trace.py), every kernel it runs
// records its trace (csrc/cuda/kernel_trace.cuh) for DIR/trace.txt's "blocks stages" into
// DIR/trace.bin.
#include "emu/simt_emu.h"

#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "gemm/gemm_decode_kslice.cuh"
#include "gemm/gemm_tiled_w4.cuh"
#include "gemm/gemm_w4a16_wgmma.cuh"
#include "gemm/gemm_w8a16_wgmma.cuh"
#include "gemm/gemm_w8a8_wgmma.cuh"
#include "gemm/gemm_wgmma_plan.h"
#include "quant/quant_act_int8.cuh"
#include "race_probe_kernel.h"

namespace cu = llmaccel::cuda;
namespace emu = llmaccel::emu;

static std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) emu::fail(("cannot read " + path).c_str());
  std::vector<uint8_t> v((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  v.resize(v.size() + 64);  // slack: no kernel reads past its array, but alignment padding below
  return v;
}
// A 16-byte-aligned copy (bulk copies and 16-byte loads need it).
static uint8_t* aligned_copy(const std::vector<uint8_t>& v) {
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, (v.size() + 63) / 64 * 64));
  std::memcpy(p, v.data(), v.size());
  return p;
}

// quant_act_int8_kernel<T, kTiles, vec> for x's dtype (0 fp16, 1 bf16, 2 fp32), the vector
// path where the launcher would take it (printed for the test): the same choice as
// quant_act_int8.cu's.
template <bool kTiles>
static void run_quant(int64_t dt, dim3 grid, const void* x, int64_t m, int64_t k, int64_t ldx,
                      int64_t block, int64_t n_blocks, int8_t* q, int64_t ldq, float* scale,
                      int32_t* qsum) {
  const auto run = [&](auto t) {
    using T = decltype(t);
    const auto go = [&](auto vec) {
      emu::launch(cu::quant_act_int8_kernel<T, kTiles, decltype(vec)::value>, grid,
                  unsigned(cu::kQuantThreads), static_cast<const T*>(x), m, k, ldx, block,
                  n_blocks, q, ldq, scale, qsum);
    };
    const bool vec = cu::quant_vec_ok(x, int(sizeof(T)), k, ldx, block, q, ldq, kTiles);
    std::printf("vec %d\n", int(vec));
    if (vec) go(std::true_type());
    else go(std::false_type());
  };
  if (dt == 0) run(__half());
  else if (dt == 1) run(__nv_bfloat16());
  else run(float());
}

#if defined(LLMACCEL_KERNEL_TRACE)
// The trace sink for the whole run, written out when main returns.
struct TraceFile {
  std::vector<unsigned long long> buf;
  std::string path;
  explicit TraceFile(const std::string& dir) : path(dir + "/trace.bin") {
    std::ifstream f(dir + "/trace.txt");
    int blocks = 0, stages = 0;
    if (!(f >> blocks >> stages)) emu::fail("the trace build needs DIR/trace.txt: blocks stages");
    buf.assign(size_t(blocks) * (cu::kTrHeadWords + size_t(stages) * cu::kTrStageWords), 0);
    cu::trace_sink = {buf.data(), blocks, stages};
  }
  ~TraceFile() {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size() * 8));
  }
};
#endif

int main(int argc, char** argv) {
  if (argc != 3) emu::fail("usage: wgmma_emu KIND DIR");
  const std::string kind = argv[1], dir = argv[2];
#if defined(LLMACCEL_KERNEL_TRACE)
  const TraceFile trace(dir);
#endif
  std::ifstream pf(dir + "/params.txt");
  std::vector<int64_t> a((std::istream_iterator<int64_t>(pf)), std::istream_iterator<int64_t>());
  const auto file = [&](const char* name) { return aligned_copy(read_file(dir + "/" + name)); };
  const std::string out_path = dir + "/out.bin";
  const auto write = [&](const void* data, size_t bytes) {
    std::ofstream(out_path, std::ios::binary)
        .write(static_cast<const char*>(data), std::streamsize(bytes));
  };
  // The int4 kinds' SwapAbParams: m n k n_tiles nk x_is_bf16 has_bias group n_groups has_zeros
  // (x rows of k elements, k a multiple of 8; out rows of n).
  const auto int4_params = [&](void* out) {
    return cu::SwapAbParams{file("x.bin"), nullptr,
                            reinterpret_cast<const uint32_t*>(file("w.bin")),
                            reinterpret_cast<const float*>(file("scales.bin")),
                            a[9] ? file("zeros.bin") : nullptr,
                            a[6] ? reinterpret_cast<const float*>(file("bias.bin")) : nullptr, out,
                            a[2], a[1], int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]),
                            int(a[7]), int(a[8])};
  };
  if (kind == "cvt8") {  // int8x4_to_16bit over every byte value: 64 words → 128 pairs per type
    std::vector<uint32_t> pairs;
    for (uint32_t i = 0; i < 64; ++i) {
      const uint32_t word = (4 * i) | (4 * i + 1) << 8 | (4 * i + 2) << 16 | (4 * i + 3) << 24;
      uint32_t lo, hi;
      cu::int8x4_to_16bit<__half>(word, lo, hi);
      pairs.push_back(lo), pairs.push_back(hi);
      cu::int8x4_to_16bit<__nv_bfloat16>(word, lo, hi);
      pairs.push_back(lo), pairs.push_back(hi);
    }
    write(pairs.data(), pairs.size() * 4);
    return 0;
  }
  if (kind == "plan") {  // the launchers' plan only: x rows per block, K split, blocks
    cu::WgmmaParams p{};
    p.m = int(a[0]);
    p.n_tiles = int(a[1]);
    p.nk = int(a[2]);
    const int chunks = int(a[3]), min_rows = int(a[4]), sms = int(a[5]);
    p.kt_count = (p.nk + chunks - 1) / chunks;
    // chunks per stage: 2 for int4 weights (gemm_w4a16's stages), 4 for gemm_w8a8's
    const int w_stage = chunks == 2 ? cu::W4WgCfg<16>::kWStage : cu::W8WgCfg<64>::kWStage;
    cu::wgmma_grid(p, cu::wgmma_x_rows(p.m, p.n_tiles, sms, min_rows), sms, w_stage);
    std::printf("x_rows %d splits %d kts %d blocks %d cluster %d w_warps %d x_warp %d "
                "x_pieces %d\n", p.x_rows, p.splits, p.kts, cu::wgmma_launch_blocks(p, sms),
                p.cluster, p.w_warps, int(p.x_warp), 1 << p.x_piece_shift);
    return 0;
  }
  if (kind == "xtiles16") {
    const int64_t m = a[0], k = a[1], ldx = a[2], kt = a[3];
    const int64_t rows = (m + 255) / 256 * 256, bytes = rows * kt * 128;
    auto* xt = static_cast<int8_t*>(std::aligned_alloc(64, size_t(bytes)));
    std::memset(xt, 0x5A, size_t(bytes));
    const auto* x = reinterpret_cast<const uint16_t*>(file("x.bin"));
    const int64_t threads = m * kt * 2;
    emu::launch(cu::x_tiles_16bit_kernel, dim3(unsigned((threads + 255) / 256)), 256u, x, m, k,
                ldx, xt, kt);
    write(xt, size_t(bytes));
    return 0;
  }
  if (kind == "quant_tiles") {
    const int64_t m = a[0], k = a[1], ldx = a[2], kt = a[3], dt = a[4];
    const int64_t rows = (m + 255) / 256 * 256, bytes = rows * kt * 128;
    std::vector<int8_t> q(size_t(bytes), int8_t(0x5A));
    std::vector<float> scale(size_t(m), -1.f);
    const void* x = file("x.bin");
    run_quant<true>(dt, dim3(unsigned(rows), 1), x, m, k, ldx, kt * 128, 1, q.data(), kt,
                    scale.data(), nullptr);
    std::ofstream(dir + "/scale_out.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(scale.data()), std::streamsize(m * 4));
    write(q.data(), q.size());
    return 0;
  }
  if (kind == "quant_rows") {  // the default (row-major) mode: per-block scales and sums
    const int64_t m = a[0], k = a[1], ldx = a[2], block = a[3], dt = a[4];
    const int64_t nb = (k + block - 1) / block, ldq = nb * block;
    auto* q = static_cast<int8_t*>(std::aligned_alloc(64, size_t((m * ldq + 63) / 64 * 64)));
    std::memset(q, 0x5A, size_t(m * ldq));
    std::vector<float> scale(size_t(m * nb), -1.f);
    std::vector<int32_t> qsum(size_t(m * nb), -1);
    const void* x = file("x.bin");
    run_quant<false>(dt, dim3(unsigned(m), unsigned(nb)), x, m, k, ldx, block, nb, q, ldq,
                     scale.data(), qsum.data());
    std::ofstream(dir + "/scale_out.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(scale.data()), std::streamsize(m * nb * 4));
    std::ofstream(dir + "/qsum_out.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(qsum.data()), std::streamsize(m * nb * 4));
    write(q, size_t(m * ldq));
    return 0;
  }
  if (kind == "ksplan") {  // plan_kslice for the g128-and-coarser rings (one group per slot)
    const int64_t m = a[0], n_tiles = a[1], nk = a[2];
    const int sms = int(a[3]), minb = int(a[4]), nb = int(a[5]);
    const int64_t slot = a[6] ? cu::ks_slot_bytes<1, true>() : cu::ks_slot_bytes<1, false>();
    const int64_t ring = cu::ks_ring_bytes(nb, slot);
    const cu::KsPlan plan = cu::plan_kslice(m, n_tiles, nk, sms, minb, ring, nb);
    std::printf("kchunks %d ranges %d tpb %d pass %d smem %lld limit %lld\n", plan.kchunks,
                plan.ranges, plan.tpb, plan.pass,
                static_cast<long long>(ring + cu::ks_red_bytes(plan.pass, plan.tpb, m)),
                static_cast<long long>(cu::kSmemPerSm / minb - cu::kSmemPerBlockReserved));
    return 0;
  }
  if (kind == "race_probe") {  // race_probe_kernel.h: variant — in.bin; out.bin: the sum
    const std::vector<uint8_t> in = read_file(dir + "/in.bin");
    if (in.size() < size_t(race_probe::kTiles * race_probe::kSlotBytes))
      emu::fail("race_probe: in.bin too short");
    uint32_t total = 0;
    emu::launch(race_probe::race_probe_kernel, dim3(1), unsigned((race_probe::kConsumers + 1) * 32),
                int(a.at(0)), static_cast<const uint8_t*>(aligned_copy(in)), &total);
    write(&total, 4);
    return 0;
  }
  if (kind == "kslice") {
    const int64_t m = a[0], n = a[1], n_tiles = a[3], nk = a[4];
    const bool bf16 = a[5] != 0, zp = a[9] != 0, cluster = a[11] != 0;
    const int sms = int(a[10]), cpg = int(a[7] / 32);
    if (cpg % cu::kKsUnits) emu::fail("kslice: the emulated configurations need g128 or coarser");
    std::vector<uint16_t> out(size_t(m * n), 0xFFFF);
    const cu::SwapAbParams p = int4_params(out.data());
    // launch_kslice_gu's choice for groups of whole slices (GU = 0)
    const auto run = [&](auto t, auto zc, auto mt, auto nb, auto minb) {
      using T = decltype(t);
      constexpr bool ZP = decltype(zc)::value;
      constexpr int MT = decltype(mt)::value, NB = decltype(nb)::value,
                    MINB = decltype(minb)::value;
      constexpr int64_t kRing = cu::ks_ring_bytes<1, ZP, NB>();
      cu::KsPlan plan = cu::plan_kslice(m, n_tiles, nk, sms, MINB, kRing, NB);
      plan.cluster = cluster && plan.kchunks > 1 && plan.kchunks <= 8;
      if (a.size() > 12 && a[12] > 0) {  // whole trips around the ring, as plan_kslice's
        if (a[12] % NB) emu::fail("kslice: pass must be a multiple of the ring's slots");
        plan.pass = int(std::min<int64_t>(a[12], plan.pass));
      }
      std::vector<int> counters(size_t(plan.ranges), 0);
      std::vector<float> partials(size_t(cu::kslice_partial_bytes(plan, m) / 4 + 1));
      plan.counters = counters.data();
      plan.partials = partials.data();
      const dim3 grid(unsigned(plan.ranges), unsigned(plan.kchunks));
      const unsigned threads = unsigned((cu::kKsWarps + 1) * 32);
      auto kernel = cu::gemm_decode_kslice_w4_kernel<T, ZP, MT, 0, NB, MINB>;
      if (plan.cluster) emu::launch_clusters(kernel, grid, dim3(1, plan.kchunks, 1), threads, p, plan, cpg);
      else emu::launch(kernel, grid, threads, p, plan, cpg);
      for (int c : counters)
        if (c) emu::fail("kslice: a tile counter was not left at zero");
      std::printf("kchunks %d ranges %d cluster %d tpb %d pass %d\n", plan.kchunks, plan.ranges,
                  plan.cluster, plan.tpb, plan.pass);
    };
    using I = std::integral_constant<int, 0>;
    const auto pick = [&](auto t) {
      using C1 = std::integral_constant<int, 1>;
      using C2 = std::integral_constant<int, 2>;
      using C3 = std::integral_constant<int, 3>;
      using C4 = std::integral_constant<int, 4>;
      using C6 = std::integral_constant<int, 6>;
      if (m > 8) {
        if (zp) run(t, std::true_type(), C2(), C4(), C2());
        else run(t, std::false_type(), C2(), C4(), C2());
      } else if (!zp) {
        run(t, std::false_type(), C1(), C3(), C4());
      } else if (m > 4) {
        run(t, std::true_type(), C1(), C4(), C3());
      } else {
        run(t, std::true_type(), C1(), C6(), C3());
      }
    };
    (void)I();
    if (bf16) pick(__nv_bfloat16());
    else pick(__half());
    write(out.data(), out.size() * 2);
    return 0;
  }
  if (kind == "tiled_w4") {
    const int64_t m = a[0], n = a[1], n_tiles = a[3], nk = a[4];
    const bool bf16 = a[5] != 0, zp = a[9] != 0;
    std::vector<uint16_t> out(size_t(m * n), 0xFFFF);
    const cu::SwapAbParams p = int4_params(out.data());
    const int splits = cu::tiled_splits(m, n_tiles, nk, int(a[10]));
    const int cps = int((nk + splits - 1) / splits);
    std::vector<float> partial(size_t(splits > 1 ? splits * m * n_tiles * 16 : 1));
    float* part = splits > 1 ? partial.data() : nullptr;
    const dim3 grid(unsigned((n_tiles + cu::kTiledWarps - 1) / cu::kTiledWarps),
                    unsigned((m + cu::kTiledRows - 1) / cu::kTiledRows), unsigned(splits));
    const auto run = [&](auto t, auto z) {
      using T = decltype(t);
      emu::launch(cu::gemm_tiled_w4_kernel<T, decltype(z)::value>, grid,
                  unsigned(cu::kTiledWarps * 32), p, part, cps);
      if (splits > 1) emu::launch(cu::gemm_tiled_w4_reduce<T>, dim3(4), 64u, p, part, splits);
    };
    if (bf16 && zp) run(__nv_bfloat16(), std::true_type());
    else if (bf16) run(__nv_bfloat16(), std::false_type());
    else if (zp) run(__half(), std::true_type());
    else run(__half(), std::false_type());
    std::printf("splits %d\n", splits);
    write(out.data(), out.size() * 2);
    return 0;
  }
  cu::WgmmaParams p{};
  p.m = int(a[0]); p.n = int(a[1]); p.n_tiles = int(a[2]); p.nk = int(a[3]);
  p.kt_count = int(a[4]);
  const bool bf16 = a[5] != 0, has_bias = a[6] != 0;
  p.xt = reinterpret_cast<const int8_t*>(file("xt.bin"));
  p.w = file("w.bin");
  p.scales = reinterpret_cast<const float*>(file("scales.bin"));
  p.bias = has_bias ? reinterpret_cast<const float*>(file("bias.bin")) : nullptr;
  p.ldo = p.n;
  const size_t out_elems = size_t(p.m) * size_t(p.n);
  std::vector<uint16_t> out(out_elems, 0xFFFF);  // NaN in both 16-bit types: unwritten shows
  p.out = out.data();
  // x rows per block, K split and blocks launched by the launchers' rules for a GPU of `sms` SMs
  // (the last parameter; a small one makes each block loop over several work items, a large
  // one splits K), or LLMACCEL_WGMMA_N / _SPLITS / _PERSISTENT.
  const int sms = int(a.back());
  const int min_rows = kind == "w8a8" ? cu::kW8WgMinRows : cu::kW4WgMinRows;
  const int w_stage = kind == "w8a8"    ? cu::W8WgCfg<64>::kWStage
                      : kind == "w8a16" ? cu::kW8A16WgWStage
                                        : cu::W4WgCfg<16>::kWStage;
  cu::wgmma_grid(p, cu::wgmma_x_rows(p.m, p.n_tiles, sms, min_rows), sms, w_stage);
  std::vector<uint8_t> partial(size_t(cu::wgmma_partial_bytes(p)) + 16);
  p.partial = partial.data();
  const dim3 grid(unsigned(cu::wgmma_launch_blocks(p, sms)));
  const unsigned threads = unsigned(cu::kWgThreads);
  // run(T(), ZP, N): the kernel instantiation for x's (or out's) type, zero points, x rows.
  const auto run = [&](auto t, auto zp, auto n) {
    using T = decltype(t);
    constexpr int kN = decltype(n)::value;
    const dim3 rgrid(4);  // the reduction, when K is split
    // a cluster launch runs a cluster's blocks together (multicast, remote arrivals)
    const auto go = [&](auto kernel) {
      if (p.cluster > 1) emu::launch_clusters(kernel, grid, dim3(unsigned(p.cluster)), threads, p);
      else emu::launch(kernel, grid, threads, p);
    };
    if (kind == "w8a8") {
      if constexpr (kN == 256) {
        if (cu::wgmma_w8a8_deep()) go(cu::gemm_w8a8_wgmma_kernel<T, kN, cu::kW8WgDeepRows>);
        else go(cu::gemm_w8a8_wgmma_kernel<T, kN>);
        if (p.splits > 1) emu::launch(cu::wgmma_reduce_kernel<T, true, int>, rgrid, 64u, p);
      } else if constexpr (kN >= cu::kW8WgMinRows) {
        go(cu::gemm_w8a8_wgmma_kernel<T, kN>);
        if (p.splits > 1) emu::launch(cu::wgmma_reduce_kernel<T, true, int>, rgrid, 64u, p);
      }
    } else if (kind == "w8a16") {
      go(cu::gemm_w8a16_wgmma_kernel<T, kN>);
      if (p.splits > 1) emu::launch(cu::wgmma_reduce_kernel<T, true, float>, rgrid, 64u, p);
    } else {
      go(cu::gemm_w4a16_wgmma_kernel<T, decltype(zp)::value, kN>);
      if (p.splits > 1) emu::launch(cu::wgmma_reduce_kernel<T, false, float>, rgrid, 64u, p);
    }
  };
  const auto run_n = [&](auto t, auto zp) {
    if (p.x_rows == 16) run(t, zp, std::integral_constant<int, 16>());
    else if (p.x_rows == 32) run(t, zp, std::integral_constant<int, 32>());
    else if (p.x_rows == 64) run(t, zp, std::integral_constant<int, 64>());
    else if (p.x_rows == 128) run(t, zp, std::integral_constant<int, 128>());
    else run(t, zp, std::integral_constant<int, 256>());
  };
  bool zp = false;
  if (kind == "w8a8") {
    p.xscale = reinterpret_cast<const float*>(file("xscale.bin"));
  } else if (kind == "w8a16") {
    p.xscale = nullptr;  // per-channel scales only
  } else if (kind == "w4a16") {
    cu::wgmma_set_groups(p, int(a[7]), int(a[8]));
    zp = a[9] != 0;
    p.zeros = zp ? file("zeros.bin") : nullptr;
  } else {
    emu::fail("unknown KIND");
  }
  if (bf16 && zp) run_n(__nv_bfloat16(), std::true_type());
  else if (bf16) run_n(__nv_bfloat16(), std::false_type());
  else if (zp) run_n(__half(), std::true_type());
  else run_n(__half(), std::false_type());
  std::printf("x_rows %d splits %d cluster %d w_warps %d x_warp %d x_pieces %d x_tma %d\n",
              p.x_rows, p.splits, p.cluster, p.w_warps, int(p.x_warp), 1 << p.x_piece_shift,
              int(p.x_tma));
  write(out.data(), out_elems * 2);
  return 0;
}
