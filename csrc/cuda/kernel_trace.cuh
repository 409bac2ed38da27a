// Timestamps from inside the GEMM kernels, for bench/gpu/trace_probe.cu: where one call's time
// goes (the launch, the first copies, the stream, the tail, the K reduction) and, per ring stage,
// who waits for whom (the consumers for data, or the producer for free slots, and how long a
// bulk copy holds the thread that issues it).
//
// Compiled in only where LLMACCEL_KERNEL_TRACE is defined: the probe, and the emulator's test of
// the records. In the library every LLMACCEL_TRACE(...) expands to nothing, so the kernels carry
// no trace code, not even a branch.
//
// The kernels: the K-slice decode kernel (gemm_decode_kslice.cuh), the wgmma kernels
// (gemm_wgmma*.cuh) and the swapped kernel (gemm_swapab.cuh: block entry, exit and warp 0's
// trips through its cp.async ring).
//
// A record per block (blocks past TraceSink::blocks record nothing): kTrHeadWords words, then
// kTrStageWords per traced stage (ring slots 0 .. TraceSink::stages - 1 of the block, counted
// over its work items as the ring counts them; the swapped kernel: warp 0's trips). Head times
// are %globaltimer (ns, one clock for the whole GPU, but it may tick coarsely), each with its
// clock64 twin (SM cycles: exact within a block); stage times are clock64. A word never written
// stays 0.
//
// What the trace points themselves cost: the sink is __constant__ (its pointer is loaded once per
// thread and kept), the entry stamps are taken into registers and written at the block's exit,
// and the producers stamp only after the ring's first fill, so that no first load of the sink
// (a miss) delays a block's start or its first copies.
#pragma once
#include <cstdint>

namespace llmaccel::cuda {

enum TraceHead : int {
  kTrSm,            // 1 + the SM the block ran on
  kTrEnter,         // thread 0 at entry (ns)
  kTrEnterClk,      // the same moment in SM cycles
  kTrFirstFull,     // consumer thread 0: its first ring slot has landed (ns)
  kTrConsumed,      // consumer thread 0: its last slot consumed (ns; wgmma: the last item's
                    // main loop, before its epilogue)
  kTrJoined,        // the block's consumers have all finished (K-slice: its block barrier)
  kTrExit,          // thread 0 at its exit (ns)
  kTrExitClk,       // the same moment in SM cycles
  kTrLast,          // K-slice: 1 when this block added the K chunks' sums
  kTrFirstFullClk,  // kTrFirstFull, kTrConsumed, kTrJoined in SM cycles
  kTrConsumedClk,
  kTrJoinedClk,
  kTrRing,          // the kernel's ring slots (the first fill: no slot to wait for)
  kTrGroup,         // stages per producer copy group (wgmma: kG; else 1)
  kTrHeadWords = 16
};
enum TraceStage : int {
  kTsWaitFull,   // consumer thread 0 starts waiting for the slot's data
  kTsFull,       // ... the data is there
  kTsIssued,     // ... its MMAs are issued (wgmma: committed)
  kTsReleased,   // ... it has handed back a slot (wgmma: the oldest in flight, after its wait)
  kTsWaitEmpty,  // producer (weights lane 0) starts waiting for the slot (the group's) to be free
  kTsEmpty,      // ... the slot is free
  kTsWCopied,    // ... its weight copy has been issued (the instruction returned)
  kTsXCopied,    // the lane issuing the slot's x (K-slice: the scales) has issued it
  kTrStageWords = 8
};

struct TraceSink {
  unsigned long long* buf = nullptr;  // blocks × (kTrHeadWords + stages · kTrStageWords)
  int blocks = 0, stages = 0;
};

}  // namespace llmaccel::cuda

#if defined(LLMACCEL_KERNEL_TRACE)
#define LLMACCEL_TRACE(...) __VA_ARGS__

#if defined(LLMACCEL_SIMT_EMU)
#include <chrono>
#endif

namespace llmaccel::cuda {

#if defined(LLMACCEL_SIMT_EMU)
inline TraceSink trace_sink;  // the emulator's harness sets it (one translation unit)
inline uint64_t trace_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}
inline uint64_t trace_clock() { return trace_ns(); }
inline uint32_t trace_smid() { return 0; }
#else
// Set with cudaMemcpyToSymbol. Defined here, so the probe is one translation unit.
__constant__ TraceSink trace_sink;
__device__ __forceinline__ uint64_t trace_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ uint64_t trace_clock() { return uint64_t(clock64()); }
__device__ __forceinline__ uint32_t trace_smid() {
  uint32_t s;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
  return s;
}
#endif

__device__ __forceinline__ unsigned long long* trace_record() {
  const int b = int(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
  const TraceSink& s = trace_sink;
  if (!s.buf || b >= s.blocks) return nullptr;
  return s.buf + int64_t(b) * (kTrHeadWords + int64_t(s.stages) * kTrStageWords);
}
__device__ __forceinline__ void trace_head(int word, uint64_t v) {
  if (unsigned long long* r = trace_record()) r[word] = v;
}
// A head time in both clocks: word (ns) and clk_word (cycles).
__device__ __forceinline__ void trace_head_now(int word, int clk_word) {
  const uint64_t clk = trace_clock(), ns = trace_ns();
  trace_head(clk_word, clk);
  trace_head(word, ns);
}
__device__ __forceinline__ void trace_stage(int stage, int word, uint64_t v) {
  unsigned long long* r = trace_record();
  if (r && stage >= 0 && stage < trace_sink.stages)
    r[kTrHeadWords + int64_t(stage) * kTrStageWords + word] = v;
}

// Thread 0's entry stamps, kept in registers until its exit (trace_exit writes them).
struct TraceEntry {
  uint64_t clk = 0, ns = 0;
  uint32_t sm = 0;
};
__device__ __forceinline__ TraceEntry trace_entry() {
  TraceEntry e;
  if (threadIdx.x == 0) {
    e.clk = trace_clock();
    e.ns = trace_ns();
    e.sm = trace_smid();
  }
  return e;
}
// ring: the kernel's ring slots; group: stages per copy group.
__device__ __forceinline__ void trace_exit(const TraceEntry& e, int ring, int group) {
  if (threadIdx.x != 0) return;
  trace_head_now(kTrExit, kTrExitClk);
  trace_head(kTrSm, 1 + e.sm);
  trace_head(kTrEnter, e.ns);
  trace_head(kTrEnterClk, e.clk);
  trace_head(kTrRing, uint64_t(ring));
  trace_head(kTrGroup, uint64_t(group));
}

}  // namespace llmaccel::cuda
#else
#define LLMACCEL_TRACE(...)
#endif
