"""Results of bench_gpu.py: rows, the issue's targets as PASS/MISS cells, the printed
summary, and the markdown/JSON reports (written atomically)."""

from __future__ import annotations

import datetime
import json
import platform
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import torch

import llmaccel
from llmaccel.files import atomic_write

TOL = 2e-2  # relative error a kernel may have against its reference and still be timed
ISSUE_SHAPES = {(4096, 14336), (8192, 8192)}  # the shapes the issue names for its targets


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


def fmt_value(v, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def short(kernel: str) -> str:
    return kernel.removeprefix("gemm_")


def row_line(r: dict) -> str:
    """One progress line per timed case."""
    if r["status"] != "ok":
        return f"  M={r['m']:<5} {r['kernel']:<14} {r['status'].upper():>10}  {r['note']}"
    return (f"  M={r['m']:<5} {r['kernel']:<14} {fmt_us(r['time_s']):>9} µs "
            f"{fmt_value(r['gbps'], '{:7.0f}')} GB/s {fmt_value(r['pct_hbm'], '{:5.1f}')}% "
            f"{fmt_value(r['tflops'], '{:7.1f}')} TF/s  ×bf16 {fmt_value(r['speedup_bf16'], '{:5.2f}')}"
            + (f"  ×fp16 {fmt_value(r['speedup_fp16'], '{:5.2f}')}" if r["speedup_fp16"] else "")
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
                cells.append(f"{fmt_us(r['time_s']):>15}{fmt_value(r['speedup_bf16'], '{:.2f}'):>7}")
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
           f"ceilings: HBM {fmt_value(ceil.get('hbm_gbps'), '{:.0f}')} GB/s (copy "
           f"{fmt_value(ceil.get('hbm_copy_gbps'), '{:.0f}')}, read "
           f"{fmt_value(ceil.get('hbm_read_gbps'), '{:.0f}')})"
           f", bf16 matmul {fmt_value(ceil.get('bf16_mma_tflops'), '{:.0f}')} TFLOP/s",
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
           f"- HBM: copy {fmt_value(ceil.get('hbm_copy_gbps'), '{:.0f}')} GB/s, read "
           f"{fmt_value(ceil.get('hbm_read_gbps'), '{:.0f}')} GB/s → ceiling "
           f"{fmt_value(ceil.get('hbm_gbps'), '{:.0f}')} GB/s",
           f"- bf16 matmul 8192³: {fmt_value(ceil.get('bf16_mma_tflops'), '{:.0f}')} TFLOP/s", "",
           "## Summary", "", "```", *summary_lines(doc), "```", "",
           "## Correctness", "", "| kernel | shape | M | path | rel. error | result |",
           "|---|---|---|---|---|---|"]
    for c in doc["checks"]:
        md.append(f"| {c['kernel']} | {c['k']}→{c['n']} | {c['m']} | {c['path']} | "
                  f"{fmt_value(c['err'], '{:.2e}')} | {'ok' if c['ok'] else 'FAIL ' + c['note']} |")
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
                      f"{fmt_value(r['gbps'], '{:.0f}')} | {fmt_value(r['pct_hbm'], '{:.1f}')} | "
                      f"{fmt_value(r['tflops'], '{:.1f}')} | {fmt_value(r['speedup_bf16'], '{:.2f}')} | "
                      f"{fmt_value(r['speedup_fp16'], '{:.2f}')} | "
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


def collect_meta(args, repo: Path) -> dict:
    """What the report records of the machine, the software and the command."""
    props = torch.cuda.get_device_properties(0)
    try:
        cuda_info = llmaccel.cuda_info()
    except Exception as e:  # noqa: BLE001
        cuda_info = f"error: {e}"
    head = _run(["git", "rev-parse", "HEAD"], cwd=repo)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)
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
