#!/usr/bin/env python3
"""Checkpoints' prefill side by side in one process: the time of a forward over a window of
text (what perplexity evaluation and a long prompt cost), and each one's perplexity.

    python bench/prefill_pair.py BASE_DIR OTHER_DIR [--float-other] [--rounds 7]

Each checkpoint is loaded once; their forwards over the same windows alternate, round by round
(a b c, c b a, ...), so slow moments of this shared VM hit all of them alike. --float-other adds
OTHER a second time with float activations in every layer that has the choice
(llmaccel.nn.set_act_int8_min_m(model, None)): the int8-activation paths against the float ones
on the same weights. Perplexity: the held-out Shakespeare plays, non-overlapping windows (as
`llmaccel eval`), --ppl-windows of them (0: skip).

Writes bench/results/<date>_prefill_pair_<OTHER's folder name>_cpu_<threads>t.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from _results import write_results  # noqa: E402

import llmaccel  # noqa: E402
from llmaccel.data import shakespeare_text  # noqa: E402
from llmaccel.eval.quality import evaluate_quality  # noqa: E402
from llmaccel.models import load_model_or_checkpoint  # noqa: E402
from llmaccel.nn import set_act_int8_min_m  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def load(paths: list[str], float_other: bool) -> tuple[dict, object]:
    """label -> model for every checkpoint (and OTHER with float activations), and a tokenizer."""
    models, tok = {}, None
    for path in paths:
        models[path], tok = load_model_or_checkpoint(path)
    if float_other:
        model, _ = load_model_or_checkpoint(paths[-1])
        if not set_act_int8_min_m(model, None):
            raise SystemExit(f"{paths[-1]}: no layer has a float/int8 activation choice")
        models[f"{paths[-1]} (float activations)"] = model
    return models, tok


@torch.inference_mode()
def alternate(models: dict, windows: torch.Tensor, rounds: int) -> dict:
    """label -> seconds per window of each round (the median over the round's windows)."""
    for model in models.values():
        model(windows[:1])  # warm-up: first touch of buffers, thread pool
    times = {label: [] for label in models}
    for i in range(rounds):
        for label in list(models) if i % 2 == 0 else list(models)[::-1]:
            per_window = []
            for w in windows:
                t0 = time.perf_counter()
                models[label](w[None])
                per_window.append(time.perf_counter() - t0)
            times[label].append(statistics.median(per_window))
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base")
    ap.add_argument("other")
    ap.add_argument("--float-other", action="store_true",
                    help="also OTHER with float activations (act_int8_min_m=None)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--windows", type=int, default=6, help="timed windows per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ppl-windows", type=int, default=None,
                    help="perplexity windows (default: all ~355; 0: skip)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models, tok = load([args.base, args.other], args.float_other)
    ids = tok(shakespeare_text("evaluation"), return_tensors="pt").input_ids[0]
    n = args.windows * args.window
    if ids.numel() < n:
        raise SystemExit(f"the evaluation text has {ids.numel()} tokens, fewer than {n}")
    windows = ids[:n].view(args.windows, args.window)
    times = alternate(models, windows, args.rounds)
    base = times[args.base]
    rows = []
    for label, model in models.items():
        ppl = None
        if args.ppl_windows != 0:
            ppl = evaluate_quality(model, ids, args.window, args.ppl_windows).ppl
        ratios = [b / t for b, t in zip(base, times[label])]
        rows.append({"checkpoint": label, "window_s": statistics.median(times[label]),
                     "tokens_per_s": args.window / statistics.median(times[label]),
                     "base_over_this": statistics.median(ratios), "ratios": ratios,
                     "rounds_s": times[label], "ppl": ppl})
    result = {"rows": rows, "window": args.window, "windows": args.windows,
              "rounds": args.rounds, "threads": args.threads, "torch": torch.__version__,
              "isa": llmaccel.cpu_info()["isa"], "date": datetime.date.today().isoformat(),
              "ppl_windows": args.ppl_windows}
    lines = [f"# Prefill, checkpoints alternating: {args.window}-token windows, "
             f"{args.threads} threads", "",
             "| checkpoint | s / window | tokens/s | × base (rounds) | perplexity |",
             "|---|---:|---:|---|---:|"]
    for r in rows:
        lo, hi = min(r["ratios"]), max(r["ratios"])
        ppl = "–" if r["ppl"] is None else f"{r['ppl']:.3f}"
        lines.append(f"| {r['checkpoint']} | {r['window_s']:.3f} | {r['tokens_per_s']:.0f} | "
                     f"{r['base_over_this']:.2f} ({lo:.2f}-{hi:.2f}) | {ppl} |")
    lines += ["", f"- × base: median over {args.rounds} alternating rounds of base time / this "
              f"time (> 1: faster than base); a round times {args.windows} windows and takes "
              "their median.",
              "- Perplexity: Shakespeare evaluation plays, non-overlapping windows ("
              + ("all" if args.ppl_windows is None else str(args.ppl_windows)) + ").",
              f"- torch {torch.__version__}, ISA {result['isa']}, {result['date']}."]
    text = "\n".join(lines) + "\n"
    stem = Path(args.out) / (f"{result['date']}_prefill_pair_{Path(args.other).name}"
                             f"_cpu_{args.threads}t")
    write_results(stem, text, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
