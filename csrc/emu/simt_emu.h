// A host emulator of the parts of the CUDA execution model this project's kernels use, so that
// their own source (gemm_w8a8_wgmma.cuh, gemm_w4a16_wgmma.cuh, gemm_tiled_w4.cuh,
// quant_act_int8.cuh, gemm_decode_kslice.cuh) runs on a CPU: tests only
// (tests/ops/test_wgmma_emu.py), never part of the package. Include this first, then the kernel
// headers; they take their LLMACCEL_SIMT_EMU branches.
//
// Why: this project's GPU is lent only now and then. Index arithmetic, pipeline phases and
// boundary handling of a kernel written without one can still be checked here, on the real
// code, so that device time goes to timing rather than to first bugs.
//
// What it models: every CUDA thread of a block is a host thread (blocks run one after another,
// or a cluster's blocks together: a kernel's static __shared__ variables are function statics,
// its dynamic shared memory a buffer per block); __syncthreads (also _and), __syncwarp,
// shuffles, named and cluster barriers are std::barriers; atomics are host atomics; mbarriers count arrivals and transaction bytes and complete phases exactly as
// PTX defines them (a wait on a phase that never completes fails after a timeout instead of
// hanging); a bulk copy or cp.async is a memcpy done at once; mma.sync (m16n8k16) is computed by
// the warp's first lane from the 32 lanes' fragments (the PTX ISA's layouts); wgmma by the
// warpgroup's first thread from the 128 threads' A registers (CUTLASS's ALayout_64x32 /
// ALayout_64x16), B read from shared memory through the descriptor (K-major, 128-byte swizzle:
// address bits 4-6 XOR bits 7-9), results added to each thread's accumulators (CLayout_64xN),
// when a wait_group needs it: wgmma stays asynchronous, so operands touched while in flight
// show. What it does not model: timing, memory ordering between proxies, register limits (the
// compiler's register allocation, which wgmma_hold_a guards, is invisible here). A copy is
// complete when it is issued. Under ThreadSanitizer it is also a race detector (simt_emu_race.h).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#define LLMACCEL_SIMT_EMU 1

#include "emu/simt_emu_race.h"  // the race detector's annotations (no-ops in a plain build)

namespace llmaccel::emu {

constexpr int kSmemBytes = 232448;  // an H100 block's most

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "simt_emu: %s\n", what);
  std::fflush(stderr);
  std::_Exit(3);
}

struct Mbar {
  int expected = 0, pending = 0;
  int64_t tx = 0;
  uint32_t phase = 0;  // completed phases
  // the race detector's cell per phase (modulo: a cell reused 16 phases later only adds orders
  // a pipeline already has)
  char sync[16] = {};
  void* cell(uint32_t ph) { return &sync[ph % 16]; }
};

// wgmma is asynchronous as on the GPU: an issued op keeps pointers to the 128 threads' A
// registers and accumulators and runs when a wait_group needs its group complete, reading A, the
// accumulators and B in shared memory then. So a kernel that overwrites a wgmma's A registers,
// reads or writes its accumulators, or lets its shared-memory slot be refilled before the
// wait_group that covers it computes with the wrong data here too.
enum class WgKind { kS8K32, kBf16K16, kF16K16 };
struct WgOp {
  const uint32_t* a[128];
  void* d[128];
  uint64_t desc;
  WgKind kind;
  void (*run)(const WgOp&);
};
struct WgState {
  const uint32_t* a[128];  // the rendezvous
  void* d[128];
  uint64_t desc[128];
  std::mutex m;  // guards what follows
  std::vector<WgOp> ops;  // issued, in order
  size_t done = 0;        // ops run
  std::vector<size_t> groups;  // ops issued before the k-th commit_group
  char sync[16] = {};  // the race detector's cell per op (modulo, as Mbar's)
  void* cell(size_t op) { return &sync[op % 16]; }
};
struct WarpSlot {
  uint32_t a[32][4], b[32][2];
  float* c[32];
  uint64_t shfl[32];
};

struct Block {
  explicit Block(int n) : all(n) {
    for (int w = 0; w * 32 < n; ++w)
      warps.push_back(std::make_unique<std::barrier<>>(std::min(32, n - 32 * w)));
    for (int g = 0; g * 128 < n; ++g) {
      wg_bar.push_back(std::make_unique<std::barrier<>>(128));
      wg.push_back(std::make_unique<WgState>());
    }
    warp_mma.resize(warps.size());
    wg_commits.assign(size_t(n), 0);
    wg_waited.assign(size_t(n), 0);
  }
  std::barrier<> all;
  std::vector<std::unique_ptr<std::barrier<>>> warps, wg_bar;
  std::vector<std::unique_ptr<WgState>> wg;
  std::vector<int> wg_commits;  // commit_groups per thread
  std::vector<size_t> wg_waited;  // ops per thread whose completion its waits have seen
  std::vector<WarpSlot> warp_mma;
  std::vector<uint8_t> smem_buf = std::vector<uint8_t>(kSmemBytes + 1024, 0xA5);
  uint8_t* smem = smem_buf.data() + ((1024 - reinterpret_cast<uintptr_t>(smem_buf.data()) % 1024) % 1024);
  int and_flag = 1;
  std::mutex m;  // guards bars and named
  std::condition_variable cv;
  std::map<uint32_t, Mbar> bars;  // by shared-memory offset
  std::map<int, std::unique_ptr<std::barrier<>>> named;
};

// The blocks of one thread-block cluster, run together (launch_clusters).
struct Cluster {
  std::vector<Block*> blocks;
  std::unique_ptr<std::barrier<>> bar;
};

inline thread_local uint3 tl_thread{}, tl_block{};
inline thread_local Cluster* tl_cluster = nullptr;
inline thread_local unsigned tl_cluster_rank = 0;
inline thread_local dim3 tl_dim{}, tl_grid{};
inline thread_local Block* tl_blk = nullptr;

}  // namespace llmaccel::emu

namespace llmaccel::emu {

// The block's dynamic shared memory (LLMACCEL_DYNAMIC_SMEM), 1024-aligned, offset 0 of its
// shared window, refilled with junk for every block (stale data must not matter).
inline uint8_t* dynamic_smem() { return tl_blk->smem; }
inline uint32_t smem_offset(const void* p) {
  const auto* b = static_cast<const uint8_t*>(p);
  if (b < tl_blk->smem || b > tl_blk->smem + kSmemBytes) fail("not a shared-memory address");
  return uint32_t(b - tl_blk->smem);
}
inline void syncthreads() { tl_blk->all.arrive_and_wait(); }
inline int syncthreads_and(int pred) {
  Block& b = *tl_blk;
  if (!pred) {
    std::lock_guard<std::mutex> g(b.m);
    b.and_flag = 0;
  }
  b.all.arrive_and_wait();
  int r;
  {
    std::lock_guard<std::mutex> g(b.m);
    r = b.and_flag;
  }
  b.all.arrive_and_wait();  // all have read before the reset
  if (tl_thread.x == 0) b.and_flag = 1;
  b.all.arrive_and_wait();  // the reset before the next call's writes
  return r;
}
template <class T> T shfl_from(T v, int src) {
  Unseen unseen;  // a shuffle orders no memory
  const int w = int(tl_thread.x) / 32, lane = int(tl_thread.x) % 32;
  WarpSlot& s = tl_blk->warp_mma[w];
  std::memcpy(&s.shfl[lane], &v, sizeof(T));
  tl_blk->warps[w]->arrive_and_wait();
  T r;
  std::memcpy(&r, &s.shfl[src & 31], sizeof(T));
  tl_blk->warps[w]->arrive_and_wait();
  return r;
}
template <class T> T shfl_xor(T v, int lane_mask) {
  static_assert(sizeof(T) <= 8, "shuffles of up to 8 bytes");
  Unseen unseen;
  const int w = int(tl_thread.x) / 32, lane = int(tl_thread.x) % 32;
  WarpSlot& s = tl_blk->warp_mma[w];
  std::memcpy(&s.shfl[lane], &v, sizeof(T));
  tl_blk->warps[w]->arrive_and_wait();
  T r;
  std::memcpy(&r, &s.shfl[(lane ^ lane_mask) & 31], sizeof(T));
  tl_blk->warps[w]->arrive_and_wait();
  return r;
}
inline void syncwarp() { tl_blk->warps[tl_thread.x / 32]->arrive_and_wait(); }
inline void named_barrier(int id, int count) {
  std::barrier<>* b;
  {
    Unseen unseen;
    std::lock_guard<std::mutex> g(tl_blk->m);
    auto& slot = tl_blk->named[id];
    if (!slot) slot = std::make_unique<std::barrier<>>(count);
    b = slot.get();
  }
  b->arrive_and_wait();
}

// ---- mbarriers ----------------------------------------------------------------------------------
inline Mbar& mbar_locked(uint64_t* bar) {
  auto it = tl_blk->bars.find(smem_offset(bar));
  if (it == tl_blk->bars.end()) fail("mbarrier used before mbarrier.init");
  return it->second;
}
inline void mbar_settle_locked(Mbar& b, Block& blk = *tl_blk) {
  if (b.pending < 0) fail("more arrivals than the mbarrier's count");
  if (b.pending == 0 && b.tx == 0) {
    ++b.phase;
    b.pending = b.expected;
    blk.cv.notify_all();
  }
}
inline void mbar_init(uint64_t* bar, uint32_t count) {
  Unseen unseen;
  std::lock_guard<std::mutex> g(tl_blk->m);
  tl_blk->bars[smem_offset(bar)] = Mbar{int(count), int(count), 0, 0};
}
inline void mbar_arrive(uint64_t* bar) {
  Unseen unseen;
  std::lock_guard<std::mutex> g(tl_blk->m);
  Mbar& b = mbar_locked(bar);
  race_release(b.cell(b.phase));  // what this thread did before, to the phase's waiters
  --b.pending;
  mbar_settle_locked(b);
}
inline void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {  // mbarrier.arrive.expect_tx
  Unseen unseen;
  std::lock_guard<std::mutex> g(tl_blk->m);
  Mbar& b = mbar_locked(bar);
  race_release(b.cell(b.phase));
  b.tx += bytes;
  --b.pending;
  mbar_settle_locked(b);
}
// try_wait.parity: done once the phase with this parity has completed, i.e. the current phase's
// parity differs.
inline void mbar_wait(uint64_t* bar, uint32_t parity) {
  Unseen unseen;
  std::unique_lock<std::mutex> g(tl_blk->m);
  Mbar& b = mbar_locked(bar);
  if (!tl_blk->cv.wait_for(g, std::chrono::seconds(20), [&] { return (b.phase & 1) != parity; }))
    fail("an mbarrier wait never completed (deadlock)");
  race_acquire(b.cell(b.phase - 1));  // the completed phase: its arrivals and copies
}
// ---- cluster scope: another block's mbarriers and shared memory at the same offsets -------------
inline Block& cluster_block(unsigned rank) {
  if (!tl_cluster || rank >= tl_cluster->blocks.size()) fail("no such block in the cluster");
  return *tl_cluster->blocks[rank];
}
inline void mbar_complete_tx_in(Block& blk, uint32_t offset, uint32_t bytes) {
  Unseen unseen;
  std::lock_guard<std::mutex> g(blk.m);
  auto it = blk.bars.find(offset);
  if (it == blk.bars.end()) fail("a copy signalled an mbarrier not yet initialized");
  race_release(it->second.cell(it->second.phase));  // the copy's bytes, to the phase's waiters
  it->second.tx -= bytes;  // may run ahead of the phase's expect_tx: the count goes negative
  mbar_settle_locked(it->second, blk);
}
// mbarrier.arrive.release.cluster on block `rank`'s barrier at bar's offset (mapa).
inline void mbar_arrive_cluster(uint64_t* bar, unsigned rank) {
  Block& blk = cluster_block(rank);
  Unseen unseen;
  std::lock_guard<std::mutex> g(blk.m);
  auto it = blk.bars.find(smem_offset(bar));
  if (it == blk.bars.end()) fail("remote mbarrier used before mbarrier.init");
  race_release(it->second.cell(it->second.phase));
  --it->second.pending;
  mbar_settle_locked(it->second, blk);
}
// cp.async.bulk ... .multicast::cluster: the bytes land at dst's offset in every block of `mask`,
// each signalling its own mbarrier at bar's offset.
inline void bulk_copy_g2s_multicast(void* dst, const void* src, uint32_t bytes, uint64_t* bar,
                                    uint16_t mask) {
  if (bytes % 16 || reinterpret_cast<uintptr_t>(dst) % 16 || reinterpret_cast<uintptr_t>(src) % 16)
    fail("bulk copy: size and both addresses must be multiples of 16");
  const uint32_t doff = smem_offset(dst), boff = smem_offset(bar);
  if (doff + bytes > uint32_t(kSmemBytes)) fail("bulk copy past shared memory");
  for (unsigned r = 0; r < 16; ++r) {
    if (!(mask >> r & 1)) continue;
    Block& blk = cluster_block(r);
    std::memcpy(blk.smem + doff, src, bytes);
    mbar_complete_tx_in(blk, boff, bytes);
  }
}
inline void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  if (bytes % 16 || reinterpret_cast<uintptr_t>(dst) % 16 || reinterpret_cast<uintptr_t>(src) % 16)
    fail("bulk copy: size and both addresses must be multiples of 16");
  if (smem_offset(dst) + bytes > uint32_t(kSmemBytes)) fail("bulk copy past shared memory");
  std::memcpy(dst, src, bytes);  // checked: the copy's writes, at the earliest they could land
  mbar_complete_tx_in(*tl_blk, smem_offset(bar), bytes);
}

}  // namespace llmaccel::emu

#include "emu/simt_emu_wgmma.h"  // wgmma, asynchronous until its wait_group

namespace llmaccel::emu {

// ---- mma.sync and cp.async -----------------------------------------------------------------------
// D = A·B + D, m16n8k16, 16-bit A (16×16, row) and B (16×8, col), fp32 C: A registers 0-3 hold
// (row g, k 2t..2t+1), (row g+8, same), (row g, k 2t+8..), (row g+8, k 2t+8..); B registers
// (k 2t.., col g), (k 2t+8.., col g); C (row g, cols 2t, 2t+1), (row g+8, same); g = lane/4,
// t = lane%4.
inline void mma_m16n8k16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1,
                         WgKind kind) {
  Unseen unseen;  // registers only, and a warp-collective instruction orders no memory
  const int w = int(tl_thread.x) / 32, lane = int(tl_thread.x) % 32;
  WarpSlot& s = tl_blk->warp_mma[w];
  std::memcpy(s.a[lane], a, 16);
  s.b[lane][0] = b0;
  s.b[lane][1] = b1;
  s.c[lane] = c;
  tl_blk->warps[w]->arrive_and_wait();
  if (lane == 0) {
    double A[16][16], B[16][8];
    for (int l = 0; l < 32; ++l) {
      const int g = l / 4, t = l % 4;
      for (int reg = 0; reg < 4; ++reg)
        for (int e = 0; e < 2; ++e)
          A[g + 8 * (reg & 1)][2 * t + e + 8 * (reg >> 1)] =
              half_bits_to_float(uint16_t(s.a[l][reg] >> (16 * e)), kind);
      for (int reg = 0; reg < 2; ++reg)
        for (int e = 0; e < 2; ++e)
          B[2 * t + e + 8 * reg][g] = half_bits_to_float(uint16_t(s.b[l][reg] >> (16 * e)), kind);
    }
    for (int l = 0; l < 32; ++l) {
      const int g = l / 4, t = l % 4;
      for (int v = 0; v < 4; ++v) {
        const int row = g + 8 * (v >> 1), col = 2 * t + (v & 1);
        double sum = 0;
        for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
        s.c[l][v] += float(sum);
      }
    }
  }
  tl_blk->warps[w]->arrive_and_wait();
}
// cp.async of 16 bytes: the first src_bytes copied, the rest zero, at once.
inline void cp_async16(void* dst, const void* src, int src_bytes) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 || (src_bytes && reinterpret_cast<uintptr_t>(src) % 16))
    fail("cp.async: 16-byte copies need 16-byte-aligned addresses");
  if (smem_offset(dst) + 16 > uint32_t(kSmemBytes)) fail("cp.async past shared memory");
  std::memset(dst, 0, 16);
  std::memcpy(dst, src, size_t(src_bytes));
}

// ---- launch -------------------------------------------------------------------------------------
// Runs kernel(args...) for every block of the grid (x fastest), one block at a time, on a pool of
// `threads` host threads made once per launch (a new Block, with fresh barriers and junk-filled
// shared memory, for every block).
template <class Kernel, class... Args>
void launch(Kernel kernel, dim3 grid, unsigned threads, const Args&... args) {
  const unsigned blocks = grid.x * grid.y * grid.z;
  std::unique_ptr<Block> blk;
  std::barrier<> gate(threads);
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      tl_thread = uint3{t, 0, 0};
      tl_dim = dim3(threads, 1, 1);
      tl_grid = grid;
      for (unsigned i = 0; i < blocks; ++i) {
        if (t == 0) blk = std::make_unique<Block>(int(threads));
        gate.arrive_and_wait();  // the block exists for every thread
        tl_block = uint3{i % grid.x, (i / grid.x) % grid.y, i / (grid.x * grid.y)};
        tl_blk = blk.get();
        kernel(args...);
        gate.arrive_and_wait();  // every thread left the block before the next replaces it
        if (t == 0) wgmma_check_drained();
      }
    });
  }
  for (auto& th : pool) th.join();
}

// Runs a grid in clusters of `cdim` blocks (the grid a multiple of it): a cluster's blocks run
// at the same time, each on its own host threads and shared memory, so that cluster barriers and
// distributed shared memory (cooperative_groups below) work; clusters run one after another.
// Static __shared__ variables are function statics, shared by a cluster's blocks: a kernel
// emulated this way must not rely on them on its cluster path.
template <class Kernel, class... Args>
void launch_clusters(Kernel kernel, dim3 grid, dim3 cdim, unsigned threads, const Args&... args) {
  const unsigned per = cdim.x * cdim.y * cdim.z;
  if (grid.x % cdim.x || grid.y % cdim.y || grid.z % cdim.z) fail("grid not a multiple of cluster");
  for (unsigned cz = 0; cz < grid.z; cz += cdim.z)
    for (unsigned cy = 0; cy < grid.y; cy += cdim.y)
      for (unsigned cx = 0; cx < grid.x; cx += cdim.x) {
        std::vector<std::unique_ptr<Block>> blocks;
        Cluster cl;
        cl.bar = std::make_unique<std::barrier<>>(int(per * threads));
        for (unsigned r = 0; r < per; ++r) {
          blocks.push_back(std::make_unique<Block>(int(threads)));
          cl.blocks.push_back(blocks.back().get());
        }
        std::vector<std::thread> pool;
        for (unsigned r = 0; r < per; ++r)
          for (unsigned t = 0; t < threads; ++t)
            pool.emplace_back([&, r, t] {
              tl_thread = uint3{t, 0, 0};
              tl_block = uint3{cx + r % cdim.x, cy + (r / cdim.x) % cdim.y,
                               cz + r / (cdim.x * cdim.y)};
              tl_dim = dim3(threads, 1, 1);
              tl_grid = grid;
              tl_blk = cl.blocks[r];
              tl_cluster = &cl;
              tl_cluster_rank = r;
              kernel(args...);
            });
        for (auto& th : pool) th.join();
        for (auto& b : blocks) {
          tl_blk = b.get();
          wgmma_check_drained();
        }
      }
}

}  // namespace llmaccel::emu

// The slice of cooperative_groups the kernels use for clusters.
namespace cooperative_groups {
struct cluster_group {
  void sync() const { ::llmaccel::emu::tl_cluster->bar->arrive_and_wait(); }
  unsigned block_rank() const { return ::llmaccel::emu::tl_cluster_rank; }
  template <class T> T* map_shared_rank(T* addr, unsigned rank) const {
    using ::llmaccel::emu::tl_blk;
    const auto offset = reinterpret_cast<uint8_t*>(addr) - tl_blk->smem;
    return reinterpret_cast<T*>(::llmaccel::emu::tl_cluster->blocks[rank]->smem + offset);
  }
};
inline cluster_group this_cluster() {
  if (!::llmaccel::emu::tl_cluster) ::llmaccel::emu::fail("this_cluster() outside a cluster launch");
  return {};
}
}  // namespace cooperative_groups

template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
// Fused multiply-add of half pairs through fp32 (one more rounding than the GPU's in general;
// exact where the kernels use it: integers times powers of two).
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
  return __floats2half2_rn(std::fma(__low2float(a), __low2float(b), __low2float(c)),
                           std::fma(__high2float(a), __high2float(b), __high2float(c)));
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s) {
  const uint64_t v = (uint64_t(y) << 32) | x;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= uint32_t((v >> (8 * ((s >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return r;
}
inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float __int_as_float(int u) { return __uint_as_float(uint32_t(u)); }
// IEEE single operations round to nearest even on the host as on the GPU (no FMA contraction:
// the tests build without -ffp-contract=fast and without FMA instructions).
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline int __float2int_rn(float v) { return int(std::nearbyint(v)); }
inline int __syncthreads_and(int pred) { return ::llmaccel::emu::syncthreads_and(pred); }
template <class T> inline T __shfl_xor_sync(unsigned, T v, int lane_mask) {
  return ::llmaccel::emu::shfl_xor(v, lane_mask);
}
template <class T> inline T __shfl_sync(unsigned, T v, int src) {
  return ::llmaccel::emu::shfl_from(v, src);
}

// The CUDA spellings the kernel sources use, for the host compiler.
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __grid_constant__
#define __grid_constant__
#undef __shared__
#define __shared__ static
#define threadIdx (::llmaccel::emu::tl_thread)
#define blockIdx (::llmaccel::emu::tl_block)
#define blockDim (::llmaccel::emu::tl_dim)
#define gridDim (::llmaccel::emu::tl_grid)
#define __syncthreads() ::llmaccel::emu::syncthreads()
#define __syncwarp(...) ::llmaccel::emu::syncwarp()
using std::isfinite;
using std::max;
using std::min;
