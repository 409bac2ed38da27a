#!/usr/bin/env python3
"""The distillation report (make distill-demo): compress the default model three ways, distil
each student from the original (the teacher) for about ten minutes of this machine, and show how
much of the quality the compression lost came back.

    python bench/distill_demo.py                 # SmolLM2-135M-Instruct, 2 threads, ~50 min
    python bench/distill_demo.py --quick         # smoke run, a few steps; numbers meaningless
    python bench/distill_demo.py --only layers20_kd,layers20_ft

Students (built here from the teacher; calibration on the Shakespeare calibration plays):
- SparseGPT 2:4: masks fixed while training, stored as bf16 2:4 SparseLinear afterwards.
- GPTQ w3 g128 (asymmetric): trained through 3-bit fake quantization on GPTQ's own scales and
  zero points (straight-through estimator), packed back into int4-container QuantLinear layers;
  the packed model's logits are compared with the trained model's.
- 30 → 20 layers: every third layer dropped, distilled; and the same student fine-tuned on the
  same windows with the plain next-token loss (alpha = 0, no teacher), the baseline.

Training reads the calibration plays, evaluation the held-out evaluation plays (perplexity, KL
and top-1 agreement against the teacher on bench/demo.py's 512-token windows). Each run keeps
its checkpoints under $LLMACCEL_CACHE/distill_demo/<run>/ and resumes after an interruption; a
finished run is reused (result.json) while its settings are unchanged (--fresh retrains).

Writes <out>/<date>_distill_cpu_<threads>t.{md,json,png}: the table, the issue's targets
(PASS/MISS) and held-out perplexity against training steps.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import llmaccel  # noqa: E402
from llmaccel.data import cache_dir, calibration_ids  # noqa: E402
from llmaccel.distillation import DistillConfig, distill  # noqa: E402
from llmaccel.distillation.run import (build_student, finish_student,  # noqa: E402
                                       layer_calibration, shakespeare_data)
from llmaccel.eval.quality import evaluate_quality  # noqa: E402
from llmaccel.files import atomic_write  # noqa: E402
from llmaccel.models import load_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
EVAL_WINDOW = 512


@dataclass(frozen=True)
class Run:
    key: str                 # folder under $LLMACCEL_CACHE/distill_demo/
    name: str
    student: str             # "sparsegpt24", "gptq_w3" or "layers20"
    steps: int | None        # sized to ~8-12 minutes of training steps here (s/step with
                             # checkpoints every 20 steps: 2:4 ~5, w3 ~6, 20 layers 3.0, no
                             # teacher 2.2); None: the distilled 20-layer run's training
                             # time at the fine-tuned run's s/step
    lr: float
    alpha: float = 1.0       # weight of the teacher term; 1 − alpha on the next-token loss
    temperature: float = 1.0


# Learning rates: a fake-quant weight starts on its grid point and must move half a grid step
# (~5e-3 at 3 bits here) before its code changes, so w3 gets a larger one. The 20-layer
# student mixes the teacher's distribution with the next-token loss (alpha 0.5, T = 2; chosen
# on 48-step runs: alpha 0.3 / 1.0 and T = 1 were 2-16 % worse, lr 8e-4 no better than 4e-4);
# its baselines are the same runs without the teacher term.
RUNS = [
    Run("sparsegpt24_kd", "SparseGPT 2:4", "sparsegpt24", 100, 1e-4),
    Run("gptq_w3_kd", "GPTQ w3 g128", "gptq_w3", 80, 3e-4),
    Run("layers20_kd", "30 → 20 layers, distilled", "layers20", 240, 4e-4, alpha=0.5,
        temperature=2.0),
    Run("layers20_ft", "30 → 20 layers, fine-tuned (no teacher)", "layers20", 240, 4e-4,
        alpha=0.0),
    # The same baseline given the distilled run's training time instead of its steps.
    Run("layers20_ft_time", "30 → 20 layers, fine-tuned, equal time", "layers20", None, 4e-4,
        alpha=0.0),
]
EQUAL_TIME = ("layers20_ft_time", "layers20_kd", "layers20_ft")  # (run, its time, its s/step)
GPTQ_W3 = llmaccel.GPTQ(bits=3, group_size=128, symmetric=False)


def train_config(run: Run, args, ckpt: Path) -> DistillConfig:
    steps = args.steps or run.steps
    return DistillConfig(
        steps=steps, batch_size=4, seq_len=256, lr=run.lr,
        warmup_steps=min(10, steps // 4), min_lr_ratio=0.1,
        max_grad_norm=1.0, loss="forward", temperature=run.temperature, alpha=run.alpha,
        # The teacher's whole distribution (the fused loss kernel makes it cheap), run on a
        # bf16 copy of the teacher (evaluation uses the fp32 teacher).
        topk=None, eval_every=args.eval_every or max(1, steps // 6),
        eval_windows=args.windows, eval_seq_len=EVAL_WINDOW, seed=0, autocast_bf16=True,
        teacher_bf16=True, checkpoint_dir=ckpt, checkpoint_every=20, resume=True)


def make_student(kind: str, teacher, calib: torch.Tensor, train_ids: torch.Tensor):
    """(student ready to train, StudentPrep, seconds spent compressing)."""
    t0 = time.perf_counter()
    if kind == "layers20":
        # Drops the 10-layer block that changes the hidden states least (as the CLI does).
        student, prep = build_student(teacher, drop_layers=20,
                                      calibration=layer_calibration(train_ids))
        return student, prep, time.perf_counter() - t0
    model = copy.deepcopy(teacher)
    if kind == "sparsegpt24":
        llmaccel.prune_(model, llmaccel.SparseGPT(pattern="2:4"), calibration=calib)
        llmaccel.sparsify_(model)  # the stored form (bf16 2:4), as the pruning report's row
        compress_s = time.perf_counter() - t0
        # Trains as dense fp32 with the zeros pinned; finish_student packs it back.
        student, prep = build_student(teacher, student=model)
    elif kind == "gptq_w3":
        llmaccel.quantize_(model, GPTQ_W3, calibration=calib)
        compress_s = time.perf_counter() - t0
        student, prep = build_student(teacher, student=model, fake_quant_bits=3)
    else:
        raise ValueError(f"unknown student {kind!r}")
    return student, prep, compress_s


@torch.inference_mode()
def packed_vs_trained(trained, packed, eval_ids: torch.Tensor, windows: int) -> dict:
    """Largest |logit difference| between the trained student and its packed form over the
    evaluation windows, against the logits' own range."""
    worst, scale = 0.0, 0.0
    for i in range(windows):
        chunk = eval_ids[i * EVAL_WINDOW:(i + 1) * EVAL_WINDOW][None]
        a, b = trained(chunk).logits.float(), packed(chunk).logits.float()
        worst, scale = max(worst, float((a - b).abs().max())), max(scale, float(a.abs().max()))
    return {"max_abs_logit_diff": worst, "max_abs_logit": scale}


def one_run(run: Run, args, teacher, tok, data, calib) -> dict:
    root = cache_dir() / "distill_demo" / ("quick" if args.quick else "") / run.key
    # The whole training config: a run trained with other settings is not reused.
    trainer = {k: v for k, v in dataclasses.asdict(train_config(run, args, root)).items()
               if k != "checkpoint_dir"}
    settings = {"run": dataclasses.asdict(run), "trainer": trainer, "layer_choice": "angular",
                "windows": args.windows, "samples": args.samples, "calib_len": args.calib_len}
    done = root / "result.json"
    if done.exists() and not args.fresh:
        saved = json.loads(done.read_text())
        if saved.get("settings") == settings:
            print(f"   reusing the finished run in {root} (--fresh to retrain)", flush=True)
            return {**saved["row"], "reused": True}
    # Checkpoints of a run with other settings (or --fresh) cannot be resumed: start over.
    started = root / "settings.json"
    if (root / "train").exists() and (args.fresh or not started.exists()
                                      or json.loads(started.read_text()) != settings):
        shutil.rmtree(root / "train")
    atomic_write(started, json.dumps(settings, indent=1) + "\n")
    student, prep, compress_s = make_student(run.student, teacher, calib, data.train_ids)
    cfg = train_config(run, args, root / "train")
    result = distill(student, teacher, data, cfg)
    first, last = result.history[0], result.history[-1]
    row = {"student": run.name, "key": run.key, "alpha": run.alpha, "lr": run.lr,
           "steps": result.steps, "tokens": result.steps * cfg.batch_size * cfg.seq_len,
           "train_s": last["elapsed_s"] - last["eval_s"], "eval_s": last["eval_s"],
           "compress_s": compress_s, "temperature": run.temperature,
           "teacher_ppl": result.teacher_ppl, "ppl_before": first["eval_ppl"],
           "ppl_after": last["eval_ppl"], "kl_before": first["eval_kl"],
           "kl_after": last["eval_kl"], "top1_before": first["eval_top1"],
           "top1_after": last["eval_top1"], "history": result.history,
           "kept_layers": getattr(student.config, "llmaccel_kept_layers", None)}
    if prep.mode == "checkpoint":  # back to the stored form: QuantLinear / 2:4 SparseLinear
        trained = copy.deepcopy(student).eval()
        finish_student(student, prep)
        row.update(packed_vs_trained(trained, student, data.eval_ids, min(args.windows, 4)))
        q = evaluate_quality(student, data.eval_ids, EVAL_WINDOW, args.windows,
                             reference=teacher, progress=False)
        row.update(ppl_packed=q.ppl, kl_packed=q.kl)
        del trained
    path = llmaccel.save_quantized(student.eval(), root / "student", tok, metadata={
        "method": "distill", "student": run.name, "config": repr(cfg),
        "history": result.history})
    row["checkpoint"] = str(path)
    atomic_write(done, json.dumps({"settings": settings, "row": row}, indent=1) + "\n")
    return row


def equal_time(run: Run, done: dict[str, dict], args) -> Run:
    """The run with the steps that take the distilled run's training time at the fine-tuned
    run's measured seconds per step (evaluations excluded from both)."""
    _, timed, paced = EQUAL_TIME
    if timed not in done or paced not in done:
        raise SystemExit(f"{run.key} sizes itself from {timed} and {paced}: run them in the "
                         f"same call (--only {timed},{paced},{run.key})")
    if args.steps:
        return dataclasses.replace(run, steps=args.steps)
    per_step = done[paced]["train_s"] / done[paced]["steps"]
    steps = max(1, round(done[timed]["train_s"] / per_step))
    print(f"   {steps} steps: {done[timed]['train_s']:.0f} s at {per_step:.2f} s/step", flush=True)
    return dataclasses.replace(run, steps=steps)


def kept_layers(rows: list[dict]) -> str:
    kept = next((r["kept_layers"] for r in rows if r.get("kept_layers")), None)
    if not kept:
        return "(not in this run)"
    spans, start = [], kept[0]
    for a, b in zip(kept, kept[1:] + [None]):
        if b != a + 1:
            spans.append(f"{start}-{a}" if a > start else f"{start}")
            start = b
    return ", ".join(spans)


def gap_recovered(row: dict, after_key: str = "ppl_after") -> float:
    """Share of the student's perplexity gap to the teacher that training closed."""
    gap = row["ppl_before"] - row["teacher_ppl"]
    return (row["ppl_before"] - row[after_key]) / gap if gap > 0 else float("nan")


def gap_target(r: dict, what: str, share: float) -> tuple[str, str, bool]:
    """(what, measured, pass) for "recovers ≥ share of its gap", on the packed model."""
    g = gap_recovered(r, "ppl_packed")
    return (f"{what} recovers ≥ {100 * share:.0f} % of its perplexity gap",
            f"{100 * g:.1f} % ({r['ppl_before']:.2f} → {r['ppl_packed']:.2f} packed, teacher "
            f"{r['teacher_ppl']:.2f})", g >= share)


def targets(rows: dict[str, dict]) -> list[tuple[str, str, bool]]:
    out = []
    if "sparsegpt24_kd" in rows:
        out.append(gap_target(rows["sparsegpt24_kd"], "SparseGPT 2:4 (bf16 2:4 SparseLinear)",
                              0.5))
    if "gptq_w3_kd" in rows:
        r = rows["gptq_w3_kd"]
        out.append(gap_target(r, "GPTQ w3 g128 (QuantLinear)", 0.3))
        # The packed layers compute (q − z)·s with the trained codes: only float summation
        # order differs from the fake-quant forward.
        match = r["max_abs_logit_diff"] <= 1e-3 * max(1.0, r["max_abs_logit"])
        out.append(("GPTQ w3 packed model reproduces the trained one's logits",
                    f"max |Δlogit| {r['max_abs_logit_diff']:.2e} (logits up to "
                    f"{r['max_abs_logit']:.1f}); ppl {r['ppl_after']:.3f} trained, "
                    f"{r['ppl_packed']:.3f} packed", match))
    if "layers20_kd" in rows and "layers20_ft" in rows:
        kd, ft = rows["layers20_kd"]["ppl_after"], rows["layers20_ft"]["ppl_after"]
        # "Clearly below": at least 5 % lower, several times the run-to-run noise of a
        # 8k-token perplexity.
        out.append(("30 → 20 layers: distilled perplexity clearly (≥ 5 %) below fine-tuned "
                    "(same steps and windows)",
                    f"{kd:.2f} vs {ft:.2f} ({100 * (kd / ft - 1):+.1f} %)", kd <= 0.95 * ft))
    if "layers20_kd" in rows and "layers20_ft_time" in rows:
        kd, ft = rows["layers20_kd"], rows["layers20_ft_time"]
        out.append(("30 → 20 layers: distilled perplexity clearly (≥ 5 %) below fine-tuned "
                    "(the same training time)",
                    f"{kd['ppl_after']:.2f} in {kd['train_s']:.0f} s vs {ft['ppl_after']:.2f} in "
                    f"{ft['train_s']:.0f} s ({100 * (kd['ppl_after'] / ft['ppl_after'] - 1):+.1f}"
                    f" %); KL to the teacher {kd['kl_after']:.3f} vs {ft['kl_after']:.3f}",
                    kd["ppl_after"] <= 0.95 * ft["ppl_after"]))
    return out


TABLE = (  # (key, header, format)
    ("student", "student", "{}"),
    ("steps", "steps", "{}"),
    ("train_s", "train s", "{:.0f}"),
    ("ppl_before", "ppl before", "{:.2f}"),
    ("ppl_after", "ppl after", "{:.2f}"),
    ("ppl_packed", "ppl packed", "{:.2f}"),
    ("gap_pct", "gap recovered %", "{:.1f}"),
    ("kl_before", "KL before", "{:.4f}"),
    ("kl_after", "KL after", "{:.4f}"),
    ("top1_before", "top-1 before", "{:.3f}"),
    ("top1_after", "top-1 after", "{:.3f}"),
)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in TABLE) + " |",
             "|---|" + "---:|" * (len(TABLE) - 1)]
    for r in rows:
        cells = [("–" if r.get(k) is None else fmt.format(r[k])) for k, _, fmt in TABLE]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], teacher_ppl: float, title: str) -> bytes | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import io

    fig, (ax, ax_t) = plt.subplots(1, 2, figsize=(13, 5))
    # A student far from the teacher at step 0 would squash every other curve: the axis stops
    # above the trained values and those starts are written in.
    top = 1.5 * max(h["eval_ppl"] for r in rows for h in r["history"][1:] or r["history"])
    for r in rows:
        ppl = [h["eval_ppl"] for h in r["history"]]
        label = r["student"] + (f" (step 0: {ppl[0]:.0f})" if ppl[0] > top else "")
        style = dict(marker="o", ms=3, ls="--" if r["alpha"] == 0 else "-", label=label)
        ax.plot([h["step"] for h in r["history"]], [min(v, top) for v in ppl], **style)
        if r["key"].startswith("layers20"):  # the equal-time comparison: training seconds
            ax_t.plot([h["elapsed_s"] - h["eval_s"] for h in r["history"]],
                      [min(v, top) for v in ppl], **style)
    for a, xlabel, what in ((ax, "optimizer step (4 × 256 tokens)", title),
                            (ax_t, "training seconds (evaluations excluded)",
                             "the 20-layer student against training time")):
        a.axhline(teacher_ppl, color="k", lw=1, ls=":", label=f"teacher ({teacher_ppl:.1f})")
        a.set_yscale("log")
        a.set_ylim(0.8 * teacher_ppl, top)
        a.set_xlabel(xlabel)
        a.set_ylabel("held-out perplexity (log scale)")
        a.set_title(what, fontsize=10)
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=None,
                    help="comma-separated run keys: " + ", ".join(r.key for r in RUNS))
    ap.add_argument("--steps", type=int, default=None, help="override every run's steps")
    ap.add_argument("--windows", type=int, default=None,
                    help="512-token evaluation windows (default 16; --quick 2)")
    ap.add_argument("--eval-every", type=int, default=None,
                    help="steps between evaluations (default: a sixth of each run's steps; "
                    "--quick 2)")
    ap.add_argument("--samples", type=int, default=None,
                    help="calibration windows (default 32; --quick 4)")
    ap.add_argument("--calib-len", type=int, default=None,
                    help="tokens per calibration window (default 512; --quick 128)")
    ap.add_argument("--fresh", action="store_true", help="retrain runs that finished before")
    ap.add_argument("--out", default=None, help="folder for the report (default bench/results; "
                    "--quick: $LLMACCEL_CACHE/distill_demo/quick)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 4 steps, few windows and samples; numbers not meaningful")
    args = ap.parse_args()
    for key, full, quick in (("windows", 16, 2), ("eval_every", None, 2), ("samples", 32, 4),
                             ("calib_len", 512, 128)):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if args.quick and args.steps is None:
        args.steps = 4
    if args.out is None:
        args.out = str(cache_dir() / "distill_demo" / "quick" if args.quick else RESULTS)
    chosen = RUNS if args.only is None else [r for r in RUNS if r.key in args.only.split(",")]
    if not chosen:
        ap.error(f"--only names none of {', '.join(r.key for r in RUNS)}")
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    teacher, tok = load_model("default")
    data = shakespeare_data(tok)
    calib = calibration_ids(tok, args.samples, args.calib_len)
    rows, reused = [], []
    for run in chosen:
        print(f"\n== {run.name}", flush=True)
        if run.steps is None:
            run = equal_time(run, {r["key"]: r for r in rows}, args)
        row = one_run(run, args, teacher, tok, data, calib)
        if row.pop("reused", False):
            reused.append(run.key)
        row["gap_pct"] = 100 * gap_recovered(row, "ppl_packed" if "ppl_packed" in row
                                             else "ppl_after")
        print(f"   ppl {row['ppl_before']:.2f} → {row['ppl_after']:.2f} in {row['steps']} steps "
              f"({row['train_s']:.0f} s); teacher {row['teacher_ppl']:.2f}", flush=True)
        rows.append(row)

    teacher_ppl = rows[0]["teacher_ppl"]
    checks = targets({r["key"]: r for r in rows})
    notes = [
        f"Teacher: SmolLM2-135M-Instruct, fp32, held-out perplexity {teacher_ppl:.2f}.",
        f"Evaluation: first {args.windows} non-overlapping {EVAL_WINDOW}-token windows of the "
        "evaluation plays (bench/demo.py's); KL = KL(teacher ‖ student) per token; top-1 = "
        "share of positions where both argmax agree. Before = the compressed student at step 0.",
        "Training: the calibration plays (disjoint from the evaluation plays); each step 4 "
        "windows of 256 tokens, AdamW, 10 warm-up steps then cosine to 0.1 × lr, gradient "
        "clipping at 1, bf16 autocast (fp32 master weights) with the teacher as a bf16 copy, "
        "loss = forward KL to the teacher's full next-token distribution at temperature T "
        "with weight alpha plus the next-token cross entropy with weight 1 − alpha (alpha = 1, "
        "T = 1 for the compressed students; alpha = 0.5, T = 2 for the distilled 20-layer one; "
        "alpha = 0 for its baselines: fine-tuning alone, the teacher not run), computed with "
        "its gradient by the fused kernel (ops.distill_loss_rows); lr per row in the JSON. "
        "train s = wall time of the training steps on this shared 2-core machine; the "
        "evaluations (eval s in the JSON) are not in it.",
        f"Compression: calibrated on {args.samples} windows of {args.calib_len} tokens of the "
        "calibration plays. SparseGPT 2:4 starts from its stored form (bf16 2:4 SparseLinear, "
        "as in the pruning report), trains as dense fp32 with its zeros pinned, and 'ppl "
        "packed' is after packing back into bf16 2:4 SparseLinear. GPTQ "
        f"w3 ({GPTQ_W3!r}) trains through 3-bit fake quantization on GPTQ's scales and zero "
        "points; 'ppl packed' is of the QuantLinear layers it packs into (3-bit codes in the "
        "int4 format: the 3-bit grid, not yet the 3-bit size).",
        f"The 20-layer student keeps the teacher's layers {kept_layers(rows)}: it drops the "
        "10-layer block whose input and output hidden states are closest in angle on the first "
        "8 × 512 training tokens (Gromov et al., 2024). Baselines: 'fine-tuned (no teacher)' "
        "trains on the same windows for the same steps as the distilled run; 'equal time' gets "
        "the steps that take the distilled run's training time at the fine-tuned run's "
        "measured s/step (a step without the teacher's forward pass is cheaper).",
        "Gap recovered = (ppl before − ppl after) / (ppl before − teacher ppl), on the packed "
        "model where there is one.",
        "Compression before training (not in train s): "
        + ", ".join(f"{r['student']} {r['compress_s']:.0f} s" for r in rows
                    if r["compress_s"] >= 1) + ".",
    ] + [f"{'PASS' if ok else 'MISS'}: {what} — {val}" for what, val, ok in checks]
    if args.quick:
        notes.insert(0, "QUICK SMOKE RUN (--quick): a few steps on few windows; the numbers "
                     "mean nothing.")
    meta = {"date": datetime.date.today().isoformat(), "cpu": platform.processor() or
            platform.machine(), "threads": args.threads, "torch": torch.__version__,
            "llmaccel": llmaccel.__version__, "quick": args.quick,
            "seconds": round(time.perf_counter() - t_start),
            "runs_reused": ",".join(reused) or "none"}
    title = "llmaccel distillation on SmolLM2-135M-Instruct: recovering compressed students"
    stem = f"{meta['date']}_distill_cpu_{args.threads}t" + ("_quick" if args.quick else "")
    out = Path(args.out)
    table = markdown(rows)
    md = [f"# {title}", "", table, ""] + [f"- {n}" for n in notes]
    md += ["", "Run: " + ", ".join(f"{k}={v}" for k, v in meta.items()), ""]
    written = [atomic_write(out / f"{stem}.md", "\n".join(md)),
               atomic_write(out / f"{stem}.json", json.dumps(
                   {"meta": meta, "rows": rows, "notes": notes}, indent=1, default=str) + "\n")]
    png = plot(rows, teacher_ppl, "held-out perplexity while training (Shakespeare)")
    if png is not None:
        written.append(atomic_write(out / f"{stem}.png", png))
    print("\n" + table + "\n")
    for n in notes:
        print(f"- {n}")
    print("\nwritten: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
