#!/usr/bin/env python3
"""Where a decode step's time goes: the default model's native decode step, part by part.

    python bench/decode_profile.py            # SmolLM2-135M-Instruct, 2 threads, batch 1

For each weight scheme (RTN: the kernels and bytes are those of GPTQ/AWQ checkpoints too), the
native step (ops.LlamaDecodeStep) times its own parts with a clock read between them: the four
projections summed over layers, lm_head, attention (rotary, cache write, softmax, weighted sum)
and the rest (embedding, RMSNorms, SiLU, residual adds). "python" is what the call from Python
adds (wrapper, argmax). Each projection's figure is also given in GB/s of its packed weights and
as a share of this machine's DRAM read bandwidth, probed in the same run. The same steps through
the Python loop (native=False) are timed alongside, as the before.

Writes bench/results/<date>_decode_profile_cpu_<threads>t.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import llmaccel  # noqa: E402
from llmaccel.files import atomic_write  # noqa: E402
from llmaccel.models import load_model  # noqa: E402
from llmaccel.runtime import LlamaDecoder  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ["qkv", "o", "gate_up", "down", "lm_head", "attention", "other"]
PROJ = {"qkv": "qkv", "o": "o", "gate_up": "gate_up", "down": "down"}
LM8 = {r"lm_head$": llmaccel.Int8WeightOnly(act_int8_min_m=None)}
SCHEMES = [  # (name, config, overrides)
    ("w4 g128, fp32 lm_head", llmaccel.Int4WeightOnly(128), None),
    ("w4 g128, int8 lm_head", llmaccel.Int4WeightOnly(128), LM8),
    ("w8 weight-only", llmaccel.Int8WeightOnly(act_int8_min_m=None), None),
    ("W8A8", llmaccel.Int8Dynamic(), None),
]


def tensor_bytes(mod) -> int:
    return sum(t.numel() * t.element_size() for t in
               (getattr(mod, n, None) for n in ("qweight", "scales", "zeros", "bias", "weight"))
               if t is not None)


def part_bytes(dec: LlamaDecoder) -> dict[str, int]:
    out = {p: sum(tensor_bytes(getattr(lay, p)) for lay in dec.layers) for p in PROJ}
    out["lm_head"] = tensor_bytes(dec.lm_head)
    return out


def time_steps(dec: LlamaDecoder, prompt: torch.Tensor, steps: int) -> tuple[float, dict]:
    """Seconds per step over `steps` greedy steps after the prompt, and the step's own
    per-part profile (native only)."""
    dec._alloc(prompt.shape[0])
    logits = dec.forward(prompt, 0)
    if dec.step is not None:
        dec.step.profile(on=True)
    t0 = time.perf_counter()
    for i in range(steps):
        logits = dec.forward(logits.argmax(-1)[:, None], prompt.shape[1] + i)
    wall = (time.perf_counter() - t0) / steps
    parts = dec.step.profile(on=False) if dec.step is not None else {}
    return wall, {k: v / steps for k, v in parts.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5, help="alternating native/Python rounds")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base, _ = load_model("default")
    prompt = torch.randint(100, base.config.vocab_size, (1, args.prompt_tokens),
                           generator=torch.Generator().manual_seed(0))
    dram = llmaccel.ops.memory_read_bandwidth()
    rows = []
    for name, cfg, overrides in SCHEMES:
        model = load_model("default")[0]
        llmaccel.quantize_(model, cfg, overrides=overrides, progress=False)
        max_len = args.prompt_tokens + args.new_tokens + 1
        native, loop = LlamaDecoder(model, max_len, native=True), LlamaDecoder(model, max_len,
                                                                              native=False)
        time_steps(native, prompt, 4)  # warm-up: first-touch of buffers, thread pool
        time_steps(loop, prompt, 4)
        walls, profs, loops = [], [], []
        for _ in range(args.rounds):
            w, p = time_steps(native, prompt, args.new_tokens)
            walls.append(w)
            profs.append(p)
            loops.append(time_steps(loop, prompt, args.new_tokens)[0])
        mid = sorted(range(len(walls)), key=walls.__getitem__)[len(walls) // 2]
        wall, prof = walls[mid], profs[mid]
        nbytes = part_bytes(native)
        row = {"scheme": name, "step_ms": wall * 1e3, "tok_s": 1 / wall,
               "python_loop_ms": statistics.median(loops) * 1e3,
               "parts_ms": {p: prof[p] * 1e3 for p in PARTS},
               "python_ms": (wall - sum(prof.values())) * 1e3,
               "gbps": {p: nbytes[p] / prof[p] / 1e9 for p in nbytes},
               "weight_mb": {p: nbytes[p] / 1e6 for p in nbytes}}
        rows.append(row)
        print(f"{name}: {row['step_ms']:.2f} ms/token native ({row['tok_s']:.0f} tok/s), "
              f"{row['python_loop_ms']:.2f} ms Python loop", flush=True)
        del native, loop, model

    head = ("| scheme | ms/token | tok/s | Python loop ms | " + " | ".join(PARTS)
            + " | python | GB/s qkv/o/gate_up/down/lm_head (% DRAM) |")
    lines = [f"# Native decode step profile: SmolLM2-135M-Instruct, batch 1, {args.threads} "
             f"threads", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        gb = " / ".join(f"{r['gbps'][p]:.1f} ({100 * r['gbps'][p] / dram:.0f}%)"
                        for p in ["qkv", "o", "gate_up", "down", "lm_head"])
        lines.append(f"| {r['scheme']} | {r['step_ms']:.2f} | {r['tok_s']:.0f} | "
                     f"{r['python_loop_ms']:.2f} | "
                     + " | ".join(f"{r['parts_ms'][p]:.2f}" for p in PARTS)
                     + f" | {r['python_ms']:.2f} | {gb} |")
    lines += ["", f"- Parts in ms per token, median round of {args.rounds} (native and Python "
              f"loop alternating); {args.prompt_tokens}-token prompt, {args.new_tokens} steps, "
              f"so attention covers positions {args.prompt_tokens}-"
              f"{args.prompt_tokens + args.new_tokens}.",
              f"- DRAM read bandwidth probed in this run: {dram:.1f} GB/s. Packed weight bytes "
              "per part: " + ", ".join(f"{p} {mb:.1f} MB" for p, mb in
                                       rows[0]["weight_mb"].items()) + " (w4 row).",
              f"- torch {torch.__version__}, llmaccel {llmaccel.__version__}, ISA "
              f"{llmaccel.cpu_info()['isa']}, {datetime.date.today().isoformat()}."]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    stem = Path(args.out) / f"{datetime.date.today().isoformat()}_decode_profile_cpu_{args.threads}t"
    atomic_write(stem.with_suffix(".md"), text)
    atomic_write(stem.with_suffix(".json"), json.dumps(
        {"rows": rows, "dram_gbps": dram, "threads": args.threads, "torch": torch.__version__},
        indent=1))
    print(f"written: {stem}.md, {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
