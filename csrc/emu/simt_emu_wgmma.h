// The SIMT emulator's wgmma (csrc/emu/simt_emu.h includes it; tests only): ops queued by the
// warpgroup with pointers to the 128 threads' A registers and accumulators, run at the
// wait_group that needs them, reading A, the accumulators and B in shared memory then (see
// WgOp / WgState in simt_emu.h). Also the 16-bit conversions mma.sync shares.
#pragma once
#if !defined(LLMACCEL_SIMT_EMU)
#error "include emu/simt_emu.h, which includes this after what it builds on"
#endif

namespace llmaccel::emu {

inline float half_bits_to_float(uint16_t v, WgKind kind) {
  if (kind == WgKind::kBf16K16) {
    __nv_bfloat16 h;
    std::memcpy(&h, &v, 2);
    return __bfloat162float(h);
  }
  __half h;
  std::memcpy(&h, &v, 2);
  return __half2float(h);
}

// The 64 × kk A operand from the 128 threads' registers (CUTLASS's ALayout_64x32 / 64x16).
inline void wgmma_a_operand(const WgOp& s, WgKind kind, int kk, double* a) {
  Unseen registers;
  for (int r = 0; r < 128; ++r) {
    const int w = r / 32, g = (r % 32) / 4, t = r % 4;
    for (int reg = 0; reg < 4; ++reg) {
      const int m = 16 * w + g + 8 * (reg & 1);
      if (kind == WgKind::kS8K32) {
        for (int e = 0; e < 4; ++e)
          a[m * kk + 4 * t + e + 16 * (reg >> 1)] = int8_t(s.a[r][reg] >> (8 * e));
      } else {
        for (int e = 0; e < 2; ++e)
          a[m * kk + 2 * t + e + 8 * (reg >> 1)] =
              half_bits_to_float(uint16_t(s.a[r][reg] >> (16 * e)), kind);
      }
    }
  }
}

// An op's product (N = 2·NA rows of B), from the operands as they are when it runs. Under the
// race detector only the B reads are the kernel's accesses (A and the accumulators are the
// threads' registers).
template <class Acc, int NA> void wgmma_compute(const WgOp& s) {
  constexpr int N = 2 * NA;
  const uint64_t desc = s.desc;
  const WgKind kind = s.kind;
  const uint32_t start = uint32_t(desc & 0x3FFF) << 4;
  const uint32_t sbo = uint32_t((desc >> 32) & 0x3FFF) << 4;
  if ((desc >> 62) != 1 || sbo != 1024) fail("wgmma: only K-major 128-byte swizzle, SBO 1024");
  const int kk = kind == WgKind::kS8K32 ? 32 : 16;  // k per instruction
  std::vector<double> a(64 * kk), b(N * kk);
  wgmma_a_operand(s, kind, kk, a.data());
  for (int n = 0; n < N; ++n) {
    for (int byte = 0; byte < 32; ++byte) {
      const uint32_t logical = start + (n / 8) * sbo + (n % 8) * 128 + byte;
      const uint32_t physical = logical ^ (((logical >> 7) & 7) << 4);
      if (physical >= uint32_t(kSmemBytes)) fail("wgmma: B read past shared memory");
      if (kind == WgKind::kS8K32) {
        b[n * kk + byte] = int8_t(tl_blk->smem[physical]);
      } else if (byte % 2 == 0) {
        uint16_t v;
        std::memcpy(&v, tl_blk->smem + physical, 2);
        b[n * kk + byte / 2] = half_bits_to_float(v, kind);
      }
    }
  }
  Unseen registers;
  for (int r = 0; r < 128; ++r) {
    const int w = r / 32, g = (r % 32) / 4, t = r % 4;
    Acc* d = static_cast<Acc*>(s.d[r]);
    for (int v = 0; v < NA; ++v) {
      const int m = 16 * w + g + 8 * ((v % 4) >> 1), n = 8 * (v / 4) + 2 * t + (v & 1);
      double sum = 0;
      for (int k = 0; k < kk; ++k) sum += a[m * kk + k] * b[n * kk + k];
      d[v] += Acc(sum);
    }
  }
}

// wgmma.mma_async: all 128 threads present their operands; the warpgroup's first thread queues
// the op.
template <class Acc, int NA>
void wgmma(Acc (&d)[NA], const uint32_t (&a)[4], uint64_t desc, WgKind kind) {
  Unseen unseen;  // the issue orders no memory; the op's B reads are checked when it runs
  const int wgi = int(tl_thread.x) / 128, r = int(tl_thread.x) % 128;
  WgState& s = *tl_blk->wg[wgi];
  s.a[r] = a;
  s.d[r] = d;
  s.desc[r] = desc;
  tl_blk->wg_bar[wgi]->arrive_and_wait();
  if (r == 0) {
    WgOp op;
    for (int t = 0; t < 128; ++t) {
      if (s.desc[t] != desc) fail("wgmma: threads of a warpgroup gave different descriptors");
      op.a[t] = s.a[t];
      op.d[t] = s.d[t];
    }
    op.desc = desc;
    op.kind = kind;
    op.run = &wgmma_compute<Acc, NA>;
    std::lock_guard<std::mutex> g(s.m);
    s.ops.push_back(op);
  }
  tl_blk->wg_bar[wgi]->arrive_and_wait();
}
// wgmma.commit_group: this thread's ops so far form its next group. Ops are issued by the whole
// warpgroup together, so the first thread to commit a group sees exactly its ops.
inline void wgmma_commit() {
  Unseen unseen;
  WgState& s = *tl_blk->wg[tl_thread.x / 128];
  int& c = tl_blk->wg_commits[tl_thread.x];
  std::lock_guard<std::mutex> g(s.m);
  if (int(s.groups.size()) == c) s.groups.push_back(s.ops.size());
  ++c;
}
// wgmma.wait_group N: every group but this thread's newest N complete (run now if not yet).
// Under the race detector the op's runner (the first thread to need it) orders its B reads
// before every thread whose wait covers the op; only those reads are checked here.
inline void wgmma_wait(int n) {
  Unseen lock_order(false);
  WgState& s = *tl_blk->wg[tl_thread.x / 128];
  std::lock_guard<std::mutex> g(s.m);
  size_t upto;
  {
    Unseen bookkeeping;
    const int c = tl_blk->wg_commits[tl_thread.x];
    upto = c > n ? s.groups[size_t(c - n - 1)] : 0;
  }
  for (;;) {
    WgOp op;
    size_t i;
    {
      Unseen bookkeeping;
      if (s.done >= upto) break;
      i = s.done++;
      op = s.ops[i];
    }
    op.run(op);
    race_release(s.cell(i));
  }
  Unseen bookkeeping;
  for (size_t& seen = tl_blk->wg_waited[tl_thread.x]; seen < upto; ++seen)
    race_acquire(s.cell(seen));
}
// At a block's end: no op may still be in flight (its results would be lost on the GPU).
inline void wgmma_check_drained() {
  for (auto& s : tl_blk->wg)
    if (s->done != s->ops.size()) fail("a wgmma was never waited for before the block ended");
}

}  // namespace llmaccel::emu
