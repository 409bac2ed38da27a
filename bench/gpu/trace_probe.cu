// Where one GEMM call's time goes, from inside the kernels: the library's own K-slice decode and
// wgmma kernels, compiled here with their trace points on (csrc/cuda/kernel_trace.cuh; the
// library's build has none), launched through the library's own launchers on made-up operands
// (timing does not depend on the values), each call after an L2 flush like bench_gpu's.
//
// Per case it writes OUT/trace_<case>.bin (the blocks' records) and OUT/trace_<case>.json (the
// case, the plan, CUDA-event times with the trace off and on, and two stamps: a one-thread kernel
// writes %globaltimer right before the call and right after it, so that the records place the
// launch, the first copies, the stream, the tail and the K reduction inside the call). It also
// measures the floors a call of that size runs against: an empty kernel, and a plain streaming
// read of the call's weight bytes, both after the same flush. bench/gpu/trace_report.py turns it
// all into tables.
//
// The questions it answers (bench/gpu/NOTES.md): the K-slice kernel's ~8 µs that do not scale
// with the bytes at M = 1 (launch, first copy, drain, K reduction?), and at every M on the
// wgmma kernels whether the consumers wait for data (the copies: "Who issues the copies") or the
// producer for slots (the consumers' dequantization and wgmma).
//   nvcc -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a -Icsrc bench/gpu/trace_probe.cu \
//        -o /tmp/trace_probe && /tmp/trace_probe OUT [case ...]
// The library's knobs (LLMACCEL_WGMMA_XCOPY, LLMACCEL_KS_REDUCE, ...) apply as in the library.
// -DLLMACCEL_PROBE_NO_TRACE builds the control: the same cases and timings with the kernels
// exactly as the library compiles them (no trace points), so that the trace points' own cost
// shows as the difference in event time.
#if !defined(LLMACCEL_PROBE_NO_TRACE)
#define LLMACCEL_KERNEL_TRACE 1
#endif
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gemm/gemm_decode_kslice_launch.cuh"
// the launchers' translation units themselves: the same host code as the library's
#include "gemm/gemm_w4a16_wgmma.cu"
#include "gemm/gemm_w8a16.cu"
#include "gemm/gemm_w8a16_wgmma.cu"
#include "gemm/gemm_w8a8.cu"

namespace cu = llmaccel::cuda;

// A failed CUDA call ends its case (main catches it and goes on unless the context is lost).
#define CHECK(call)                                                                      \
  do {                                                                                   \
    const cudaError_t e_ = (call);                                                       \
    if (e_ != cudaSuccess)                                                               \
      throw std::runtime_error(std::string(#call) + ": " + cudaGetErrorString(e_));      \
  } while (0)

#if defined(LLMACCEL_KERNEL_TRACE)
constexpr bool kTraced = true;
#else
constexpr bool kTraced = false;
#endif

constexpr int kBlocksCap = 2048;   // records on the device (blocks past it record nothing)
constexpr int kKsStages = cu::kKsMaxTiles;
constexpr int kWgStages = 256;     // a block's first 256 ring slots (4 tiles at K = 4096)
constexpr int64_t kFlushBytes = int64_t(256) << 20;  // 5× the H100's 50 MB L2
constexpr int kRepeats = 7;

__device__ __forceinline__ unsigned long long globaltimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__global__ void stamp_kernel(unsigned long long* dst) { dst[0] = globaltimer(); }
__global__ void empty_kernel() {}
// One thread: the SM clock against %globaltimer over ~200 µs (out[0] cycles, out[1] ns), and the
// smallest step %globaltimer is seen to take (out[2], ns): the trace's head times are only as
// fine as that step.
__global__ void clock_kernel(unsigned long long* out) {
  const unsigned long long c0 = clock64(), t0 = globaltimer();
  unsigned long long last = t0, step = ~0ull, t = t0;
  while (t - t0 < 200000) {
    t = globaltimer();
    if (t != last) {
      step = t - last < step ? t - last : step;
      last = t;
    }
  }
  out[0] = clock64() - c0;
  out[1] = t - t0;
  out[2] = step;
}
// Reads `words` 16-byte words once: the floor for streaming a call's weights, and the flush.
// L2-allocating loads of normal priority (ld.global.cg), as the kernels' bulk copies are: an
// evict-first load (__ldcs) would leave the previous call's lines in L2. Reading, not writing,
// so that no dirty line is written back inside a timed call.
__global__ void read_kernel(const uint4* src, int64_t words, unsigned* sink) {
  unsigned acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < words;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcg(src + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9E3779B9u) *sink = acc;  // keeps the loads
}
// Made-up operands: hashed bytes (weights, int8 x), 16-bit x of small finite values, scales.
__global__ void fill_bytes(uint8_t* dst, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = uint8_t((uint32_t(i) * 2654435761u + seed) >> 24);
}
__global__ void fill_16bit(uint16_t* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = uint16_t(0x3C00u | ((uint32_t(i) * 2654435761u) >> 27));  // bf16 ~0.008-0.016
}
__global__ void fill_float(float* dst, int64_t n, float v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = v;
}

struct Case {
  // kind: ks (gemm_w4a16's K-slice decode kernel), sw8 (gemm_w8a16's swapped kernel, its path at
  // M <= 16), w4a16 / w8a16 / w8a8 (the wgmma kernels)
  std::string name, kind;
  int m, k, n;
};

struct Probe {
  cudaStream_t s{};
  cudaEvent_t e0{}, e1{};
  unsigned long long *trace = nullptr, *stamps = nullptr;
  uint8_t* flush = nullptr;
  unsigned* sink = nullptr;
  int sms = 0;

  Probe() {
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    CHECK(cudaMalloc(&flush, kFlushBytes));
    CHECK(cudaMalloc(&sink, 4));
    CHECK(cudaMalloc(&stamps, 2 * sizeof(unsigned long long)));
    fill_bytes<<<1024, 256, 0, s>>>(flush, kFlushBytes, 7);
    sms = cu::current_device_sms();
  }
  // One streaming read of `bytes` (a multiple of 16) at `src`, on the probe's stream.
  void read(const void* src, int64_t bytes) {
    read_kernel<<<sms * 8, 512, 0, s>>>(static_cast<const uint4*>(src), bytes / 16, sink);
  }
  void flush_l2() { read(flush, kFlushBytes); }
  // The records' buffer, zeroed, and the kernels' sink pointed at it (on) or at nothing. The
  // flush that follows in the stream evicts the zeroed lines before the timed call.
  void set_sink(int stages, bool on) {
#if defined(LLMACCEL_KERNEL_TRACE)
    const size_t words = size_t(kBlocksCap) * (cu::kTrHeadWords + size_t(stages) * cu::kTrStageWords);
    if (on) {
      CHECK(cudaFree(trace));
      CHECK(cudaMalloc(&trace, words * 8));
      CHECK(cudaMemsetAsync(trace, 0, words * 8, s));
    }
    const cu::TraceSink sinkv{on ? trace : nullptr, kBlocksCap, stages};
    CHECK(cudaMemcpyToSymbolAsync(cu::trace_sink, &sinkv, sizeof(sinkv), 0,
                                  cudaMemcpyHostToDevice, s));
#else
    (void)stages, (void)on;
#endif
  }
  // Median event time (µs) of `call` after a flush (cold: false, after the call itself instead),
  // over kRepeats.
  template <class F> float timed(F&& call, bool cold = true, int repeats = kRepeats) {
    std::vector<float> t;
    for (int r = 0; r < repeats; ++r) {
      if (cold) flush_l2();
      else call();
      CHECK(cudaEventRecord(e0, s));
      call();
      CHECK(cudaEventRecord(e1, s));
      CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      CHECK(cudaEventElapsedTime(&ms, e0, e1));
      t.push_back(ms * 1000.f);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
  // One traced call between the two stamps; returns its event time (µs).
  template <class F> float traced(F&& call, int stages, unsigned long long st[2]) {
    set_sink(stages, true);
    flush_l2();
    stamp_kernel<<<1, 1, 0, s>>>(stamps);
    CHECK(cudaEventRecord(e0, s));
    call();
    CHECK(cudaEventRecord(e1, s));
    stamp_kernel<<<1, 1, 0, s>>>(stamps + 1);
    CHECK(cudaStreamSynchronize(s));  // the stamp after the call too
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    CHECK(cudaMemcpy(st, stamps, 2 * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
    return ms * 1000.f;
  }
};

// A case's device buffers, freed together.
struct Buffers {
  std::vector<void*> all;
  template <class T> T* get(int64_t count) {
    T* p = nullptr;
    CHECK(cudaMalloc(&p, size_t(std::max<int64_t>(count, 1)) * sizeof(T)));
    all.push_back(p);
    return p;
  }
  ~Buffers() {
    for (void* p : all) cudaFree(p);
  }
};

// The trace of the last traced call, blocks with a record only, into OUT/trace_<name>.bin.
static int write_trace(Probe& pr, const std::string& path, int stages) {
  if (!kTraced) return 0;
  const size_t rec = cu::kTrHeadWords + size_t(stages) * cu::kTrStageWords;
  std::vector<unsigned long long> buf(size_t(kBlocksCap) * rec);
  CHECK(cudaMemcpy(buf.data(), pr.trace, buf.size() * 8, cudaMemcpyDeviceToHost));
  int used = 0;
  for (int b = 0; b < kBlocksCap; ++b)
    if (buf[size_t(b) * rec + cu::kTrSm]) used = b + 1;
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(buf.data()), std::streamsize(used * rec * 8));
  return used;
}

// The SM clock and %globaltimer's step, measured once (clock_kernel).
struct Clocks {
  double sm_ghz = 0;
  unsigned long long step_ns = 0;
};

static void run_case(Probe& pr, const Case& c, const std::string& out, const Clocks& clk) {
  const int64_t n_tiles = (c.n + 15) / 16, nk = (c.k + 31) / 32;
  const bool int4 = c.kind == "ks" || c.kind == "w4a16";  // else int8 weights
  const int64_t wbytes = n_tiles * nk * (int4 ? 256 : 512);
  const int64_t n_groups = (c.k + 127) / 128;
  const int64_t sbytes = int4 ? n_tiles * n_groups * 16 * 4 : n_tiles * 16 * 4;
  Buffers buf;
  // the weights, then as many bytes again as the scales take: the read floor streams both
  auto* w = buf.get<uint8_t>(wbytes + sbytes);
  auto* scales = buf.get<float>(sbytes / 4);
  fill_bytes<<<1024, 256, 0, pr.s>>>(w, wbytes + sbytes, 1);
  fill_float<<<256, 256, 0, pr.s>>>(scales, sbytes / 4, 0.01f);
  auto* out_y = buf.get<uint16_t>(int64_t(c.m) * c.n);
  const auto* w32 = reinterpret_cast<const uint32_t*>(w);
  std::string plan;
  std::function<void()> call;
  int stages = kWgStages;
  uint16_t* x16 = nullptr;  // the decode-size kernels' x: m rows of k, 16-bit
  if (c.kind == "sw8" || c.kind == "ks") {
    x16 = buf.get<uint16_t>(int64_t(c.m) * c.k);
    fill_16bit<<<256, 256, 0, pr.s>>>(x16, int64_t(c.m) * c.k);
  }
  if (c.kind == "sw8") {
    stages = kKsStages;  // warp 0's first trips through its ring
    call = [=, &pr] {
      cu::gemm_w8a16(x16, cu::kBF16, c.m, c.k, c.k, w32, n_tiles, nk, scales, c.n, nullptr, out_y,
                     c.n, pr.s);
    };
    plan = "\"swapab\": true";
  } else if (c.kind == "ks") {
    stages = kKsStages;
    cu::DecodeWorkspace ws;
    ws.n_counters = n_tiles + cu::kKsMaxTiles;
    ws.counters = buf.get<int>(ws.n_counters);
    CHECK(cudaMemsetAsync(ws.counters, 0, ws.n_counters * 4, pr.s));
    ws.partial_bytes = cu::kslice_partial_bytes_bound(c.m, n_tiles, nk);
    ws.partials = buf.get<uint8_t>(ws.partial_bytes);
    const cu::SwapAbParams p{x16, nullptr, w32, scales, nullptr, nullptr, out_y, c.k, c.n,
                             c.m, c.n, c.k, int(n_tiles), int(nk), 128, int(n_groups)};
    call = [=, &pr] { cu::run_kslice_w4<__nv_bfloat16, false>("trace", p, ws, 4, pr.s); };
    plan = "\"kslice\": true";
  } else {
    const bool x8 = c.kind == "w8a8";
    const int64_t kt = x8 ? (nk + 3) / 4 : (nk + 1) / 2;
    const int64_t rows = (c.m + 255) / 256 * 256, img = rows * kt * 128;
    auto* xt = buf.get<int8_t>(img);
    if (x8) fill_bytes<<<1024, 256, 0, pr.s>>>(reinterpret_cast<uint8_t*>(xt), img, 3);
    else fill_16bit<<<1024, 256, 0, pr.s>>>(reinterpret_cast<uint16_t*>(xt), img / 2);
    const cu::WgmmaPlanInfo info = cu::wgmma_plan_info(!x8, c.m, n_tiles, nk);
    auto* partial = buf.get<uint8_t>(info.partial_bytes);
    const int64_t pbytes = info.partial_bytes;
    char text[256];
    std::snprintf(text, sizeof text,
                  "\"x_rows\": %d, \"splits\": %d, \"cluster\": %d, \"w_warps\": %d, "
                  "\"x_warp\": %d, \"x_pieces\": %d, \"x_tma\": %d",
                  info.x_rows, info.splits, info.cluster, info.w_warps, int(info.x_warp),
                  info.x_pieces, int(info.x_tma));
    plan = text;
    if (c.kind == "w4a16") {
      call = [=, &pr] {
        cu::gemm_w4a16_wgmma(xt, cu::kBF16, c.m, kt, w32, n_tiles, nk, scales, nullptr,
                             n_groups, 128, c.n, nullptr, out_y, c.n, partial, pbytes, false,
                             pr.s);
      };
    } else if (c.kind == "w8a16") {
      call = [=, &pr] {
        cu::gemm_w8a16_wgmma(xt, cu::kBF16, c.m, kt, w32, n_tiles, nk, scales, c.n, nullptr,
                             out_y, c.n, partial, pbytes, false, pr.s);
      };
    } else {
      auto* xscale = buf.get<float>(c.m);
      fill_float<<<64, 256, 0, pr.s>>>(xscale, c.m, 0.02f);
      call = [=, &pr] {
        cu::gemm_w8a8_wgmma(xt, c.m, kt, xscale, w32, n_tiles, nk, scales, c.n, nullptr, out_y,
                            cu::kBF16, c.n, partial, pbytes, false, pr.s);
      };
    }
  }
  CHECK(cudaStreamSynchronize(pr.s));
  pr.set_sink(stages, false);
  call();  // warm-up: the launchers' one-time queries and attributes
  CHECK(cudaStreamSynchronize(pr.s));
  CHECK(cudaGetLastError());
  const float us_off = pr.timed(call);
  unsigned long long st[2] = {0, 0};
  const float us_on = pr.traced(call, stages, st);
  CHECK(cudaGetLastError());
  const int used = write_trace(pr, out + "/trace_" + c.name + ".bin", stages);
  pr.set_sink(stages, false);
  // the floor for these weight bytes (and scales), and an empty kernel, after the same flush
  const auto read_w = [&] { pr.read(w, wbytes + sbytes); };
  const float us_read = pr.timed(read_w);
  // the same read without the flush: equal times would mean the flush leaves the bytes in L2
  const float us_warm = pr.timed(read_w, false);
  const float us_empty = pr.timed([&] { empty_kernel<<<1, 32, 0, pr.s>>>(); });
  std::ofstream js(out + "/trace_" + c.name + ".json");
  js << "{\"name\": \"" << c.name << "\", \"kind\": \"" << c.kind << "\", \"m\": " << c.m
     << ", \"k\": " << c.k << ", \"n\": " << c.n << ", \"weight_bytes\": " << wbytes
     << ", \"scale_bytes\": " << sbytes << ", \"blocks\": " << used << ", \"stages\": " << stages
     << ", \"head_words\": " << cu::kTrHeadWords << ", \"stage_words\": " << cu::kTrStageWords
     << ", \"sms\": " << pr.sms << ", \"event_us\": " << us_off << ", \"event_us_traced\": "
     << us_on << ", \"stamp_before_ns\": " << st[0] << ", \"stamp_after_ns\": " << st[1]
     << ", \"read_floor_us\": " << us_read << ", \"read_warm_us\": " << us_warm
     << ", \"empty_kernel_us\": " << us_empty << ", \"traced\": " << (kTraced ? "true" : "false")
     << ", \"sm_ghz\": " << clk.sm_ghz << ", \"globaltimer_step_ns\": " << clk.step_ns << ", "
     << plan << "}\n";
  std::printf("%-24s %8.2f us (traced %8.2f)  read floor %6.2f us (no flush %6.2f)  empty %5.2f "
              "us  blocks %d\n", c.name.c_str(), us_off, us_on, us_read, us_warm, us_empty, used);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: trace_probe OUT [case ...]\n");
    return 2;
  }
  const std::string out = argv[1];
  std::vector<Case> cases;
  const int shapes[3][2] = {{4096, 14336}, {14336, 4096}, {8192, 8192}};
  for (const auto& sh : shapes)
    for (int m : {1, 8, 16})
      cases.push_back({"ks_m" + std::to_string(m) + "_" + std::to_string(sh[0]) + "x" +
                           std::to_string(sh[1]), "ks", m, sh[0], sh[1]});
  // M = 12 between the two K-slice configurations' ends (2 blocks per SM, tiles in passes)
  cases.push_back({"ks_m12_4096x14336", "ks", 12, 4096, 14336});
  const auto wg = [&](const char* kind, int m, int k, int n) {
    cases.push_back({std::string(kind) + "_m" + std::to_string(m) + "_" + std::to_string(k) +
                         "x" + std::to_string(n), kind, m, k, n});
  };
  for (const auto& sh : shapes) wg("sw8", 1, sh[0], sh[1]);
  for (int m : {1, 16, 32, 64, 512, 4096}) wg("w4a16", m, 4096, 14336);
  for (int m : {1, 32, 512}) wg("w8a16", m, 4096, 14336);
  // 8192→8192 at M ≤ 32: 64 weight blocks, a K split at one block per SM and at two
  wg("w4a16", 32, 8192, 8192);
  wg("w8a16", 1, 8192, 8192);
  for (int m : {64, 2048, 4096}) wg("w8a8", m, 4096, 14336);  // 64: 64-row x blocks
  wg("w8a8", 2048, 14336, 4096);
  // every name asked for must be a case or a kind: a typo would otherwise run nothing, silently
  for (int i = 2; i < argc; ++i) {
    const bool known = std::any_of(cases.begin(), cases.end(), [&](const Case& c) {
      return c.name == argv[i] || c.kind == argv[i];
    });
    if (!known) {
      std::fprintf(stderr, "trace_probe: no case or kind \"%s\"; the cases:\n", argv[i]);
      for (const Case& c : cases) std::fprintf(stderr, "  %s\n", c.name.c_str());
      return 2;
    }
  }
  int ran = 0, failed = 0;
  try {
    Probe pr;
    Clocks clk;
    unsigned long long* cl = nullptr;
    CHECK(cudaMalloc(&cl, 3 * sizeof(unsigned long long)));
    clock_kernel<<<1, 1, 0, pr.s>>>(cl);
    unsigned long long h[3];
    CHECK(cudaMemcpyAsync(h, cl, sizeof h, cudaMemcpyDeviceToHost, pr.s));
    CHECK(cudaStreamSynchronize(pr.s));
    CHECK(cudaFree(cl));
    clk.sm_ghz = h[1] ? double(h[0]) / double(h[1]) : 0.0;
    clk.step_ns = h[2];
    std::printf("SM clock %.3f GHz, %%globaltimer steps of %llu ns; %s build\n", clk.sm_ghz,
                clk.step_ns, kTraced ? "traced" : "untraced (control)");
    for (const Case& c : cases) {
      bool want = argc == 2;
      for (int i = 2; i < argc; ++i) want |= c.name == argv[i] || c.kind == argv[i];
      if (!want) continue;
      if (c.kind != "ks" && c.kind != "sw8" && !cu::w4a16_wgmma_available()) {
        std::printf("%-24s skipped: no sm_90a wgmma on this device\n", c.name.c_str());
        continue;
      }
      try {
        run_case(pr, c, out, clk);
        ++ran;
      } catch (const std::exception& e) {  // this case only, unless the context is gone
        ++failed;
        std::printf("%-24s FAILED: %s\n", c.name.c_str(), e.what());
        std::ofstream(out + "/trace_" + c.name + ".error") << e.what() << "\n";
        const cudaError_t sticky = cudaDeviceSynchronize();
        if (sticky != cudaSuccess) {
          std::printf("the CUDA context is lost (%s): stopping\n", cudaGetErrorString(sticky));
          break;
        }
        cudaGetLastError();
      }
    }
  } catch (const std::exception& e) {
    std::printf("trace_probe: %s\n", e.what());
    return 1;
  }
  std::printf("%d cases, %d failed, records in %s\n", ran, failed, out.c_str());
  return failed ? 1 : 0;
}
