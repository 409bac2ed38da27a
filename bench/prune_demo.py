#!/usr/bin/env python3
"""Pruning on the default model: perplexity of every pruning method and pattern we offer,
against the fp32 model and against magnitude pruning, measured in one run.

    python bench/prune_demo.py                  # SmolLM2-135M-Instruct, 2 threads
    python bench/prune_demo.py --samples 64 --json /tmp/prune.json

Each scheme prunes a fresh copy of the model (calibrated methods on the Shakespeare calibration
plays) and is scored on the held-out plays: perplexity over the first 16 non-overlapping
512-token windows (bench/demo.py's protocol), KL divergence and top-1 agreement against fp32.
Prints the table and the issue's targets (PASS/MISS).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import llmaccel  # noqa: E402
from llmaccel.data import calibration_ids, shakespeare_text  # noqa: E402
from llmaccel.eval.quality import evaluate_quality  # noqa: E402
from llmaccel.eval.report import add_relative  # noqa: E402
from llmaccel.files import atomic_write  # noqa: E402
from llmaccel.models import load_model  # noqa: E402

SCHEMES = [  # (row name, config; None for the float model)
    ("fp32", None),
    ("magnitude 50%", llmaccel.Magnitude(0.5)),
    ("Wanda 50%", llmaccel.Wanda(0.5)),
    ("SparseGPT 50%", llmaccel.SparseGPT(0.5)),
    ("magnitude 2:4", llmaccel.Magnitude(pattern="2:4")),
    ("Wanda 2:4", llmaccel.Wanda(pattern="2:4")),
    ("SparseGPT 2:4", llmaccel.SparseGPT(pattern="2:4")),
    ("SparseGPT 2:4 + GPTQ w4 g128",
     llmaccel.SparseGPT(pattern="2:4", quantize=llmaccel.GPTQ(bits=4, group_size=128))),
    ("structured 30%", llmaccel.Structured(0.3)),
]


COLUMNS = (  # (key, header, format); a missing value prints as "–"
    ("scheme", "scheme", "{}"),
    ("ppl", "ppl", "{:.2f}"),
    ("ppl_increase_pct", "Δppl %", "{:+.1f}"),
    ("kl", "KL (nats)", "{:.4f}"),
    ("top1", "top-1 agree", "{:.3f}"),
    ("kept_pct", "decoder weights kept %", "{:.1f}"),
    ("prune_s", "prune s", "{:.0f}"),
)


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|" + "|".join("---" if k == "scheme" else "---:" for k, _, _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join("–" if r.get(k) is None else f.format(r[k])
                                for k, _, f in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def decoder_weights_kept(model: nn.Module) -> int:
    """Nonzero weights of the linears inside the decoder layers (QuantLinear: dequantized)."""
    kept = 0
    for mod in model.model.layers.modules():
        if isinstance(mod, llmaccel.QuantLinear):
            kept += int(mod.dequantize().count_nonzero())
        elif isinstance(mod, nn.Linear):
            kept += int(mod.weight.count_nonzero())
    return kept


def targets(rows: list[dict]) -> list[tuple[str, str, bool]]:
    by = {r["scheme"]: r for r in rows}
    out = []
    mag = by["magnitude 50%"]["ppl_increase_pct"]
    for name in ("Wanda 50%", "SparseGPT 50%"):
        inc = by[name]["ppl_increase_pct"]
        out.append((f"{name} increase ≤ 50 % of magnitude 50 %'s",
                    f"{inc:.1f} % vs {mag:.1f} % ({inc / mag:.2f}×)", inc <= 0.5 * mag))
    sgpt, mag24 = by["SparseGPT 2:4"]["ppl"], by["magnitude 2:4"]["ppl"]
    out.append(("SparseGPT 2:4 perplexity below magnitude 2:4's", f"{sgpt:.2f} vs {mag24:.2f}",
                sgpt < mag24))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--windows", type=int, default=16, help="512-token evaluation windows")
    ap.add_argument("--samples", type=int, default=32, help="calibration windows of 512 tokens")
    ap.add_argument("--json", help="also write the rows and checks to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    base, tok = load_model("default")
    eval_ids = tok(shakespeare_text("evaluation"), return_tensors="pt").input_ids[0]
    calib = calibration_ids(tok, args.samples, 512)
    base_kept = decoder_weights_kept(base)
    rows = []
    for name, cfg in SCHEMES:
        print(f"\n== {name}", flush=True)
        row = {"scheme": name, "config": repr(cfg) if cfg else "float32"}
        model = base
        if cfg is not None:
            model = copy.deepcopy(base)
            t0 = time.perf_counter()
            llmaccel.prune_(model, cfg, calibration=calib)
            row["prune_s"] = time.perf_counter() - t0
        q = evaluate_quality(model, eval_ids, 512, args.windows,
                             reference=None if cfg is None else base)
        row.update(ppl=q.ppl, kl=q.kl, top1=q.top1_agreement, eval_tokens=q.tokens,
                   kept_pct=100 * decoder_weights_kept(model) / base_kept)
        print(f"perplexity {q.ppl:.3f}, decoder weights kept {row['kept_pct']:.1f} %"
              + ("" if q.kl is None else f", KL {q.kl:.4f}"), flush=True)
        rows.append(row)
        del model
    add_relative(rows, "fp32")
    checks = targets(rows)

    print("\n" + table(rows))
    notes = [f"Quality: first {args.windows} non-overlapping 512-token windows of the evaluation "
             f"plays ({rows[0]['eval_tokens']} predicted tokens); KL = KL(fp32 ‖ scheme).",
             f"Calibration: {args.samples} windows of 512 tokens from the calibration plays.",
             "lm_head (tied to the embedding) and the embedding are never pruned.",
             f"{args.threads} threads, torch {torch.__version__}, "
             f"{time.perf_counter() - t_start:.0f} s in all."]
    notes += [f"{'PASS' if ok else 'MISS'}: {what} — {val}" for what, val, ok in checks]
    print()
    for n in notes:
        print(f"- {n}")
    if args.json:
        atomic_write(args.json, json.dumps({"rows": rows, "notes": notes}, indent=1) + "\n")
        print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
