"""Roofline figures, tables, targets, JSON and plot for bench_gemm.py's measurements."""

from __future__ import annotations

import io
import json

from _kernels import LABELS

from llmaccel.files import atomic_write

# Baselines every row is compared with, and their column headers.
BASELINES = {"torch_linear_fp32": "×fp32", "torch_linear_bf16": "×bf16",
             "torch_int4pack_mm": "×i4pk", "torch_int8pack_mm": "×i8pk",
             "torch_int_mm": "×imm", "torch_int_mm_qdq": "×imm+q"}
LAYERS = ["layer_int4wo", "layer_int8wo", "layer_int8dyn"]
# Torch's answers to "a quantized or fast linear": the bar for our best layer. Raw _int_mm is
# left out because it skips the activation quantization our layers include.
TORCH_BEST = ["torch_linear_fp32", "torch_linear_bf16", "torch_int4pack_mm",
              "torch_int8pack_mm", "torch_int_mm_qdq"]


def finish_rows(rows: list[dict], dram_gbps: float, int8_peak_gmacs: float) -> None:
    """Adds GB/s, % of DRAM, GMAC/s, % of the int8 peak and speedups vs every baseline in place.
    Both ceilings are measured in the same run (see bench_gemm.py)."""
    # The int8 peak probe reports 0 on the scalar path: no percentage there.
    by_case: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_case.setdefault((r["k"], r["n"], r["m"]), {})[r["kernel"]] = r
    for r in rows:
        t = r["time_s"]
        if t is None:
            r.update(gbps=None, pct_dram=None, gmacs=None, pct_int8=None, speedup={})
            continue
        r["gbps"] = r["weight_bytes"] / t / 1e9
        r["pct_dram"] = r["gbps"] / r.get("stage_dram_gbps", dram_gbps)
        r["gmacs"] = r["m"] * r["n"] * r["k"] / t / 1e9
        peak = r.get("stage_int8_gmacs") or int8_peak_gmacs
        r["pct_int8"] = r["gmacs"] / peak if r["int8_compute"] and peak else None
        case = by_case[(r["k"], r["n"], r["m"])]
        r["speedup"] = {b: case[b]["time_s"] / t for b in BASELINES
                        if b in case and case[b]["time_s"] is not None}


def _f(v, fmt: str, width: int) -> str:
    return (fmt.format(v) if v is not None else "-").rjust(width)


def shape_name(r: dict) -> str:
    return f"{r['k']}→{r['n']}"


def print_details(rows: list[dict], dram_gbps: float) -> None:
    print(f"\nPer kernel (time = median µs; GB/s counts every packed weight byte; %DRAM of the "
          f"DRAM read bandwidth probed around each stage (run median {dram_gbps:.1f} GB/s); "
          f"×X = speedup vs baseline X)")
    head = (f"  {'kernel':<14}{'µs':>10}{'GB/s':>7}{'%DRAM':>7}{'GMAC/s':>8}{'%int8':>7}"
            + "".join(f"{h:>8}" for h in BASELINES.values()) + "  note")
    last = None
    for r in rows:
        key = (r["k"], r["n"], r["m"])
        if key != last:
            print(f"\n{shape_name(r)} ({r['shape']})  M={r['m']}  (probes around this stage: "
                  f"DRAM {r.get('stage_dram_gbps', dram_gbps):.1f} GB/s, int8 "
                  f"{r.get('stage_int8_gmacs', float('nan')):.0f} GMAC/s)\n{head}")
            last = key
        if r["time_s"] is None:
            print(f"  {LABELS[r['kernel']]:<14}{'FAILED':>10}  {r['note']}")
            continue
        sp = r["speedup"]
        print(f"  {LABELS[r['kernel']]:<14}{fmt_us(r['time_s']):>10}{_f(r['gbps'], '{:.1f}', 7)}"
              f"{_f(r['pct_dram'] * 100, '{:.0f}%', 7)}{_f(r['gmacs'], '{:.1f}', 8)}"
              f"{_f(r['pct_int8'] and r['pct_int8'] * 100, '{:.0f}%', 7)}"
              + "".join(_f(sp.get(b), "{:.2f}", 8) for b in BASELINES) + f"  {r['note']}")


def fmt_us(t_s: float | None) -> str:
    """Microseconds in at most 8 characters."""
    if t_s is None:
        return "-"
    us = t_s * 1e6
    return f"{us:.1f}" if us < 1e4 else f"{us:.0f}" if us < 1e7 else f"{us:.2e}"


SUMMARY_HEADS = {"layer_int4wo": "int4 layer", "layer_int8wo": "int8wo lyr",
                 "layer_int8dyn": "int8dyn lyr", "torch_linear_fp32": "fp32 linear",
                 "torch_linear_bf16": "bf16 linear", "torch_int4pack_mm": "int4pack",
                 "torch_int8pack_mm": "int8pack", "torch_int_mm_qdq": "_int_mm+qdq"}


def print_summary(rows: list[dict]) -> None:
    cols = LAYERS + TORCH_BEST
    print("\nSummary: median µs per call; llmaccel layers (what QuantLinear runs at that M) | "
          "torch baselines | our best layer vs F.linear bf16 and vs the best torch kernel")
    print(f"{'shape':<11}{'M':>5} " + "".join(f"{SUMMARY_HEADS[c]:>12}" for c in LAYERS) + " |"
          + "".join(f"{SUMMARY_HEADS[c]:>12}" for c in TORCH_BEST)
          + f" | {'best ours':<15}{'×bf16':>7}{'×torch':>8}")
    cases: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        cases.setdefault((r["k"], r["n"], r["m"]), {})[r["kernel"]] = r
    for (k, n, m), case in cases.items():
        cell = {c: fmt_us(case[c]["time_s"] if c in case else None).rjust(12) for c in cols}
        ours = [case[c] for c in LAYERS if c in case and case[c]["time_s"] is not None]
        torch_ts = [case[c]["time_s"] for c in TORCH_BEST if c in case and case[c]["time_s"]]
        tail = ""
        if ours:
            best = min(ours, key=lambda r: r["time_s"])
            name = f"{best['kernel'][6:]}→{best['dispatch'][5:]}"  # e.g. int4wo→w4a8
            vs_best = min(torch_ts) / best["time_s"] if torch_ts else None
            tail = (f" | {name:<15}{_f(best['speedup'].get('torch_linear_bf16'), '{:.2f}', 7)}"
                    f"{_f(vs_best, '{:.2f}', 8)}")
        print(f"{f'{k}→{n}':<11}{m:>5} " + "".join(cell[c] for c in LAYERS) + " |"
              + "".join(cell[c] for c in TORCH_BEST) + tail)


def _find(rows, kernel, k, n, m):
    return next((r for r in rows if (r["kernel"], r["k"], r["n"], r["m"]) == (kernel, k, n, m)
                 and r["time_s"] is not None), None)


def evaluate_targets(rows: list[dict]) -> list[dict]:
    """The project's speed targets as PASS / MISS / SKIP (case not measured) with the figures."""
    pct_dram = (lambda r: r["pct_dram"] * 100, "% DRAM")
    # None (SKIP) where the CPU path has no int8 peak to compare with.
    pct_int8 = (lambda r: None if r["pct_int8"] is None else r["pct_int8"] * 100, "% int8 peak")

    def vs(b):
        return lambda r: r["speedup"].get(b), f"× {LABELS[b]}"

    specs = [  # kernel, K, N, M, (metric, unit), goal
        ("gemm_w4a16", 4096, 14336, 1, pct_dram, 85),
        ("gemm_w4a16", 4096, 14336, 1, vs("torch_int4pack_mm"), 1.6),
        ("gemm_w4a16", 4096, 14336, 1, vs("torch_linear_fp32"), 6.0),
        ("gemm_w8a16", 4096, 14336, 1, pct_dram, 85),
        ("gemm_w8a16", 4096, 14336, 1, vs("torch_linear_fp32"), 3.4),
        ("layer_int4wo", 4096, 4096, 16, vs("torch_linear_bf16"), 2.5),
        ("gemm_w8a8", 4096, 4096, 256, pct_int8, 60),
        ("gemm_w8a8", 4096, 4096, 256, vs("torch_int_mm_qdq"), 1.5),
    ]
    out = []
    for kernel, k, n, m, (metric, unit), goal in specs:
        r = _find(rows, kernel, k, n, m)
        value = metric(r) if r else None  # None: the case or its baseline was not timed
        status = "SKIP" if value is None else ("PASS" if value >= goal else "MISS")
        out.append({"target": f"{LABELS[kernel]} {k}→{n} M={m}: ≥{goal:g}{unit}",
                    "status": status, "value": value, "goal": goal})
    layer_rows = [r for r in rows if r["kernel"] in LAYERS and r["m"] <= 256]
    timed = [r for r in layer_rows if "torch_linear_bf16" in r.get("speedup", {})]
    slower = [r for r in timed if r["speedup"]["torch_linear_bf16"] < 1.0]
    worst = min(timed, key=lambda r: r["speedup"]["torch_linear_bf16"], default=None)
    out.append({
        "target": "every quantized layer, every M ≤ 256: ≥1× F.linear bf16",
        "status": "SKIP" if not timed else ("PASS" if not slower and len(timed) == len(layer_rows)
                                            else "MISS"),
        "value": None if worst is None else worst["speedup"]["torch_linear_bf16"], "goal": 1.0,
        "detail": (f"{len(timed) - len(slower)}/{len(layer_rows)} cases not slower; worst "
                   f"{LABELS[worst['kernel']]} {shape_name(worst)} M={worst['m']}"
                   if worst else "no layer timed")})
    return out


def print_targets(targets: list[dict]) -> None:
    print("\nTargets")
    for t in targets:
        v = "" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  {t['status']:<5} {v:>8}  {t['target']}"
              + (f"  ({t['detail']})" if t.get("detail") else ""))


def write_json(path: str, meta: dict, rows: list[dict], targets: list[dict]) -> None:
    doc = {"meta": meta, "rows": rows, "targets": targets}
    atomic_write(path, (json.dumps(doc, indent=1, default=str) + "\n").encode())


def write_plot(path: str, rows: list[dict], title: str) -> bool:
    """Speedup vs F.linear bf16 over M, one panel per shape; False if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    except ImportError:
        return False
    shapes = list(dict.fromkeys((r["k"], r["n"], r["shape"]) for r in rows))
    lines = LAYERS + ["torch_linear_fp32", "torch_int4pack_mm", "torch_int8pack_mm",
                      "torch_int_mm_qdq"]
    ncol = min(3, len(shapes))
    nrow = -(-len(shapes) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.0 * nrow), squeeze=False)
    for ax, (k, n, label) in zip(axes.flat, shapes):
        for kern in lines:
            pts = [(r["m"], r["speedup"]["torch_linear_bf16"]) for r in rows
                   if (r["k"], r["n"], r["kernel"]) == (k, n, kern)
                   and "torch_linear_bf16" in r.get("speedup", {})]
            if pts:
                ours = kern in LAYERS
                ax.plot(*zip(*pts), marker="o" if ours else ".", lw=2 if ours else 1,
                        ls="-" if ours else "--",
                        label=LABELS[kern] if ours else f"torch {LABELS[kern]}")
        ax.axhline(1.0, color="k", lw=0.8, label="torch F.linear bf16")
        ms = sorted({r["m"] for r in rows if (r["k"], r["n"]) == (k, n)})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{k}→{n} ({label})")
        ax.set_xlabel("M (rows of x)")
        ax.set_ylabel("speedup vs F.linear bf16")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(shapes):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    per_row = 8 if ncol >= 3 else 4
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), per_row), fontsize=8)
    fig.suptitle(title, fontsize=10)
    legend_in = 0.3 * -(-len(labels) // per_row) + 0.1  # inches of legend under the panels
    fig.tight_layout(rect=(0, legend_in / (4.0 * nrow), 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return True
