#!/usr/bin/env python3
"""The fused distillation loss (ops.distill_loss_rows) on every CPU path this machine has,
against torch computing the same loss and gradient with autograd.

    python bench/bench_distill_loss.py                  # 256 rows x SmolLM2's 49152 vocabulary
    python bench/bench_distill_loss.py --rows 64 --vocab 32000 --rounds 7

Loss: alpha = 0.5, T = 2 (forward KL to the teacher at T, plus cross entropy), as the trainer's
distilled student uses. Each round times every path and torch once (alternating, medians over
rounds); each path's gradient is checked against torch's before timing. Writes
bench/results/<date>_distill_loss_cpu_<isa>_<threads>t.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from _timing import time_calls

import llmaccel
from llmaccel import ops
from llmaccel.files import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"
ALPHA, TEMPERATURE, SCALE = 0.5, 2.0, 0.25


def torch_grad(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d/ds of SCALE * (ALPHA * T² * KL(p_t || q_s) + (1 - ALPHA) * CE(s, y)), summed over rows."""
    z = s.float().requires_grad_()
    kl = F.kl_div(torch.log_softmax(z / TEMPERATURE, -1),
                  torch.log_softmax(t.float() / TEMPERATURE, -1), log_target=True, reduction="sum")
    ce = F.cross_entropy(z, y, reduction="sum")
    (SCALE * (ALPHA * TEMPERATURE**2 * kl + (1 - ALPHA) * ce)).backward()
    return z.grad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = llmaccel.cpu_info()
    paths = [p for p, ok in (("avx512_bf16", info["avx512_bf16_available"]),
                             ("avx512", info["avx512_available"]),
                             ("avx2", info["avx2_available"]), ("scalar", True)) if ok]
    g = torch.Generator().manual_seed(0)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        s = (torch.randn(args.rows, args.vocab, generator=g) * 3).to(dtype)
        t = (torch.randn(args.rows, args.vocab, generator=g) * 3).to(dtype)
        y = torch.randint(0, args.vocab, (args.rows,), generator=g)
        want = torch_grad(s, t, y)
        for p in paths:
            llmaccel.set_cpu_isa(p)
            got = ops.distill_loss_rows(s, t, y, ALPHA, TEMPERATURE, SCALE)[0].float()
            err = float((got - want).abs().max() / want.abs().max())
            if err > (1e-4 if dtype == torch.float32 else 1e-2):
                raise AssertionError(f"{p} {dtype}: gradient off torch's by {err:.2e} (relative)")
        times: dict[str, list[float]] = {name: [] for name in [*paths, "torch autograd"]}
        for _ in range(args.rounds):
            for p in paths:
                llmaccel.set_cpu_isa(p)
                times[p].append(time_calls(
                    [lambda: ops.distill_loss_rows(s, t, y, ALPHA, TEMPERATURE, SCALE)],
                    min_iters=3, min_time=0.2).median_s)
            times["torch autograd"].append(time_calls([lambda: torch_grad(s, t, y)], min_iters=3,
                                                      min_time=0.2).median_s)
        llmaccel.set_cpu_isa("auto")
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"dtype": str(dtype).removeprefix("torch."),
               "ms": {k: v * 1e3 for k, v in med.items()},
               "ms_per_1k_tokens": {k: v * 1e3 * 1000 / args.rows for k, v in med.items()},
               "x_torch": {p: med["torch autograd"] / med[p] for p in paths},
               "x_scalar": {p: med["scalar"] / med[p] for p in paths},
               "rounds_ms": {k: [x * 1e3 for x in v] for k, v in times.items()}}
        rows.append(row)
        print(f"{row['dtype']}: " + "  ".join(
            f"{k} {v:.1f} ms" for k, v in row["ms"].items()) + "  |  × torch: " + "  ".join(
            f"{p} {v:.1f}" for p, v in row["x_torch"].items()), flush=True)

    best = paths[0]
    lines = [f"# Fused distillation loss, {args.rows} rows × {args.vocab} vocabulary, "
             f"{args.threads} threads, {datetime.date.today().isoformat()}", "",
             "| logits | " + " | ".join(f"{k} ms" for k in rows[0]["ms"]) +
             f" | {best} × torch | {best} × scalar | {best} ms per 1k tokens |",
             "|---|" + "---:|" * (len(rows[0]["ms"]) + 3)]
    for r in rows:
        lines.append(f"| {r['dtype']} | " + " | ".join(f"{v:.1f}" for v in r["ms"].values()) +
                     f" | {r['x_torch'][best]:.1f} | {r['x_scalar'][best]:.1f} | "
                     f"{r['ms_per_1k_tokens'][best]:.0f} |")
    lines += ["", f"- alpha {ALPHA}, T {TEMPERATURE}: loss and gradient; torch autograd computes "
              "the same from fp32 logits (log_softmax, kl_div, cross_entropy, backward).",
              f"- Medians over {args.rounds} alternating rounds. CPU paths: {', '.join(paths)} "
              f"(auto: {info['isa']}); torch {torch.__version__}."]
    stem = Path(args.out) / (f"{datetime.date.today().isoformat()}_distill_loss_cpu_"
                             f"{info['isa']}_{args.threads}t")
    atomic_write(stem.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write(stem.with_suffix(".json"), json.dumps(
        {"rows": args.rows, "vocab": args.vocab, "threads": args.threads, "paths": paths,
         "torch": torch.__version__, "cpu": info["brand"], "results": rows}, indent=1))
    print("\n".join(lines))
    print(f"\nwritten: {stem}.md, {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
