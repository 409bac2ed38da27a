// A small kernel with the shared-memory protocols of the real ones (a producer warp's bulk copies
// into a ring of slots with "full" and "empty" mbarriers, consumer warps that read a slot, pass
// its words through mma.sync and a shuffle and release it, a named barrier among the consumers,
// a block barrier before the producer reads their result), and one variant per order it can
// leave out. tests/ops/test_emu_races.py runs it under the emulator's race detector: the whole
// form must run clean and every variant must be reported, or the detector has gone blind (its
// emulated collectives ordering what the GPU does not) or noisy. Emulator only (tests/native).
#pragma once

namespace race_probe {

namespace cu = llmaccel::cuda;

constexpr int kConsumers = 2;                   // consumer warps; the producer warp is the last
constexpr int kSlots = 2, kTiles = 6;           // the ring, and the tiles through it
constexpr int kSlotBytes = kConsumers * 32 * 16;  // a 16-byte piece per consumer lane

enum Variant {
  kWhole = 0,
  kNoSyncwarpBeforeRelease = 1,  // lane 0 releases the slot before the other lanes' reads are ordered
  kOneLaneWaitsFull = 2,         // only lane 0 waits for the copy; the others read unordered
  kNoNamedBarrier = 3,           // the consumers' sums read before the others have written them
  kNoBlockBarrier = 4,           // the producer reads the total before it is ordered after its write
  kVariants = 5,
};

// src: kTiles · kSlotBytes bytes; out[0]: the sum of all of them, as 32-bit words' low bytes.
inline void race_probe_kernel(int variant, const uint8_t* src, uint32_t* out) {
  LLMACCEL_DYNAMIC_SMEM_ALIGNED(smem, 128);
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kSlots * kSlotBytes);
  uint64_t* empty = full + kSlots;
  uint32_t* sums = reinterpret_cast<uint32_t*>(empty + kSlots);  // one per consumer thread
  uint32_t* total = sums + kConsumers * 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0)
    for (int b = 0; b < kSlots; ++b) {
      cu::mbar_init(full + b, 1);
      cu::mbar_init(empty + b, kConsumers);
    }
  __syncthreads();
  if (warp == kConsumers) {
    if (lane == 0)
      for (int t = 0; t < kTiles; ++t) {
        const int b = t % kSlots;
        if (t >= kSlots) cu::mbar_wait(empty + b, ((t / kSlots) - 1) & 1);
        cu::mbar_expect_tx(full + b, kSlotBytes);
        cu::bulk_copy_g2s(smem + b * kSlotBytes, src + t * kSlotBytes, kSlotBytes, full + b);
      }
  } else {
    uint32_t acc = 0;
    for (int t = 0; t < kTiles; ++t) {
      const int b = t % kSlots;
      if (variant != kOneLaneWaitsFull || lane == 0) cu::mbar_wait(full + b, (t / kSlots) & 1);
      const uint4 v =
          *reinterpret_cast<const uint4*>(smem + b * kSlotBytes + (warp * 32 + lane) * 16);
      const uint32_t a[4] = {v.x, v.y, v.z, v.w};
      for (const uint32_t word : a)
        for (int e = 0; e < 4; ++e) acc += (word >> (8 * e)) & 0xFF;
      // Warp-collective steps between the reads and the release, as in the real kernels (their
      // results unused): they exchange registers, and must not order the lanes' memory accesses.
      float c[4] = {0.f, 0.f, 0.f, 0.f};
      cu::mma_16816(c, a, 0u, 0u, __half());
      (void)__shfl_xor_sync(0xFFFFFFFFu, acc, 1);
      if (variant != kNoSyncwarpBeforeRelease) __syncwarp();
      if (lane == 0) cu::mbar_arrive(empty + b);
    }
    sums[threadIdx.x] = acc;
    if (variant != kNoNamedBarrier) llmaccel::emu::named_barrier(1, kConsumers * 32);
    if (threadIdx.x == 0) {
      uint32_t s = 0;
      for (int i = 0; i < kConsumers * 32; ++i) s += sums[i];
      *total = s;
    }
  }
  if (variant != kNoBlockBarrier) __syncthreads();
  if (warp == kConsumers && lane == 0) out[0] = *total;
}

}  // namespace race_probe
