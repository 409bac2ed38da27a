"""Timing for bench_gpu.py: median GPU time of one call with a cold L2, and the device's
measured ceilings (HBM bandwidth, bf16 matmul rate). Knows nothing of llmaccel."""

from __future__ import annotations

import statistics
import time

import torch


def event_times(fn, reps: int, warm: int) -> list[float]:
    """Per-call seconds with CUDA events, no flush (for probes that dwarf the L2)."""
    for _ in range(warm):
        fn()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
          for _ in range(reps)]
    for s, e in ev:
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) * 1e-3 for s, e in ev]


class ColdTimer:
    """Median GPU time of one call with a cold L2 (see the module docstring)."""

    def __init__(self, flush_bytes: int, warmup: int, iters: int, case_cap_s: float,
                 use_sleep: bool):
        # Read, not written: zeroing a buffer leaves L2 full of dirty lines whose write-back
        # then lands inside the timed call (measured on H100: every M=1 kernel paid ~50 MB of
        # extra DRAM traffic, so 31 MB of int4 weights took as long as 80 MB would).
        self.flush = torch.ones(flush_bytes // 4, dtype=torch.float32, device="cuda")
        self.warmup, self.iters, self.case_cap_s = warmup, iters, case_cap_s
        self.sleep = getattr(torch.cuda, "_sleep", None) if use_sleep else None
        if self.sleep is not None:
            self.sleep(1000)  # loads the spin kernel now, not inside the first timed call

    def _flush(self) -> None:
        self.sink = self.flush.sum()  # evicts everything with clean lines; no host sync

    def __call__(self, fn) -> dict:
        host = []
        for _ in range(max(self.warmup, 1)):
            self._flush()
            t = time.perf_counter()
            fn()
            host.append(time.perf_counter() - t)
        torch.cuda.synchronize()
        t = time.perf_counter()
        self._flush()
        fn()
        torch.cuda.synchronize()
        one = time.perf_counter() - t  # wall time of flush + call, to cap huge cases
        iters = self.iters
        if one * iters > self.case_cap_s:
            iters = max(min(20, iters), int(self.case_cap_s / one))
        # The spin must outlast the host's enqueue of record + op + record (3x the median
        # host time of a call, at least 40 µs); cycles at <= 2 GHz, so it is never shorter.
        sleep_us = min(2000.0, max(40.0, 3e6 * statistics.median(host)))
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(iters)]
        for s, e in ev:
            self._flush()
            if self.sleep is not None:
                self.sleep(int(sleep_us * 2000))
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize()
        ts = sorted(s.elapsed_time(e) * 1e-3 for s, e in ev)
        q = lambda f: ts[min(len(ts) - 1, int(f * len(ts)))]  # noqa: E731
        return {"time_s": statistics.median(ts), "p10_s": q(0.1), "p90_s": q(0.9),
                "iters": iters, "sleep_us": round(sleep_us if self.sleep else 0.0, 1)}


def _hbm_gbps(nbytes: int = 1 << 30) -> tuple[float, float]:
    """(copy, read) GB/s: dst.copy_(src) counting bytes read + written, torch.sum counting
    bytes read; 1 GiB buffers, 20x the L2."""
    src = torch.randn(nbytes // 4, device="cuda")
    dst = torch.empty_like(src)
    copy = 2 * nbytes / statistics.median(event_times(lambda: dst.copy_(src), 20, 3))
    read = nbytes / statistics.median(event_times(lambda: torch.sum(src), 20, 3))
    return copy / 1e9, read / 1e9


def _bf16_tflops(n: int = 8192) -> float:
    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    return 2 * n**3 / statistics.median(event_times(lambda: a @ b, 10, 3)) / 1e12


def measure_ceilings() -> dict:
    """HBM bandwidth (copy: read + write bytes; sum: read bytes) and the bf16 matmul rate."""
    copy, read = _hbm_gbps()
    mma = _bf16_tflops()
    torch.cuda.empty_cache()
    return {"hbm_copy_gbps": copy, "hbm_read_gbps": read, "hbm_gbps": max(copy, read),
            "bf16_mma_tflops": mma,
            "method": "median of 20 CUDA-event-timed runs: 1 GiB dst.copy_(src) counting read + "
                      "written bytes, 1 GiB float32 torch.sum counting read bytes; ceiling = the "
                      "larger. bf16 8192^3 matmul, median of 10"}
