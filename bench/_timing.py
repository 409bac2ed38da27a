"""Timing loop, DRAM bandwidth probe and machine facts for bench/ (knows nothing of llmaccel ops).

Methodology, and why (this machine is a shared 2-core VM whose timings drift run to run):
- glibc keeps large blocks (``ensure_malloc_env``), so eager ops stop paying fresh page faults.
- Every case rotates through enough independent weight copies to exceed ~2x the L3 cache, so
  a copy is evicted before it is read again and the weights always come from DRAM.
- The statistic is the median of per-call times after a warm-up that touches every copy once.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

# glibc serves blocks above a dynamic threshold (128 KiB .. 32 MiB) with a fresh mmap and unmaps
# them at free: every eager torch op that allocates a big output then page-faults in zeroed
# pages on every call. glibc reads these variables at start-up only, hence the re-exec.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(16 << 30), "MALLOC_TRIM_THRESHOLD_": str(16 << 30)}

L3_FALLBACK_BYTES = 32 << 20  # ANCHORS.md: Zen 4 here, 32 MiB L3


def ensure_malloc_env() -> None:
    """Re-executes this interpreter once with MALLOC_*_THRESHOLD_ set (values already set win)."""
    if all(k in os.environ for k in MALLOC_ENV):
        return
    env = dict(os.environ)
    for k, v in MALLOC_ENV.items():
        env.setdefault(k, v)
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def l3_bytes() -> int:
    """Size of the last-level cache seen by cpu0 (sysfs), or 32 MiB if unknown."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for idx in os.listdir(base):
            with open(f"{base}/{idx}/size") as f:
                s = f.read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:], 1)
            best = max(best, int(s.rstrip("KMG")) * mult)
    except (OSError, ValueError):
        pass
    return best or L3_FALLBACK_BYTES


def copies_for(nbytes: int, target_bytes: int, max_copies: int = 1024) -> int:
    """How many copies of an nbytes weight make at least target_bytes in all (at least 1)."""
    return max(1, min(max_copies, -(-target_bytes // max(nbytes, 1))))


@dataclass
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    iters: int
    capped: bool  # stopped by the per-case time limit before reaching min_iters

    def as_dict(self) -> dict:
        return asdict(self)


def time_calls(calls: Sequence[Callable[[], object]], *, min_iters: int = 20,
               min_time: float = 0.3, max_time: float = 10.0) -> Timing:
    """Median time of one call, cycling through ``calls`` (one closure per weight copy).

    Warm-up touches every copy once (pages, lazy init, branch predictors), then timed calls
    run until both min_iters and min_time are reached, or max_time has passed.
    """
    start = time.perf_counter()
    for f in calls:  # warm-up: one pass over the copies, within a quarter of the budget
        f()
        if time.perf_counter() - start > max_time / 4:
            break
    samples: list[int] = []
    n = len(calls)
    t0 = time.perf_counter()
    deadline = max(max_time - (t0 - start), 0.0)
    i = 0
    while True:
        f = calls[i % n]
        s = time.perf_counter_ns()
        f()
        samples.append(time.perf_counter_ns() - s)
        i += 1
        elapsed = time.perf_counter() - t0
        if (i >= min_iters and elapsed >= min_time) or elapsed >= deadline:
            break
    samples.sort()
    q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))] * 1e-9  # noqa: E731
    return Timing(statistics.median(samples) * 1e-9, q(0.1), q(0.9), len(samples),
                  len(samples) < min_iters)


class OtherLoad:
    """Share of all CPUs that other processes (and the hypervisor's steal) used during a block.

    The machine is shared: a neighbour on one of the 2 cores stalls every OpenMP barrier for a
    scheduler slice (milliseconds), which no statistic over the samples can undo. The caller
    measures it and re-runs the case. Resolution is one clock tick (10 ms) of /proc/stat.
    """

    share: float = 0.0

    @staticmethod
    def _busy() -> int:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal

    @staticmethod
    def _own() -> int:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, all threads

    def __enter__(self) -> "OtherLoad":
        try:
            self._t, self._b, self._o = time.perf_counter(), self._busy(), self._own()
        except (OSError, ValueError, IndexError):
            self._t = None
        return self

    def __exit__(self, *exc) -> None:
        if self._t is None:
            return
        wall = time.perf_counter() - self._t
        ticks = (self._busy() - self._b) - (self._own() - self._o)
        capacity = wall * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        self.share = max(0.0, ticks / capacity) if capacity > 0 else 0.0


def dram_bandwidth(threads: int, native_probe=None, nbytes: int = 1 << 30, runs: int = 11) -> dict:
    """DRAM read bandwidth over an nbytes buffer (1 GiB = 32x the L3: every byte from DRAM).

    Two readers, interleaved run by run: a float32 torch.sum (one contiguous slice per thread)
    and, if given, ``native_probe(nbytes)`` -> GB/s (llmaccel's multi-stream AVX-512 read loop,
    which reaches more of the machine than one stream per core). The ceiling used is the larger
    of the two medians, so "% of DRAM" never flatters a kernel by comparing it with a weak reader.
    """
    import torch

    buf = torch.ones(nbytes // 4, dtype=torch.float32)  # ones, not empty: pages are touched now
    view = buf.view(threads, -1)
    view.sum(1)
    torch_gbps, native_gbps = [], []
    with OtherLoad() as load:
        for _ in range(runs):
            s = time.perf_counter()
            view.sum(1)
            torch_gbps.append(nbytes / (time.perf_counter() - s) / 1e9)
            if native_probe is not None:
                native_gbps.append(native_probe(nbytes))
    del buf, view
    medians = {"torch_sum": statistics.median(torch_gbps)}
    if native_gbps:
        medians["native"] = statistics.median(native_gbps)
    best = max(medians, key=medians.get)
    runs_used = native_gbps if best == "native" else torch_gbps
    return {"method": f"max of medians over {runs} runs, {nbytes >> 20} MiB: " + ", ".join(
                f"{k} {v:.1f} GB/s" for k, v in medians.items()),
            "bytes": nbytes, "runs_gbps": [round(g, 2) for g in runs_used],
            "torch_sum_runs_gbps": [round(g, 2) for g in torch_gbps],
            "native_runs_gbps": [round(g, 2) for g in native_gbps],
            "median_gbps": medians[best], "max_gbps": max(runs_used), "reader": best,
            "other_load": round(load.share, 3)}


def cpu_model() -> str:
    """The CPU's model name as lscpu reports it ('' if lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()
