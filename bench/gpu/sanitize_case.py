#!/usr/bin/env python3
"""Every CUDA op once on small odd shapes, checked against the reference twins: for
compute-sanitizer (seconds, not minutes, even under racecheck).

    compute-sanitizer --tool memcheck --error-exitcode 1 python3 bench/gpu/sanitize_case.py
    compute-sanitizer --tool racecheck --error-exitcode 1 python3 bench/gpu/sanitize_case.py

Run it with PYTORCH_NO_CUDA_MEMORY_CACHING=1 (run.sh does): torch's caching allocator carves
tensors out of large blocks, and memcheck only sees accesses beyond a cudaMalloc, so without it
an out-of-bounds access into a neighbouring tensor goes unnoticed.

K = 200 (not a multiple of the group, 64, nor of 32: the ops pad), N = 72 (not a multiple of
16: a ragged row tile), M in 1, 3, 12, 70, 300 (decode, small odd, ragged tiles); M=3 runs fp16
activations, the rest bf16; M=70 adds a bias. The GEMMs also run at N = 264 for M = 12, 70, 300
(three weight blocks of the wgmma kernels: what their clusters of 2 pair). K = 2080 at
M = 1, 12, 40 (int4) and 40, 300 (int8): the decode kernel's K chunks, rings that wrap; and at
N = 5760, M = 16 its blocks' passes (LLMACCEL_KS_PASS_TRIPS=1).
Inputs are made on the CPU and copied over, so almost every kernel the sanitizer sees is
llmaccel's. Prints one line per case and OK at the end; exits 1 on any mismatch or error.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import torch

import llmaccel
from llmaccel import formats

ref_gemm = importlib.import_module("llmaccel.reference.gemm")
ref_dequant = importlib.import_module("llmaccel.reference.dequant")
ref_quant = importlib.import_module("llmaccel.reference.quant")

TOL = 2e-2
K, N, GROUP = 200, 72, 64
N_WIDE = 264  # gemm_wide: several weight blocks of the wgmma kernels
MS = (1, 3, 12, 70, 300)
FAILS: list[str] = []


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().float().cpu(), ref.detach().float().cpu()
    if out.shape != ref.shape:
        return float("inf")
    return float((out - ref).norm() / ref.norm())


def report(name: str, err: float, extra: str = "") -> None:
    ok = err <= TOL  # NaN compares False
    print(f"{'ok  ' if ok else 'FAIL'} {name:<44} err {err:.2e}{extra}", flush=True)
    if not ok:
        FAILS.append(name)


def case(fn):
    """Runs one case; an exception is a failure of that case (the others still run)."""
    def wrapped(*a):
        name = f"{fn.__name__}{tuple(v for v in a if not isinstance(v, torch.Generator))}"
        try:
            fn(*a)
            torch.cuda.synchronize()  # an asynchronous error surfaces here, at its case
        except Exception:  # noqa: BLE001
            print(f"FAIL {name}: exception", flush=True)
            traceback.print_exc()
            FAILS.append(name)
    return wrapped


def act(m: int, dtype: torch.dtype, gen: torch.Generator, k: int = K) -> torch.Tensor:
    return torch.randn(m, k, generator=gen).to(dtype)


def w4(asym: bool, gen: torch.Generator, k: int = K, group: int = GROUP, n: int = N):
    _, k_pad, g = formats.int4_padding(n, k, group)
    codes = torch.randint(0, 16, (n, k), dtype=torch.uint8, generator=gen)
    scales = 0.005 + 0.01 * torch.rand(n, k_pad // g, generator=gen)
    zeros = (torch.randint(0, 16, (n, k_pad // g), dtype=torch.uint8, generator=gen)
             if asym else None)
    p = formats.pack_int4(codes, scales, zeros, group)
    dev = (formats.to_cuda_int4(p.qweight).cuda(), p.scales.cuda(),
           p.zeros.cuda() if p.zeros is not None else None)
    return p, dev


def w8(gen: torch.Generator, n: int = N, k: int = K):
    codes = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen)
    p = formats.pack_int8(codes, 0.005 + 0.01 * torch.rand(n, generator=gen))
    return p, (formats.to_cuda_int8(p.qweight).cuda(), p.scales.cuda())


def dtype_for(m: int) -> torch.dtype:
    return torch.float16 if m == 3 else torch.bfloat16  # both instantiations, few cases


def bias_for(m: int, gen: torch.Generator) -> torch.Tensor | None:
    return torch.randn(N, generator=gen) if m == 70 else None  # float32 (N,), as the CPU ops


def check_out(name: str, out: torch.Tensor, ref: torch.Tensor, x: torch.Tensor) -> None:
    extra = ""
    if out.dtype != x.dtype:
        extra = f"  (dtype {out.dtype}, expected {x.dtype})"
        FAILS.append(name + " dtype")
    report(name, rel_err(out, ref), extra)


@case
def gemm_w4a16(asym: bool, m: int, gen: torch.Generator) -> None:
    p, (qw, sc, zp) = w4(asym, gen)
    x, bias = act(m, dtype_for(m), gen), bias_for(m, gen)
    out = llmaccel.ops.gemm_w4a16(x.cuda(), qw, sc, zp, None if bias is None else bias.cuda(), N)
    ref = ref_gemm.gemm_w4a16(x.float(), p.qweight, p.scales, p.zeros, bias, N)
    check_out(f"gemm_w4a16 {'asym' if asym else 'sym'} g{GROUP} M={m} {x.dtype}", out, ref, x)


@case
def gemm_w4a16_kchunks(asym: bool, m: int, gen: torch.Generator) -> None:
    """K = 2080 (65 chunks of 32; g128, so the last group is partial): at M <= 16 the decode
    kernel with its K split over blocks (three K chunks, the last one unit long), at M = 40 the
    wgmma kernel, whose 16-slot ring wraps."""
    k = 2080
    p, (qw, sc, zp) = w4(asym, gen, k, 128)
    x = act(m, torch.bfloat16, gen, k)
    out = llmaccel.ops.gemm_w4a16(x.cuda(), qw, sc, zp, None, N)
    ref = ref_gemm.gemm_w4a16(x.float(), p.qweight, p.scales, p.zeros, None, N)
    check_out(f"gemm_w4a16 {'asym' if asym else 'sym'} g128 K={k} M={m} {x.dtype}", out, ref, x)


@case
def gemm_w4a16_kslice_passes(asym: bool, m: int, gen: torch.Generator) -> None:
    """N = 5760, K = 2080 at M = 16: 5 tiles per block of the decode kernel (3 K chunks), and
    LLMACCEL_KS_PASS_TRIPS=1, so that its blocks add their tiles up in two passes (4 and 1 tiles)
    with the consumer warps' named barriers in between; one pass otherwise at this size."""
    k, n = 2080, 5760
    p, (qw, sc, zp) = w4(asym, gen, k, 128, n)
    x = act(m, torch.bfloat16, gen, k)
    os.environ["LLMACCEL_KS_PASS_TRIPS"] = "1"
    try:
        out = llmaccel.ops.gemm_w4a16(x.cuda(), qw, sc, zp, None, n)
    finally:
        del os.environ["LLMACCEL_KS_PASS_TRIPS"]
    ref = ref_gemm.gemm_w4a16(x.float(), p.qweight, p.scales, p.zeros, None, n)
    check_out(f"gemm_w4a16 passes N={n} K={k} M={m} {x.dtype}", out, ref, x)


@case
def gemm_w8_long(op: str, m: int, gen: torch.Generator) -> None:
    """K = 2080 (a partial last stage): the wgmma kernels' rings wrap (33 k blocks of 64 columns
    on 8-16 slots, 17 of 128 on 4), and blocks of <= 64 x rows pad the last copy group."""
    k = 2080
    p, (qw, sc) = w8(gen, N, k)
    x = act(m, torch.bfloat16, gen, k)
    out = getattr(llmaccel.ops, op)(x.cuda(), qw, sc, None, N)
    ref = getattr(ref_gemm, op)(x.float(), p.qweight, p.scales, None, N)
    check_out(f"{op} K={k} M={m} {x.dtype}", out, ref, x)


@case
def gemm_w8(op: str, m: int, gen: torch.Generator) -> None:
    p, (qw, sc) = w8(gen)
    x, bias = act(m, dtype_for(m), gen), bias_for(m, gen)
    out = getattr(llmaccel.ops, op)(x.cuda(), qw, sc, None if bias is None else bias.cuda(), N)
    ref = getattr(ref_gemm, op)(x.float(), p.qweight, p.scales, bias, N)
    check_out(f"{op} M={m} {x.dtype}", out, ref, x)


@case
def gemm_wide(op: str, m: int, gen: torch.Generator) -> None:
    """N = 264: three weight blocks of the wgmma kernels (128 outputs each, the last partial),
    so that LLMACCEL_WGMMA_CLUSTER=2 pairs two and leaves one block of a pair without weights."""
    n = N_WIDE
    x = act(m, torch.bfloat16, gen)
    if op == "gemm_w4a16":
        p, (qw, sc, zp) = w4(True, gen, n=n)
        out = llmaccel.ops.gemm_w4a16(x.cuda(), qw, sc, zp, None, n)
        ref = ref_gemm.gemm_w4a16(x.float(), p.qweight, p.scales, p.zeros, None, n)
    else:
        p, (qw, sc) = w8(gen, n)
        out = getattr(llmaccel.ops, op)(x.cuda(), qw, sc, None, n)
        ref = getattr(ref_gemm, op)(x.float(), p.qweight, p.scales, None, n)
    check_out(f"{op} N={n} M={m} {x.dtype}", out, ref, x)


@case
def dequant_w4(asym: bool, gen: torch.Generator) -> None:
    p, (qw, sc, zp) = w4(asym, gen)
    out = llmaccel.ops.dequant_w4(qw, sc, zp, N, K)
    report(f"dequant_w4 {'asym' if asym else 'sym'} g{GROUP}",
           rel_err(out, ref_dequant.dequant_w4(p.qweight, p.scales, p.zeros, N, K)),
           "" if out.dtype == torch.float32 else f"  (dtype {out.dtype})")


@case
def dequant_w8(gen: torch.Generator) -> None:
    p, (qw, sc) = w8(gen)
    out = llmaccel.ops.dequant_w8(qw, sc, N, K)
    report("dequant_w8", rel_err(out, ref_dequant.dequant_w8(p.qweight, p.scales, N, K)))


@case
def quantize_act_int8(m: int, block: int, gen: torch.Generator) -> None:
    x = act(m, dtype_for(m), gen)
    q, s, qsum = (t.cpu() for t in llmaccel.ops.quantize_act_int8(x.cuda(), block))
    rq, rs, rqsum = ref_quant.quantize_act_int8(x, block)
    name = f"quantize_act_int8 M={m} block={block} {x.dtype}"
    if (q.shape, s.shape, qsum.shape) != (rq.shape, rs.shape, rqsum.shape):
        print(f"FAIL {name}: shapes {tuple(q.shape)} {tuple(s.shape)} {tuple(qsum.shape)}, "
              f"expected {tuple(rq.shape)} {tuple(rs.shape)} {tuple(rqsum.shape)}", flush=True)
        FAILS.append(name)
        return
    nb = s.shape[1]
    deq = (q.float().view(m, nb, -1) * s.unsqueeze(2)).view(m, -1)
    rdeq = (rq.float().view(m, nb, -1) * rs.unsqueeze(2)).view(m, -1)
    off = int(((q.int() - rq.int()).abs() > 1).sum())  # ties may round either way: ±1 allowed
    own_sum = bool((q.int().view(m, nb, -1).sum(2) == qsum).all())  # qsum is q's block sums
    extra = f"  codes off by >1: {off}, qsum consistent: {own_sum}, scale err {rel_err(s, rs):.1e}"
    if off or not own_sum or not rel_err(s, rs) <= 1e-5:
        FAILS.append(name)
    report(name, rel_err(deq, rdeq), extra)


def main() -> int:
    if not torch.cuda.is_available():
        print("sanitize_case: no CUDA device visible to torch", file=sys.stderr)
        return 2
    print(f"sanitize_case: {torch.cuda.get_device_name(0)}, llmaccel {llmaccel.cuda_info()}, "
          f"K={K} N={N} group={GROUP}", flush=True)
    gen = torch.Generator().manual_seed(0)
    for m in MS:
        gemm_w4a16(False, m, gen)
        gemm_w4a16(True, m, gen)
        gemm_w8("gemm_w8a16", m, gen)
        gemm_w8("gemm_w8a8", m, gen)
    for m in (1, 12, 40):  # 40: the wgmma kernel's ring wraps (33 stages, 16 slots)
        gemm_w4a16_kchunks(False, m, gen)
        gemm_w4a16_kchunks(True, m, gen)
    gemm_w4a16_kslice_passes(False, 16, gen)
    gemm_w4a16_kslice_passes(True, 16, gen)
    for m in (40, 300):
        gemm_w8_long("gemm_w8a16", m, gen)
        gemm_w8_long("gemm_w8a8", m, gen)
    for m in (12, 70, 300):
        for op in ("gemm_w4a16", "gemm_w8a16", "gemm_w8a8"):
            gemm_wide(op, m, gen)
    dequant_w4(False, gen)
    dequant_w4(True, gen)
    dequant_w8(gen)
    for m, block in ((3, 64), (70, 32), (300, K)):
        quantize_act_int8(m, block, gen)
    torch.cuda.synchronize()
    if FAILS:
        print(f"MISMATCH: {len(FAILS)} case(s): {', '.join(FAILS)}", flush=True)
        return 1
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
