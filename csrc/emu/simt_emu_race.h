// The SIMT emulator's race detector (simt_emu.h). Under ThreadSanitizer (g++ -fsanitize=thread:
// tests/ops/test_emu_races.py) the emulator is a race detector for the kernels' shared-memory
// protocols: every CUDA thread being a host thread, an access to shared memory that no barrier
// orders against another thread's conflicting access is reported, whatever the timing of the run.
// For that, only what orders memory on the GPU orders it here: __syncthreads, __syncwarp, named and
// cluster barriers, and an mbarrier's phase (its arrivals and completed copies, in that phase,
// before the waits that see it complete). The emulator's own locks and the rendezvous inside its
// shuffles, mma.sync and wgmma are hidden from the detector (a warp-collective instruction does not
// order the lanes' memory accesses), and a wgmma's reads of shared memory are its runner's, ordered
// before every thread whose wait_group covers it. A copy being complete when issued, a read that a
// refill's copy overwrites is checked against the earliest moment the copy could write.
#pragma once

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
extern "C" {  // libtsan's dynamic annotations
void AnnotateIgnoreSyncBegin(const char*, int);
void AnnotateIgnoreSyncEnd(const char*, int);
void AnnotateIgnoreReadsBegin(const char*, int);
void AnnotateIgnoreReadsEnd(const char*, int);
void AnnotateIgnoreWritesBegin(const char*, int);
void AnnotateIgnoreWritesEnd(const char*, int);
}
#endif

namespace llmaccel::emu {

// The race detector's view (no-ops in a plain build). Unseen: the emulator's bookkeeping, which
// must neither order the kernel's accesses (its locks, its collective rendezvous) nor be reported
// (its shared tables); `memory` false leaves the accesses checked and hides only the ordering.
// Release / acquire: an order the GPU does give, on a cell of the emulator's own.
#if defined(__SANITIZE_THREAD__)
inline thread_local int tl_unseen = 0;  // Unseen scopes open in this thread
struct Unseen {
  explicit Unseen(bool memory = true) : memory_(memory) {
    ++tl_unseen;
    AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
    if (memory_) {
      AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
      AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
    }
  }
  ~Unseen() {
    if (memory_) {
      AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
      AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
    }
    AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
    --tl_unseen;
  }
  Unseen(const Unseen&) = delete;
  Unseen& operator=(const Unseen&) = delete;

 private:
  bool memory_;
};
// The detector ignores every order while an Unseen is open: these lift that for their one order.
template <class F> void race_seen(F f) {
  for (int i = 0; i < tl_unseen; ++i) AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  f();
  for (int i = 0; i < tl_unseen; ++i) AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
}
inline void race_release(void* cell) { race_seen([&] { __tsan_release(cell); }); }
inline void race_acquire(void* cell) { race_seen([&] { __tsan_acquire(cell); }); }
#else
struct Unseen {
  explicit Unseen(bool = true) {}
};
inline void race_release(void*) {}
inline void race_acquire(void*) {}
#endif

}  // namespace llmaccel::emu
