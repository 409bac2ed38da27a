#!/usr/bin/env python3
"""gemm_w4a16's two decode kernels (M <= 16) against each other and bf16 F.linear, one process.

    python3 bench/gpu/decode_compare.py --out bench/results/gpu_run
    python3 bench/gpu/decode_compare.py --m 1,8 --shapes 4096x14336 --group 64 --dtype fp16

kslice: each warp keeps a fixed K slice and its x fragments in registers (gemm_decode_kslice.cuh);
stream: the weight stream split evenly over all warps (gemm_decode.cuh). The kernel is chosen per
call by LLMACCEL_DECODE_KERNEL (set here between cases). Same method as bench_gpu.py: cold L2,
CUDA events, median; each case is first checked against the dequantized weight in float32
(relative error <= 2e-2) and the two kernels against each other. Writes
<date>_gpu_<gpu>_decode_compare.{json,md} to --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_timing import ColdTimer, measure_ceilings  # noqa: E402

from llmaccel import formats, ops  # noqa: E402
from llmaccel.files import atomic_write  # noqa: E402
from llmaccel.reference import dequant as ref_dequant  # noqa: E402

KERNELS = ("kslice", "stream")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--m", default="1,2,4,8,12,16")
    p.add_argument("--shapes", default="4096x14336,14336x4096,8192x8192")
    p.add_argument("--group", type=int, default=128)
    p.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    a = p.parse_args()
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float16
    ms = [int(v) for v in a.m.split(",")]
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")]
    ceil = measure_ceilings()
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    timer = ColdTimer(2 * l2, warmup=10, iters=a.iters, case_cap_s=2.0, use_sleep=True)
    rows = []
    for k, n in shapes:
        g = torch.Generator().manual_seed(k * 7 + n)
        codes = torch.randint(0, 16, (n, k), generator=g)
        scales = torch.rand(n, -(-k // a.group), generator=g) * 0.01 + 0.005
        pw = formats.pack_int4(codes, scales, None, a.group)
        w_dq = ref_dequant.dequant_w4(pw.qweight, pw.scales, pw.zeros, n, k).cuda()  # float32
        qw, sc = formats.to_cuda_int4(pw.qweight).cuda(), pw.scales.cuda()
        w16 = w_dq.to(dtype)
        wbytes = qw.numel() * qw.element_size() + sc.numel() * 4
        for m in ms:
            x = torch.randn(m, k, generator=g).to(dtype).cuda()
            ref = (x.float() @ w_dq.t())
            row = {"k": k, "n": n, "m": m, "group": a.group, "dtype": a.dtype}
            outs = {}
            for kern in KERNELS:
                os.environ["LLMACCEL_DECODE_KERNEL"] = kern
                y = ops.gemm_w4a16(x, qw, sc, None, None, n)
                rel = ((y.float() - ref).norm() / ref.norm()).item()
                outs[kern] = y
                row[f"{kern}_rel"] = rel
                if not rel <= 2e-2:
                    row[f"{kern}_us"] = None
                    continue
                t = timer(lambda: ops.gemm_w4a16(x, qw, sc, None, None, n))
                row[f"{kern}_us"] = t["time_s"] * 1e6
            os.environ.pop("LLMACCEL_DECODE_KERNEL", None)
            diff = outs["kslice"].float() - outs["stream"].float()
            row["kernels_max_diff"] = diff.abs().max().item()
            row["linear_us"] = timer(lambda: F.linear(x, w16))["time_s"] * 1e6
            for kern in KERNELS:
                us = row.get(f"{kern}_us")
                row[f"{kern}_x"] = row["linear_us"] / us if us else None
                row[f"{kern}_hbm"] = wbytes / (us * 1e-6) / (ceil["hbm_gbps"] * 1e9) if us else None
            rows.append(row)
            print(f"K{k} N{n} M{m:>2}: linear {row['linear_us']:7.1f} us | " + " | ".join(
                f"{kern} {row[f'{kern}_us'] or float('nan'):6.1f} us {row[f'{kern}_x'] or 0:4.2f}x "
                f"{100 * (row[f'{kern}_hbm'] or 0):4.1f}% HBM rel {row[f'{kern}_rel']:.1e}"
                for kern in KERNELS) + f" | max diff {row['kernels_max_diff']:.2e}", flush=True)
        del w_dq, w16, qw, sc
        torch.cuda.empty_cache()
    name = re.sub(r"[^a-z0-9]+", "_", torch.cuda.get_device_name(0).lower()).strip("_")
    meta = {"date": dt.datetime.now().isoformat(timespec="seconds"),
            "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
            "cuda": torch.version.cuda, "ceilings": ceil, "args": vars(a)}
    stem = Path(a.out) / f"{dt.date.today().isoformat()}_gpu_{name}_decode_compare"
    atomic_write(stem.with_suffix(".json"), json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# gemm_w4a16 decode kernels, {meta['gpu']}, {meta['date']}", "",
             f"torch {meta['torch']}, CUDA {meta['cuda']}; HBM ceiling "
             f"{ceil['hbm_gbps']:.0f} GB/s; {a.dtype} x, int4 g{a.group} symmetric; cold L2, "
             "median of CUDA-event-timed calls.", "",
             "| K×N | M | F.linear µs | kslice µs | × bf16 | % HBM | stream µs | × bf16 | % HBM |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = []
        for kern in KERNELS:
            us = r.get(f"{kern}_us")
            cells += ([f"{us:.1f}", f"{r[f'{kern}_x']:.2f}", f"{100 * r[f'{kern}_hbm']:.0f}"]
                      if us else ["FAIL", "", ""])
        lines.append(f"| {r['k']}×{r['n']} | {r['m']} | {r['linear_us']:.1f} | "
                     + " | ".join(cells) + " |")
    atomic_write(stem.with_suffix(".md"), "\n".join(lines) + "\n")
    ok = all(r.get(f"{kern}_us") for r in rows for kern in KERNELS)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
