#!/usr/bin/env python3
"""Two checkpoints' native decode steps side by side, in one process, part by part.

    python bench/decode_pair.py BASE_DIR OTHER_DIR [--rounds 15]

prune_demo's speed pairs time each checkpoint in a fresh `llmaccel bench` process: honest, but
each figure then carries the process's own noise (allocator, page cache, a neighbour on this
shared VM), and a 1.1x difference needs many rounds to show. Here both models stay loaded and
their native decode steps (ops.LlamaDecodeStep) alternate, round by round, on the same prompt,
and each step's own profile says which part (qkv, o, gate_up, down, lm_head, attention, other)
the difference comes from. The figure reported is the median over rounds of the per-round
ratio base ms / other ms (> 1: OTHER decodes faster).

Writes bench/results/<date>_decode_pair_<OTHER's folder name>_cpu_<threads>t.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from _results import write_results  # noqa: E402
from decode_profile import PARTS, time_steps  # noqa: E402

import llmaccel  # noqa: E402
from llmaccel.models import load_model_or_checkpoint  # noqa: E402
from llmaccel.runtime import LlamaDecoder  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def alternate(paths: list[str], rounds: int, prompt_tokens: int, new_tokens: int) -> dict:
    """Loads every checkpoint in this process and alternates their native decode steps on one
    prompt, round by round (a b, b a, ...). Per path: "walls", seconds per token of each round,
    and "parts", each round's per-part profile (seconds per token)."""
    max_len = prompt_tokens + new_tokens + 1
    decoders, vocab = {}, None
    for name in paths:
        model, _ = load_model_or_checkpoint(name)
        decoders[name] = LlamaDecoder(model, max_len, native=True)
        vocab = model.config.vocab_size
    prompt = torch.randint(100, vocab, (1, prompt_tokens),
                           generator=torch.Generator().manual_seed(0))
    for name, dec in decoders.items():
        time_steps(dec, prompt, 4)  # warm-up: first touch of buffers, thread pool
        if dec.step is None:
            raise SystemExit(f"{name}: no native decode step for this model (see "
                             f"llmaccel.runtime.LlamaDecoder)")
    runs = {n: {"walls": [], "parts": []} for n in decoders}
    for i in range(rounds):
        for name in list(decoders) if i % 2 == 0 else list(decoders)[::-1]:
            w, p = time_steps(decoders[name], prompt, new_tokens)
            runs[name]["walls"].append(w)
            runs[name]["parts"].append(p)
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base")
    ap.add_argument("other")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs = alternate([args.base, args.other], args.rounds, args.prompt_tokens, args.new_tokens)
    walls = {n: r["walls"] for n, r in runs.items()}
    parts = {n: r["parts"] for n, r in runs.items()}
    ratios = [b / o for b, o in zip(walls[args.base], walls[args.other])]
    rows = []
    for name in runs:
        med = {p: statistics.median(r[p] for r in parts[name]) * 1e3 for p in PARTS}
        rows.append({"checkpoint": name, "step_ms": statistics.median(walls[name]) * 1e3,
                     "parts_ms": med, "rounds_ms": [w * 1e3 for w in walls[name]]})
    result = {"ratio_median": statistics.median(ratios), "ratios": ratios, "rows": rows,
              "rounds": args.rounds, "threads": args.threads, "torch": torch.__version__,
              "isa": llmaccel.cpu_info()["isa"], "date": datetime.date.today().isoformat()}
    head = "| checkpoint | ms/token | " + " | ".join(PARTS) + " |"
    lines = [f"# Native decode, two checkpoints alternating: batch 1, {args.threads} threads",
             "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['checkpoint']} | {r['step_ms']:.2f} | "
                     + " | ".join(f"{r['parts_ms'][p]:.2f}" for p in PARTS) + " |")
    lo, hi = min(ratios), max(ratios)
    lines += ["", f"- base / other, median of {args.rounds} alternating rounds: "
              f"{result['ratio_median']:.3f}x (rounds {lo:.2f}-{hi:.2f}; > 1: other is faster).",
              f"- Parts: ms per token, medians over rounds; {args.prompt_tokens}-token prompt, "
              f"{args.new_tokens} greedy steps.",
              f"- torch {torch.__version__}, ISA {result['isa']}, {result['date']}."]
    text = "\n".join(lines) + "\n"
    stem = Path(args.out) / (f"{result['date']}_decode_pair_{Path(args.other).name}"
                             f"_cpu_{args.threads}t")
    write_results(stem, text, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
