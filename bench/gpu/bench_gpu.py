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
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import llmaccel
from llmaccel import formats
from llmaccel.ops import cuda_path
from llmaccel.reference import dequant as ref_dequant
from llmaccel.reference import gemm as ref_gemm
from llmaccel.reference import quant as ref_quant

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _gpu_* modules
from _gpu_timing import ColdTimer, measure_ceilings  # noqa: E402
from _gpu_report import (TOL, collect_meta, evaluate_targets, finish_rows, fmt_value,  # noqa: E402
                         new_row, row_line, summary_lines, write_reports)

REPO = Path(__file__).resolve().parents[2]
# (K, N, label): Llama-3-8B MLP gate/up and down projections, and a 70B-class square layer.
SHAPES = [(4096, 14336, "gate/up proj"), (14336, 4096, "down proj"), (8192, 8192, "square")]
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
                  f"{fmt_value(c['err'], '{:.2e}')}  {'ok' if c['ok'] else 'FAIL ' + c['note']}")
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
    meta = collect_meta(args, REPO)
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
