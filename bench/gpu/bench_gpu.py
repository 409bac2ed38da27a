#!/usr/bin/env python3
"""llmaccel's CUDA GEMM ops against torch F.linear (bf16) on one GPU, with the issue's targets.

    python3 bench/gpu/bench_gpu.py                      # 3 shapes x 13 M, bf16 (~1-3 min, H100)
    python3 bench/gpu/bench_gpu.py --quick              # 1 shape, 6 M
    python3 bench/gpu/bench_gpu.py --shapes 4096x14336 --m 1,16 --kernels w4a16 --dtype fp16

Kernels (same random codes for every row of a shape; scales ~0.01, activations randn):
  gemm_w4a16      int4 g128 symmetric (gemm_w4a16_zp: with zero points, not run by default)
  gemm_w8a16      int8 per-channel weights, float activations
  gemm_w8a8       same int8 weights, activations quantized per token inside the op
  linear_bf16     torch.nn.functional.linear, bf16 weights = the dequantized int4 weight (the
                  same function; 1/16 of it is exactly 0, code 8, as in any symmetric int4 model)
  linear_fp16     the same in fp16 (only with --dtype fp16)

Method (/work/.library/device/METHOD.md):
- Correct first. For each (kernel, shape) the op's output at M = 1, 37, max(M)-1 and the
  largest M of each internal path (llmaccel.ops.cuda_path) is compared with a float32
  reference of the same function: ||out - ref|| / ||ref|| <= 2e-2, NaN fails. The reference is
  the CPU twin (llmaccel.reference) for small weights; for big ones it is the twin's
  dequantized weight (llmaccel.reference.dequant, from the canonical packed tensors) multiplied
  on the GPU in float32 (TF32 off). The output block is poisoned with NaN first (the caching
  allocator hands the op that block), so an element the kernel never writes fails the check.
  A kernel that fails at any M is not timed for that shape.
- Timing: CUDA events around one call; median of >= 50 calls after 10 warm-up calls. Cold L2:
  before every call a buffer of 2x the L2 size is read (read, so that no dirty line's
  write-back falls inside the timed call), outside the events, so the weights
  come from HBM as in a decode step. A spin kernel (torch.cuda._sleep, sized from the measured
  host time of a call) then holds the stream while the host enqueues events and op: the events
  measure the op's GPU time, not Python and dispatcher overhead, which a decode loop hides
  behind CUDA graphs.
- Ceilings from the same run: HBM bandwidth = max(1 GiB device-to-device copy counting bytes
  read + written, 1 GiB read-only sum), so "% HBM" never flatters a read-only kernel; bf16
  matmul peak from an 8192^3 product. GB/s counts the weight bytes the op must read (qweight +
  scales (+ zeros)); TFLOP/s = 2*M*N*K / time.
- Every case of a shape at one M shares one fresh randn x; F.linear runs in the same process
  with the same flush, so speedups are same-run ratios.
Output: per-case lines as it goes, then a short summary (compact tables, PASS/MISS grid) last;
JSON and markdown in --out as <YYYY-MM-DD>_gpu_<gpu>.{json,md}, rewritten after every shape.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import llmaccel
from llmaccel import formats
from llmaccel.files import atomic_write

ref_gemm = importlib.import_module("llmaccel.reference.gemm")
ref_dequant = importlib.import_module("llmaccel.reference.dequant")
ref_quant = importlib.import_module("llmaccel.reference.quant")

REPO = Path(__file__).resolve().parents[2]
TOL = 2e-2
# (K, N, label): Llama-3-8B MLP gate/up and down projections, and a 70B-class square layer.
SHAPES = [(4096, 14336, "gate/up proj"), (14336, 4096, "down proj"), (8192, 8192, "square")]
ISSUE_SHAPES = {(4096, 14336), (8192, 8192)}  # the shapes the issue names for its targets
M_SWEEP = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
QUICK_SHAPES = SHAPES[:1]
QUICK_M = [1, 16, 32, 64, 256, 2048]
TWIN_MAX_WEIGHTS = 1 << 22  # up to this many weights the reference is the CPU twin itself
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Kernel:
    name: str  # row label
    op: str    # llmaccel op (also the name cuda_path knows)
    fmt: str   # weight set: w4 (symmetric), w4zp (zero points), w8


KERNELS = {k.name: k for k in (Kernel("gemm_w4a16", "gemm_w4a16", "w4"),
                               Kernel("gemm_w4a16_zp", "gemm_w4a16", "w4zp"),
                               Kernel("gemm_w8a16", "gemm_w8a16", "w8"),
                               Kernel("gemm_w8a8", "gemm_w8a8", "w8"))}
DEFAULT_KERNELS = ["gemm_w4a16", "gemm_w8a16", "gemm_w8a8"]


# ---- arguments --------------------------------------------------------------------------------

def _int_list(s: str) -> list[int]:
    return [int(v) for v in s.replace(" ", "").split(",") if v]


def _shapes(s: str) -> list[tuple[int, int, str]]:
    """'4096x14336,8192x8192' (K x N) → [(K, N, label)]."""
    known = {(k, n): label for k, n, label in SHAPES}
    out = []
    for item in s.replace(" ", "").split(","):
        if not item:
            continue
        m = re.fullmatch(r"(\d+)[x:](\d+)", item)
        if not m:
            raise argparse.ArgumentTypeError(f"shape {item!r} is not KxN, e.g. 4096x14336")
        k, n = int(m.group(1)), int(m.group(2))
        out.append((k, n, known.get((k, n), "custom")))
    return out


def _kernels(s: str) -> list[str]:
    out = []
    for name in s.replace(" ", "").split(","):
        full = name if name.startswith("gemm_") else f"gemm_{name}"
        if full not in KERNELS:
            raise argparse.ArgumentTypeError(
                f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
        out.append(full)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", type=_int_list, default=None, help="comma list of M (rows of x)")
    p.add_argument("--shapes", type=_shapes, default=None, help="comma list of KxN")
    p.add_argument("--kernels", type=_kernels, default=DEFAULT_KERNELS,
                   help=f"comma list of {', '.join(KERNELS)} ('gemm_' optional)")
    p.add_argument("--quick", action="store_true", help="one shape, 6 values of M")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="activation dtype")
    p.add_argument("--group", type=int, default=128, help="int4 group size")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50, help="timed calls per case (fewer only "
                   "when a case would take over --case-cap-s)")
    p.add_argument("--case-cap-s", type=float, default=2.0)
    p.add_argument("--budget-s", type=float, default=300.0,
                   help="stop starting new cases after this many seconds; the report is still "
                        "written, cases not reached are marked skipped")
    p.add_argument("--no-sleep", action="store_true",
                   help="no spin kernel before the timed call (then host launch gaps count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "bench" / "results"), help="report folder")
    a = p.parse_args(argv)
    if a.m is None:
        a.m = QUICK_M if a.quick else M_SWEEP
    if a.shapes is None:
        a.shapes = QUICK_SHAPES if a.quick else SHAPES
    if not a.m or min(a.m) < 1 or not a.shapes:
        p.error("--m and --shapes must name at least one positive value")
    a.m = sorted(set(a.m))
    a.iters = max(a.iters, 1)
    return a


# ---- weights and references -------------------------------------------------------------------

@dataclass
class Weights:
    fmt: str
    packed: object                # canonical CPU PackedInt4 / PackedInt8, for the CPU twins
    qweight: torch.Tensor         # CUDA layout, on the GPU
    scales: torch.Tensor
    zeros: torch.Tensor | None
    ref: torch.Tensor             # the twin's dequantized weight, float32 (n, k), on the GPU
    nbytes: int                   # bytes the op must read: qweight + scales (+ zeros)


def make_weights(fmt: str, n: int, k: int, group: int, gen: torch.Generator) -> Weights:
    """Random codes and positive scales (~0.01), packed on the CPU as the brief's API says."""
    if fmt in ("w4", "w4zp"):
        _, k_pad, g = formats.int4_padding(n, k, group)
        groups = k_pad // g
        codes = torch.randint(0, 16, (n, k), dtype=torch.uint8, generator=gen)
        scales = 0.005 + 0.01 * torch.rand(n, groups, generator=gen)
        zeros = (torch.randint(0, 16, (n, groups), dtype=torch.uint8, generator=gen)
                 if fmt == "w4zp" else None)
        p = formats.pack_int4(codes, scales, zeros, group)
        qweight = formats.to_cuda_int4(p.qweight).cuda()
        zeros_d = p.zeros.cuda() if p.zeros is not None else None
        ref = ref_dequant.dequant_w4(p.qweight, p.scales, p.zeros, n, k)
    elif fmt == "w8":
        codes = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen)
        scales = 0.005 + 0.01 * torch.rand(n, generator=gen)
        p = formats.pack_int8(codes, scales)
        qweight = formats.to_cuda_int8(p.qweight).cuda()
        zeros_d = None
        ref = ref_dequant.dequant_w8(p.qweight, p.scales, n, k)
    else:
        raise ValueError(fmt)
    scales_d = p.scales.cuda()
    nbytes = sum(t.numel() * t.element_size() for t in (qweight, scales_d, zeros_d)
                 if t is not None)
    return Weights(fmt, p, qweight, scales_d, zeros_d, ref.cuda(), nbytes)


def op_call(kernel: Kernel, w: Weights, x: torch.Tensor, n: int):
    """A closure that runs the op once (bias None, as in Llama's MLP)."""
    ops = llmaccel.ops
    if kernel.op == "gemm_w4a16":
        return lambda: ops.gemm_w4a16(x, w.qweight, w.scales, w.zeros, None, n)
    if kernel.op == "gemm_w8a16":
        return lambda: ops.gemm_w8a16(x, w.qweight, w.scales, None, n)
    if kernel.op == "gemm_w8a8":
        return lambda: ops.gemm_w8a8(x, w.qweight, w.scales, None, n)
    raise ValueError(kernel.op)


def reference(kernel: Kernel, w: Weights, x: torch.Tensor, n: int) -> torch.Tensor:
    """float32 (m, n) on the GPU: what the op must compute on x."""
    k = x.shape[1]
    p = w.packed
    if n * k <= TWIN_MAX_WEIGHTS:  # the twin itself, on the CPU, float32 in and out
        xf = x.float().cpu()
        if kernel.op == "gemm_w4a16":
            y = ref_gemm.gemm_w4a16(xf, p.qweight, p.scales, p.zeros, None, n)
        elif kernel.op == "gemm_w8a16":
            y = ref_gemm.gemm_w8a16(xf, p.qweight, p.scales, None, n)
        else:
            y = ref_gemm.gemm_w8a8(xf, p.qweight, p.scales, None, n)
        return y.float().cuda()
    if kernel.op == "gemm_w8a8":
        # The twin's activation quantization (per token over all of K: one block of k_pad),
        # dequantized; then sx*s*sum(xq*q) is a float32 product of integers and scales.
        xq, sx, _ = ref_quant.quantize_act_int8(x.float().cpu(), p.k_pad)
        xin = (xq[:, :k].float() * sx).cuda()
    else:
        xin = x.float()
    return xin @ w.ref.t()


def cuda_path(op: str, m: int) -> str:
    """The op's internal path at M rows (llmaccel.ops.cuda_path, or llmaccel.ops.gemm's), or
    '?' when llmaccel cannot say."""
    fn = (getattr(llmaccel.ops, "cuda_path", None)
          or getattr(importlib.import_module("llmaccel.ops.gemm"), "cuda_path", None))
    if fn is None:
        return "?"
    try:
        return str(fn(op, m))
    except Exception:  # noqa: BLE001 - a report column, never a reason to stop
        return "?"


def check_ms(op: str, ms: list[int]) -> list[int]:
    """M values to check: 1, 37 (odd), max-1 (a ragged last tile) and the largest M of each
    path, since each path is separate code that can be wrong on its own."""
    chosen = {1, 37}
    if max(ms) > 64:
        chosen.add(max(ms) - 1)
    largest: dict[str, int] = {}
    for m in ms:
        path = cuda_path(op, m)
        largest[path] = max(largest.get(path, 0), m)
    return sorted(chosen | set(largest.values()))


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(out.float() - ref) / torch.linalg.vector_norm(ref))


def check(kernel: Kernel, w: Weights, k: int, n: int, m: int, dtype: torch.dtype) -> dict:
    """One correctness case on fresh random x: relative Frobenius error, NaN and shape checks."""
    res = {"kernel": kernel.name, "k": k, "n": n, "m": m, "path": cuda_path(kernel.op, m),
           "err": None, "ok": False, "note": "", "fatal": False}
    try:
        x = torch.randn(m, k, dtype=dtype, device="cuda")
        ref = reference(kernel, w, x, n)
        fn = op_call(kernel, w, x, n)
        # Poison: the NaN block goes back to the caching allocator, which hands it to the op's
        # output; any element the kernel does not write stays NaN.
        torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
        out = fn()
        torch.cuda.synchronize()
        if tuple(out.shape) != (m, n) or out.dtype != dtype:
            res["note"] = f"output {tuple(out.shape)} {out.dtype}, expected {(m, n)} {dtype}"
            return res
        finite = bool(torch.isfinite(out).all())
        res["err"] = rel_err(out, ref)
        res["ok"] = finite and res["err"] <= TOL  # NaN err compares False
        if not finite:
            res["note"] = f"{int((~torch.isfinite(out)).sum())} non-finite outputs"
        elif not res["ok"]:
            res["note"] = f"error {res['err']:.2e} > {TOL:g}"
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        res["note"] = err_note(e)
        res["fatal"] = context_lost(e)  # the caller records the check, then stops the run
    return res


def err_note(e: BaseException) -> str:
    """'Type: first line of the message', short enough for a table cell."""
    lines = str(e).splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:200]


def context_lost(e: BaseException) -> bool:
    """A sticky CUDA error (illegal address, launch failure): every later call fails too."""
    s = f"{type(e).__name__} {e}".lower()
    return any(t in s for t in ("illegal memory", "illegal address", "unspecified launch",
                                "device-side assert", "acceleratorerror", "misaligned address"))


# ---- timing -----------------------------------------------------------------------------------

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


# ---- rows -------------------------------------------------------------------------------------

def new_row(kernel: str, k: int, n: int, label: str, m: int, dtype: str, path: str,
            weight_bytes: int, status: str = "ok", note: str = "") -> dict:
    return {"kernel": kernel, "k": k, "n": n, "shape": label, "m": m, "dtype": dtype,
            "path": path, "weight_bytes": weight_bytes, "status": status, "note": note,
            "time_s": None, "p10_s": None, "p90_s": None, "iters": 0}


def finish_rows(rows: list[dict], hbm_gbps: float) -> None:
    """GB/s, % HBM, TFLOP/s and speedups vs the F.linear baselines of the same (K, N, M)."""
    base: dict[tuple, dict[str, float]] = {}
    for r in rows:
        if r["kernel"].startswith("linear_") and r["time_s"]:
            base.setdefault((r["k"], r["n"], r["m"]), {})[r["kernel"]] = r["time_s"]
    for r in rows:
        t = r["time_s"]
        r.update(gbps=None, pct_hbm=None, tflops=None, speedup_bf16=None, speedup_fp16=None)
        if not t:
            continue
        r["gbps"] = r["weight_bytes"] / t / 1e9
        r["pct_hbm"] = 100.0 * r["gbps"] / hbm_gbps if hbm_gbps else None
        r["tflops"] = 2.0 * r["m"] * r["n"] * r["k"] / t / 1e12
        b = base.get((r["k"], r["n"], r["m"]), {})
        if "linear_bf16" in b:
            r["speedup_bf16"] = b["linear_bf16"] / t
        if "linear_fp16" in b:
            r["speedup_fp16"] = b["linear_fp16"] / t


# ---- targets ----------------------------------------------------------------------------------

BIG = 1 << 62
# label, kernel, M range (inclusive), metric, goal
TARGETS = [
    ("w4a16 g{g} M=1: ≥85% HBM", "gemm_w4a16", (1, 1), "pct_hbm", 85.0),
    ("w4a16 g{g} M=1: ≥3.5× bf16", "gemm_w4a16", (1, 1), "speedup_bf16", 3.5),
    ("w4a16 M=2..16: ≥3.5× bf16", "gemm_w4a16", (2, 16), "speedup_bf16", 3.5),
    ("w4a16 M=32: ≥3.0× bf16", "gemm_w4a16", (32, 32), "speedup_bf16", 3.0),
    ("w4a16 M=64: ≥2.0× bf16", "gemm_w4a16", (64, 64), "speedup_bf16", 2.0),
    ("w4a16 all M≤4096: ≥0.95× bf16", "gemm_w4a16", (1, 4096), "speedup_bf16", 0.95),
    ("w8a16 M=1: ≥1.85× bf16", "gemm_w8a16", (1, 1), "speedup_bf16", 1.85),
    ("w8a8 M≥2048: ≥1.6× bf16", "gemm_w8a8", (2048, BIG), "speedup_bf16", 1.6),
]


def eval_cell(rows: list[dict], kernel: str, k: int, n: int, m_range: tuple[int, int],
              metric: str, goal: float) -> dict:
    """Worst case of one target on one shape: PASS / MISS, FAIL (the kernel failed its check
    or errored), SKIP (in the sweep but not timed), '-' (no such M in the sweep)."""
    lo, hi = m_range
    sel = [r for r in rows
           if (r["kernel"], r["k"], r["n"]) == (kernel, k, n) and lo <= r["m"] <= hi]
    if not sel:
        return {"status": "-", "value": None, "m": None}
    bad = [r for r in sel if r["status"] in ("fail", "error")]
    if bad:
        return {"status": "FAIL", "value": None, "m": bad[0]["m"], "note": bad[0]["note"]}
    timed = [r for r in sel if r.get(metric) is not None]
    if not timed:
        return {"status": "SKIP", "value": None, "m": None}
    worst = min(timed, key=lambda r: r[metric])
    return {"status": "PASS" if worst[metric] >= goal else "MISS", "value": worst[metric],
            "m": worst["m"], "partial": len(timed) < len(sel)}


def evaluate_targets(rows: list[dict], shapes: list[tuple], group: int) -> list[dict]:
    """One entry per target: a cell per shape and an overall status over the issue's shapes
    (over all shapes when the sweep has none of them)."""
    issue = ([(k, n) for k, n, _ in shapes if (k, n) in ISSUE_SHAPES]
             or [(k, n) for k, n, _ in shapes])
    out = []
    for label, kernel, m_range, metric, goal in TARGETS:
        cells = {f"{k}x{n}": eval_cell(rows, kernel, k, n, m_range, metric, goal)
                 for k, n, _ in shapes}
        st = [cells[f"{k}x{n}"]["status"] for k, n in issue]
        st = [s for s in st if s != "-"]
        if not st:
            overall = "-"
        elif "FAIL" in st:
            overall = "FAIL"
        elif "MISS" in st:
            overall = "MISS"
        elif all(s == "PASS" for s in st):
            overall = "PASS"
        elif "PASS" in st:
            overall = "PART"  # some issue shapes pass, the others were not timed
        else:
            overall = "SKIP"
        out.append({"target": label.format(g=group), "kernel": kernel, "m_range": list(m_range),
                    "metric": metric, "goal": goal, "cells": cells, "overall": overall})
    return out


# ---- formatting -------------------------------------------------------------------------------

def fmt_us(t: float | None) -> str:
    if t is None:
        return "-"
    us = t * 1e6
    return f"{us:.2f}" if us < 100 else f"{us:.1f}" if us < 1e4 else f"{us:.0f}"


def _v(v, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def short(kernel: str) -> str:
    return kernel.removeprefix("gemm_")


def row_line(r: dict) -> str:
    """One progress line per timed case."""
    if r["status"] != "ok":
        return f"  M={r['m']:<5} {r['kernel']:<14} {r['status'].upper():>10}  {r['note']}"
    return (f"  M={r['m']:<5} {r['kernel']:<14} {fmt_us(r['time_s']):>9} µs "
            f"{_v(r['gbps'], '{:7.0f}')} GB/s {_v(r['pct_hbm'], '{:5.1f}')}% "
            f"{_v(r['tflops'], '{:7.1f}')} TF/s  ×bf16 {_v(r['speedup_bf16'], '{:5.2f}')}"
            + (f"  ×fp16 {_v(r['speedup_fp16'], '{:5.2f}')}" if r["speedup_fp16"] else "")
            + f"  {r['path']}")


def _cell_text(c: dict, metric: str) -> str:
    if c["value"] is None:
        return c["status"] + (f" @M={c['m']}" if c.get("m") else "")
    v = f"{c['value']:.1f}%" if metric == "pct_hbm" else f"{c['value']:.2f}×"
    return f"{c['status']} {v} @M={c['m']}" + ("+" if c.get("partial") else "")


def targets_table(targets: list[dict], shapes: list[tuple]) -> list[str]:
    heads = [f"{k}→{n}" + ("*" if (k, n) in ISSUE_SHAPES else "") for k, n, _ in shapes]
    lines = ["| target | " + " | ".join(heads) + " | overall |",
             "|---|" + "---|" * len(heads) + "---|"]
    for t in targets:
        cells = [_cell_text(t["cells"][f"{k}x{n}"], t["metric"]) for k, n, _ in shapes]
        lines.append(f"| {t['target']} | " + " | ".join(cells) + f" | **{t['overall']}** |")
    return lines


def compact_table(rows: list[dict], k: int, n: int, kernels: list[str], dtype: str) -> list[str]:
    """One line per M: F.linear time, then each kernel's time and speedup vs bf16."""
    base = ["linear_bf16"] + (["linear_fp16"] if dtype == "fp16" else [])
    by = {(r["kernel"], r["m"]): r for r in rows if (r["k"], r["n"]) == (k, n)}
    ms = sorted({r["m"] for r in rows if (r["k"], r["n"]) == (k, n)})
    head = (f"{'M':>5} |" + "".join(f"{b[7:] + ' µs':>10}" for b in base) + " |"
            + " |".join(f"{short(kn) + ' µs':>15}{'×bf16':>7}" for kn in kernels))
    lines = [head]
    for m in ms:
        cells = []
        for kn in kernels:
            r = by.get((kn, m))
            if r is None or r["status"] != "ok" or r["time_s"] is None:
                word = "-" if r is None else {"ok": "-"}.get(r["status"], r["status"].upper())
                cells.append(f"{word:>15}{'':>7}")
            else:
                cells.append(f"{fmt_us(r['time_s']):>15}{_v(r['speedup_bf16'], '{:.2f}'):>7}")
        bl = "".join(f"{fmt_us(by[(b, m)]['time_s']) if (b, m) in by else '-':>10}" for b in base)
        lines.append(f"{m:>5} |{bl} |" + " |".join(cells))
    return lines


def path_summary(rows: list[dict], k: int, n: int, kernels: list[str]) -> str:
    """'w4a16: 1-64 wo-mma, 128-4096 dequant+cublas; ...' (runs of M with one path)."""
    parts = []
    for kn in kernels:
        ms = sorted((r["m"], r["path"]) for r in rows
                    if (r["kernel"], r["k"], r["n"]) == (kn, k, n))
        runs: list[list] = []
        for m, path in ms:
            if runs and runs[-1][2] == path:
                runs[-1][1] = m
            else:
                runs.append([m, m, path])
        parts.append(f"{short(kn)}: " + ", ".join(
            (f"{a}" if a == b else f"{a}-{b}") + f" {p}" for a, b, p in runs))
    return "; ".join(parts)


def checks_summary(checks: list[dict]) -> str:
    if not checks:
        return "correctness: no checks ran"
    ok = [c for c in checks if c["ok"]]
    errs = [c for c in checks if c["err"] is not None and c["err"] == c["err"]]
    worst = max(errs, key=lambda c: c["err"], default=None)
    s = f"correctness: {len(ok)}/{len(checks)} ok (tol {TOL:g})"
    if worst:
        s += (f", worst {worst['err']:.2e} {short(worst['kernel'])} {worst['k']}→{worst['n']} "
              f"M={worst['m']}")
    return s


def summary_lines(doc: dict) -> list[str]:
    """The short block printed last (the stdout tail is what comes back from a GPU run)."""
    meta, ceil, rows, args = doc["meta"], doc["ceilings"], doc["rows"], doc["meta"]["args"]
    shapes = [tuple(s) for s in args["shapes"]]
    kernels = args["kernels"]
    out = [f"=== summary: bench_gpu  {meta.get('gpu')}  x: {args['dtype']}  "
           f"{meta.get('date')}  elapsed {doc.get('elapsed_s', 0):.0f} s ===",
           f"ceilings: HBM {_v(ceil.get('hbm_gbps'), '{:.0f}')} GB/s (copy "
           f"{_v(ceil.get('hbm_copy_gbps'), '{:.0f}')}, read "
           f"{_v(ceil.get('hbm_read_gbps'), '{:.0f}')})"
           f", bf16 matmul {_v(ceil.get('bf16_mma_tflops'), '{:.0f}')} TFLOP/s",
           checks_summary(doc["checks"])]
    failed: dict[tuple, list[dict]] = {}
    for c in doc["checks"]:
        failed.setdefault((c["kernel"], c["k"], c["n"]), []).append(c)
    for (kernel, k, n), cs in failed.items():
        bad = [c for c in cs if not c["ok"]]
        if bad:  # one line per kernel and shape: how many, and the first
            out.append(f"  FAIL {kernel} {k}→{n}: {len(bad)}/{len(cs)} checks, first "
                       f"M={bad[0]['m']} ({bad[0]['path']}): {bad[0]['note']}")
    if doc.get("aborted"):
        out.append(f"ABORTED: {doc['aborted']}")
    for k, n, label in shapes:
        if not any((r["k"], r["n"]) == (k, n) for r in rows):
            continue
        out.append(f"\n{k}→{n} ({label}): median µs, cold L2; ×bf16 = F.linear bf16 time / time")
        out += compact_table(rows, k, n, kernels, args["dtype"])
        out.append("paths: " + path_summary(rows, k, n, kernels))
    out.append("\ntargets (cell: worst case over the M range; * = issue shape, overall over those)")
    out += targets_table(doc["targets"], shapes)
    n_pass = sum(t["overall"] == "PASS" for t in doc["targets"])
    out.append(f"{n_pass}/{len(doc['targets'])} targets PASS")
    return out


def markdown(doc: dict) -> str:
    meta, ceil, rows = doc["meta"], doc["ceilings"], doc["rows"]
    shapes = [tuple(s) for s in meta["args"]["shapes"]]
    md = [f"# GPU benchmark {meta.get('date')} — {meta.get('gpu')}", "",
          "Method: see bench/gpu/bench_gpu.py's docstring (CUDA events, cold L2, median; "
          "F.linear in the same run).", "", "| | |", "|---|---|"]
    for key in ("gpu", "capability", "sm_count", "l2_bytes", "memory_bytes", "driver",
                "nvidia_smi_state", "torch", "torch_cuda", "llmaccel_cuda_info", "llmaccel_file",
                "git", "python", "host", "command", "elapsed_s"):
        v = doc.get(key) if key == "elapsed_s" else meta.get(key)
        md.append(f"| {key} | {str(v).replace('|', '/')} |")
    md += ["", "## Ceilings", "", f"- {ceil.get('method', '')}",
           f"- HBM: copy {_v(ceil.get('hbm_copy_gbps'), '{:.0f}')} GB/s, read "
           f"{_v(ceil.get('hbm_read_gbps'), '{:.0f}')} GB/s → ceiling "
           f"{_v(ceil.get('hbm_gbps'), '{:.0f}')} GB/s",
           f"- bf16 matmul 8192³: {_v(ceil.get('bf16_mma_tflops'), '{:.0f}')} TFLOP/s", "",
           "## Summary", "", "```", *summary_lines(doc), "```", "",
           "## Correctness", "", "| kernel | shape | M | path | rel. error | result |",
           "|---|---|---|---|---|---|"]
    for c in doc["checks"]:
        md.append(f"| {c['kernel']} | {c['k']}→{c['n']} | {c['m']} | {c['path']} | "
                  f"{_v(c['err'], '{:.2e}')} | {'ok' if c['ok'] else 'FAIL ' + c['note']} |")
    md += ["", "## All cases", ""]
    for k, n, label in shapes:
        sel = [r for r in rows if (r["k"], r["n"]) == (k, n)]
        if not sel:
            continue
        md += [f"### {k}→{n} ({label})", "",
               "| M | kernel | path | µs | p10–p90 µs | iters | weight GB/s | % HBM | TFLOP/s "
               "| × bf16 | × fp16 | note |", "|" + "---|" * 12]
        for r in sel:
            md.append(f"| {r['m']} | {r['kernel']} | {r['path']} | {fmt_us(r['time_s'])} | "
                      f"{fmt_us(r['p10_s'])}–{fmt_us(r['p90_s'])} | {r['iters']} | "
                      f"{_v(r['gbps'], '{:.0f}')} | {_v(r['pct_hbm'], '{:.1f}')} | "
                      f"{_v(r['tflops'], '{:.1f}')} | {_v(r['speedup_bf16'], '{:.2f}')} | "
                      f"{_v(r['speedup_fp16'], '{:.2f}')} | "
                      f"{(r['status'] if r['status'] != 'ok' else '') + ' ' + r['note']} |")
        md.append("")
    return "\n".join(md) + "\n"


def write_reports(out_dir: str, doc: dict) -> tuple[Path, Path]:
    """<date>_gpu_<gpu>.json and .md, each written atomically (temp file + os.replace)."""
    stem = Path(out_dir) / f"{doc['meta']['date']}_gpu_{doc['meta']['gpu_short']}"
    js = atomic_write(stem.with_suffix(".json"),
                      json.dumps(doc, indent=1, default=str, allow_nan=True) + "\n")
    md = atomic_write(stem.with_suffix(".md"), markdown(doc))
    return js, md


# ---- machine facts ----------------------------------------------------------------------------

def gpu_short_name(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' → 'h100'; anything unrecognised → its name, lower snake case."""
    m = re.search(r"\b([A-Z]{1,3}\d{2,4}[A-Z]?)\b", name.upper().replace("NVIDIA", " "))
    if m:
        return m.group(1).lower()
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "gpu"


def _run(cmd: list[str], cwd=None) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=cwd)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def collect_meta(args: argparse.Namespace) -> dict:
    props = torch.cuda.get_device_properties(0)
    try:
        cuda_info = llmaccel.cuda_info()
    except Exception as e:  # noqa: BLE001
        cuda_info = f"error: {e}"
    head = _run(["git", "rev-parse", "HEAD"], cwd=REPO)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO)
    return {
        "date": datetime.date.today().isoformat(),
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "gpu": props.name, "gpu_short": gpu_short_name(props.name),
        "capability": f"{props.major}.{props.minor}",
        "sm_count": props.multi_processor_count,
        "l2_bytes": getattr(props, "L2_cache_size", None),
        "memory_bytes": props.total_memory,
        "driver": _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]),
        "nvidia_smi_state": _run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.max.sm,clocks.mem,"
                                  "power.draw,power.limit,temperature.gpu,utilization.gpu",
                                  "--format=csv,noheader"]),
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "bf16_reduced_precision_reduction":
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
        "llmaccel": getattr(llmaccel, "__version__", "?"), "llmaccel_file": llmaccel.__file__,
        "llmaccel_cuda_info": cuda_info,
        "git": None if head is None else head[:12] + ("+dirty" if dirty else ""),
        "python": platform.python_version(), "host": socket.gethostname(),
        "args": {**vars(args), "shapes": [list(s) for s in args.shapes]},
    }


# ---- the run ----------------------------------------------------------------------------------

def time_row(timer: ColdTimer, row: dict, fn) -> None:
    try:
        row.update(timer(fn))
    except Exception as e:  # noqa: BLE001 - one case failing must not stop the sweep
        if context_lost(e):
            raise RuntimeError(f"CUDA context lost timing {row['kernel']} {row['k']}→{row['n']} "
                               f"M={row['m']}: {err_note(e)}") from e
        row.update(status="error", note=err_note(e))


def baselines_for(args) -> list[str]:
    return ["linear_bf16"] + (["linear_fp16"] if args.dtype == "fp16" else [])


def run_shape(args, k: int, n: int, label: str, timer: ColdTimer, ceilings: dict,
              rows: list[dict], checks: list[dict], deadline: float, gen: torch.Generator) -> None:
    dtype = DTYPES[args.dtype]
    kernels = [KERNELS[name] for name in args.kernels]
    baselines = baselines_for(args)
    t0 = time.perf_counter()
    ws = {fmt: make_weights(fmt, n, k, args.group, gen)
          for fmt in dict.fromkeys(kn.fmt for kn in kernels)}
    # The baseline computes the same function: F.linear with the dequantized weight.
    w_ref = ws["w4"].ref if "w4" in ws else next(iter(ws.values())).ref if ws else \
        torch.randn(n, k, device="cuda") * 0.02
    w_lin = {"linear_bf16": w_ref.to(torch.bfloat16)}
    if "linear_fp16" in baselines:
        w_lin["linear_fp16"] = w_ref.to(torch.float16)
    print(f"  weights ready in {time.perf_counter() - t0:.1f} s: " + ", ".join(
        f"{f} {w.nbytes / 1e6:.1f} MB" for f, w in ws.items()) + f", bf16 {n * k * 2 / 1e6:.1f} MB")

    failed: dict[str, str] = {}
    for kn in kernels:
        for m in check_ms(kn.op, args.m):
            c = check(kn, ws[kn.fmt], k, n, m, dtype)
            checks.append(c)
            print(f"  check {kn.name:<14} M={m:<5} {c['path']:<16} err "
                  f"{_v(c['err'], '{:.2e}')}  {'ok' if c['ok'] else 'FAIL ' + c['note']}")
            if not c["ok"] and kn.name not in failed:
                failed[kn.name] = f"check failed at M={m}: {c['note']}"
            if c["fatal"]:
                raise RuntimeError(f"CUDA context lost in the check of {kn.name} {k}→{n} "
                                   f"M={m}: {c['note']}")

    for m in args.m:
        names = baselines + [kn.name for kn in kernels]
        if time.perf_counter() > deadline:
            for name in names:  # a kernel that failed its check stays failed
                op = KERNELS[name].op if name in KERNELS else None
                rows.append(new_row(name, k, n, label, m, args.dtype,
                                    cuda_path(op, m) if op else "cublas", 0,
                                    "fail" if name in failed else "skipped",
                                    failed.get(name, "time budget spent")))
            continue
        x = torch.randn(m, k, dtype=dtype, device="cuda")
        case = []
        for b in baselines:
            xb = x.to(torch.bfloat16 if b == "linear_bf16" else torch.float16)
            w = w_lin[b]
            row = new_row(b, k, n, label, m, args.dtype, "cublas", n * k * 2)
            time_row(timer, row, lambda xb=xb, w=w: F.linear(xb, w))
            case.append(row)
        for kn in kernels:
            w = ws[kn.fmt]
            row = new_row(kn.name, k, n, label, m, args.dtype, cuda_path(kn.op, m), w.nbytes)
            if kn.name in failed:
                row.update(status="fail", note=failed[kn.name])
            else:
                time_row(timer, row, op_call(kn, w, x, n))
            case.append(row)
        finish_rows(case, ceilings.get("hbm_gbps") or 0.0)
        for row in case:
            print(row_line(row))
        rows += case
    del ws, w_lin, w_ref
    torch.cuda.empty_cache()


def estimate_s(args, ceilings: dict, flush_bytes: int) -> float:
    """Rough wall time of the sweep: setup per shape plus every timed call, flush and spin."""
    hbm = (ceilings.get("hbm_gbps") or 2000.0) * 1e9
    mma = (ceilings.get("bf16_mma_tflops") or 500.0) * 1e12
    per_call_fixed = flush_bytes / hbm + 80e-6 + 60e-6  # flush, spin, host
    total = 0.0
    for k, n, _ in args.shapes:
        total += 3.0 + 1.5 * n * k / 4e7 * len({KERNELS[kn].fmt for kn in args.kernels})
        for m in args.m:
            t = max(n * k * 2 / hbm, 2 * m * n * k / mma)
            total += (1 + len(args.kernels)) * (args.warmup + args.iters + 1) * (t + per_call_fixed)
    return total


def main(argv=None) -> int:
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device visible to torch", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    deadline = t_start + args.budget_s
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    # The float32 references must be true float32 products, not TF32.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    meta = collect_meta(args)
    print(f"bench_gpu: {meta['gpu']} ({meta['sm_count']} SMs, L2 {meta['l2_bytes']} B), driver "
          f"{meta['driver']}, torch {meta['torch']} cuda {meta['torch_cuda']}, llmaccel "
          f"{meta['llmaccel_cuda_info']} from {meta['llmaccel_file']}")
    print(f"  state: {meta['nvidia_smi_state']}")
    doc = {"meta": meta, "ceilings": {}, "checks": [], "rows": [], "targets": [],
           "elapsed_s": 0.0, "aborted": None}
    l2 = meta["l2_bytes"] or 0
    flush_bytes = 2 * l2 if l2 > 0 else 256 << 20
    try:
        doc["ceilings"] = measure_ceilings()
        c = doc["ceilings"]
        print(f"ceilings: HBM copy {c['hbm_copy_gbps']:.0f} GB/s, read {c['hbm_read_gbps']:.0f} "
              f"GB/s; bf16 matmul {c['bf16_mma_tflops']:.0f} TFLOP/s")
        timer = ColdTimer(flush_bytes, args.warmup, args.iters, args.case_cap_s,
                          not args.no_sleep)
        print(f"plan: {len(args.shapes)} shapes x {len(args.m)} M x {len(args.kernels)} kernels "
              f"+ F.linear, {args.iters} timed calls each (flush {flush_bytes >> 20} MiB); "
              f"estimate ~{estimate_s(args, c, flush_bytes):.0f} s, budget {args.budget_s:.0f} s")
        t_shapes = time.perf_counter()
        for i, (k, n, label) in enumerate(args.shapes):
            t = time.perf_counter() - t_start
            print(f"\n## {k}→{n} ({label}), {args.dtype}  [t={t:.0f} s]")
            if time.perf_counter() > deadline:
                print("  skipped: time budget spent")
                for m in args.m:
                    for name in baselines_for(args) + args.kernels:
                        doc["rows"].append(new_row(name, k, n, label, m, args.dtype, "-", 0,
                                                   "skipped", "time budget spent"))
                continue
            run_shape(args, k, n, label, timer, c, doc["rows"], doc["checks"], deadline, gen)
            now = time.perf_counter()
            per_shape = (now - t_shapes) / (i + 1)
            print(f"  elapsed {now - t_start:.0f} s; projected total "
                  f"{now - t_start + per_shape * (len(args.shapes) - i - 1):.0f} s")
            _finish_doc(doc, args, t_start)
            write_reports(args.out, doc)  # partial results survive a kill
    except Exception as e:  # noqa: BLE001 - still write what was measured
        traceback.print_exc()
        doc["aborted"] = err_note(e)
    _finish_doc(doc, args, t_start)
    js, md = write_reports(args.out, doc)
    print()
    print("\n".join(summary_lines(doc)))
    print(f"wrote {js} and {md.name}")
    bad = doc["aborted"] or any(not c["ok"] for c in doc["checks"]) or \
        any(r["status"] == "error" for r in doc["rows"])
    return 1 if bad else 0


def _finish_doc(doc: dict, args, t_start: float) -> None:
    finish_rows(doc["rows"], doc["ceilings"].get("hbm_gbps") or 0.0)
    doc["targets"] = evaluate_targets(doc["rows"], args.shapes, args.group)
    doc["elapsed_s"] = round(time.perf_counter() - t_start, 1)


if __name__ == "__main__":
    sys.exit(main())
