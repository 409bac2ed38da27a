"""Distillation training: a teacher's next-token distributions → a (compressed) student.

    from llmaccel.distillation import DistillConfig, DistillData, distill
    result = distill(student, teacher, DistillData(train_ids, eval_ids),
                     DistillConfig(steps=500, batch_size=8, seq_len=256, lr=1e-4))

One optimizer step = grad_accum micro-batches of batch_size random windows of seq_len tokens.
Per micro-batch the teacher (eval mode, no grad) and the student (train mode) run under the
same optional bf16 autocast, and ``losses.distill_loss`` mixes the soft loss on the teacher's
distribution with the hard next-token cross entropy. AdamW with linear warm-up then cosine decay
to min_lr_ratio · lr; after every optimizer step ``students.after_step`` re-imposes whatever
structure the student must keep (fixed sparsity masks, ...).

Held-out quality (GPTQ-convention perplexity and KL(teacher ‖ student) over non-overlapping
windows of eval_ids, ``eval.quality``) is measured before the first step, every eval_every steps
and at the end. Checkpoints (``checkpoints.py``) let an interrupted run continue exactly:
a resumed run ends with the same student weights, bit for bit, as one that never stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from ..eval.quality import QualityResult, evaluate_quality
from .checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from .data import SEED_LIMIT, DistillData, gather_windows, sample_starts, step_seed
from .losses import (KINDS, check_same_vocab_size, distill_loss, hard_ce,
                     kl_forward_topk_tail)
from .losses_fused import distill_loss_fused

CHECKPOINT_FORMAT = "llmaccel-distill-checkpoint"
CHECKPOINT_VERSION = 1
LATEST = "latest.json"
# Fields that change neither the weights nor the history: free to differ on resume.
_RUN_CONTROL = ("checkpoint_dir", "checkpoint_every", "resume", "max_time_s", "progress")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# (field, requirement, test) for the fields that are checked on their own.
_FIELD_RULES = (
    ("steps", "an int >= 1", lambda v: _is_int(v) and v >= 1),
    ("batch_size", "an int >= 1", lambda v: _is_int(v) and v >= 1),
    ("seq_len", "an int >= 2 (one predicted token)", lambda v: _is_int(v) and v >= 2),
    ("grad_accum", "an int >= 1", lambda v: _is_int(v) and v >= 1),
    ("lr", "a finite number > 0", lambda v: _is_number(v) and v > 0),
    ("weight_decay", "a finite number >= 0", lambda v: _is_number(v) and v >= 0),
    ("min_lr_ratio", "in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
    ("max_grad_norm", "None or a finite number > 0",
     lambda v: v is None or (_is_number(v) and v > 0)),
    ("loss", f"one of {KINDS}", lambda v: v in KINDS),
    ("temperature", "a finite number > 0", lambda v: _is_number(v) and v > 0),
    ("alpha", "in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
    ("autocast_bf16", "a bool", lambda v: isinstance(v, bool)),
    ("teacher_bf16", "a bool", lambda v: isinstance(v, bool)),
    ("topk", "None or an int >= 1", lambda v: v is None or (_is_int(v) and v >= 1)),
    ("eval_every", "None or an int >= 1", lambda v: v is None or (_is_int(v) and v >= 1)),
    ("eval_windows", "None or an int >= 1", lambda v: v is None or (_is_int(v) and v >= 1)),
    ("eval_seq_len", "None or an int >= 2", lambda v: v is None or (_is_int(v) and v >= 2)),
    ("seed", "an int in [0, 2**31)", lambda v: _is_int(v) and 0 <= v < SEED_LIMIT),
    ("checkpoint_every", "None or an int >= 1", lambda v: v is None or (_is_int(v) and v >= 1)),
    ("max_time_s", "None or a finite number > 0",
     lambda v: v is None or (_is_number(v) and v > 0)),
)


@dataclass
class DistillConfig:
    """Everything a distillation run depends on. Steps count optimizer steps."""

    steps: int = 1000
    batch_size: int = 8              # windows per micro-batch
    seq_len: int = 256               # tokens per training window
    grad_accum: int = 1              # micro-batches per optimizer step
    lr: float = 1e-4                 # peak learning rate
    weight_decay: float = 0.0
    warmup_steps: int = 0            # linear ramp to lr over the first warmup_steps steps
    min_lr_ratio: float = 0.1        # cosine decays to min_lr_ratio · lr at the last step
    max_grad_norm: float | None = 1.0
    loss: str = "forward"            # soft loss: "forward" KL, "reverse" KL or "jsd" (β = 0.5)
    temperature: float = 1.0
    alpha: float = 1.0               # weight of the soft loss; 1 − alpha on the hard CE (0:
                                     # fine-tuning alone, the teacher only evaluates)
    topk: int | None = None          # None: full teacher logits; k: the teacher's cached top-k
                                     # log-probs + the rest of its mass (kl_forward_topk_tail)
    eval_every: int | None = 100     # None: evaluate only before the first and after the last
    eval_windows: int | None = 16    # None: every non-overlapping window of eval_ids
    eval_seq_len: int | None = None  # None: seq_len
    seed: int = 0
    autocast_bf16: bool = False      # bf16 autocast for both models; fp32 master weights
    teacher_bf16: bool = False       # training steps run a bfloat16 copy of the teacher (its
                                     # size again in memory; ~1.7x faster than autocast on a
                                     # CPU); evaluation uses the teacher as given
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int | None = None  # None: checkpoint only at the end
    resume: bool = False             # continue from checkpoint_dir's checkpoint if there is one
    max_time_s: float | None = None  # stop (evaluate, checkpoint) once this call ran this long
    progress: bool | None = None     # None: show a bar on a terminal unless CI is set

    def __post_init__(self):
        for name, requirement, ok in _FIELD_RULES:
            value = getattr(self, name)
            if not ok(value):
                raise ValueError(f"DistillConfig: {name} must be {requirement}, got {value!r}")
        if not (_is_int(self.warmup_steps) and 0 <= self.warmup_steps <= self.steps):
            raise ValueError(f"DistillConfig: warmup_steps must be an int in [0, "
                             f"steps={self.steps}], got {self.warmup_steps!r}")
        if self.topk is not None and self.loss != "forward":
            raise ValueError(f"DistillConfig: topk needs loss='forward' (a top-k teacher only "
                             f"defines the forward KL), got loss={self.loss!r}")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("DistillConfig: resume=True needs a checkpoint_dir")

    @property
    def eval_len(self) -> int:
        return self.eval_seq_len or self.seq_len


def lr_at(step: int, config: DistillConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based, < config.steps).

    Warm-up: lr · (step + 1) / warmup_steps, so the first step already moves and step
    warmup_steps − 1 reaches the peak. Then a half cosine from the peak down to
    min_lr_ratio · lr, reached exactly at the last step.
    """
    c = config
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    progress = (step + 1 - c.warmup_steps) / (c.steps - c.warmup_steps)
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class _Run:
    """Everything of a run's progress that is not a tensor; checkpointed as JSON."""

    step: int = 0
    elapsed_s: float = 0.0
    eval_s: float = 0.0        # of elapsed_s, spent evaluating (the teacher's floor included)
    teacher_ppl: float | None = None
    history: list[dict] = field(default_factory=list)
    step_log: list[dict] = field(default_factory=list)


@dataclass
class DistillResult:
    """steps: optimizer steps done (config.steps unless max_time_s stopped the run first).
    history: one dict per evaluation {step, train_loss (mean since the previous evaluation),
    eval_ppl, eval_kl (mean KL(teacher ‖ student) per token, nats), eval_top1 (argmax
    agreement), lr (of the last step), elapsed_s, eval_s (the part of elapsed_s spent in
    evaluations so far, this one included: elapsed_s − eval_s is training time)}. step_log:
    one dict per step {step, loss, soft, hard (None when alpha = 1), lr}. teacher_ppl: the
    teacher's own held-out perplexity, the floor to compare eval_ppl with. checkpoint: the
    last one written."""

    steps: int
    stopped_early: bool
    teacher_ppl: float
    history: list[dict]
    step_log: list[dict]
    checkpoint: Path | None

    @property
    def final_ppl(self) -> float:
        return self.history[-1]["eval_ppl"]

    @property
    def final_kl(self) -> float:
        return self.history[-1]["eval_kl"]


# ---- one step ------------------------------------------------------------------------------

class _TeacherTopk:
    """The teacher's top-k log-probabilities at temperature T (log_softmax over the whole
    vocabulary, what ``kl_forward_topk_tail`` takes) per training window, computed on first use
    and kept on the CPU: windows recur (they are drawn from the grid of non-overlapping
    windows), so each is run through the teacher once. Each window is computed alone, never
    batched with others, so its entry is the same whichever windows a step happened to draw,
    and a resumed run that rebuilds the cache gets identical values. Memory: windows seen ×
    (seq_len − 1) × k × (4 bytes float32 + 4 for the int32 ids)."""

    def __init__(self, teacher, ids: torch.Tensor, seq_len: int, k: int, autocast: bool,
                 temperature: float):
        self.teacher, self.ids, self.seq_len, self.k, self.autocast = (teacher, ids, seq_len, k,
                                                                       autocast)
        self.temperature = temperature
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def __call__(self, starts: torch.Tensor, device: torch.device):
        for s in starts.tolist():
            if s not in self.cache:
                x = self.ids[s:s + self.seq_len].unsqueeze(0).to(device)
                with _autocast(device, self.autocast):
                    logits = self.teacher(x).logits[0, :-1]
                log_p = torch.log_softmax(logits.float() / self.temperature, dim=-1)
                v, i = log_p.topk(self.k, dim=-1)
                self.cache[s] = (v.cpu(), i.to(torch.int32).cpu())
        values = torch.stack([self.cache[s][0] for s in starts.tolist()]).to(device)
        indices = torch.stack([self.cache[s][1] for s in starts.tolist()]).to(device)
        return values, indices


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _loss(student_logits, teacher_out, labels, cfg: DistillConfig):
    if cfg.alpha == 0 or (cfg.topk is None and cfg.loss == "forward"):
        # The hard loss alone, or with the forward KL on full logits: the fused loss, same
        # value and gradient at a fraction of the time (losses_fused.py).
        return distill_loss_fused(student_logits, teacher_out, labels,
                                  temperature=cfg.temperature, alpha=cfg.alpha)
    if cfg.topk is None:
        return distill_loss(student_logits, teacher_out, labels, kind=cfg.loss,
                            temperature=cfg.temperature, alpha=cfg.alpha)
    # A top-k teacher (alpha > 0 here): distill_loss takes full teacher logits, so the mix is
    # made here by its rules (a term with weight 0 is left out, parts are detached floats).
    soft = kl_forward_topk_tail(student_logits, *teacher_out, temperature=cfg.temperature)
    parts = {"soft": float(soft.detach())}
    total = cfg.alpha * soft
    if cfg.alpha < 1:
        hard = hard_ce(student_logits, labels)
        parts["hard"] = float(hard.detach())
        total = total + (1 - cfg.alpha) * hard
    parts["total"] = float(total.detach())
    return total, parts


def _backward_step(student, teacher, windows: torch.Tensor, starts: torch.Tensor,
                   cfg: DistillConfig, teacher_topk: _TeacherTopk | None) -> dict[str, float]:
    """Forward and backward over one optimizer step's windows (batch_size · grad_accum,
    seq_len) int64, batch_size at a time; the gradients are left summed in .grad.

    Each micro-batch loss is a mean over its batch_size · (seq_len − 1) predicted tokens and is
    divided by grad_accum. Every micro-batch holds the same number of tokens, so the summed
    gradient is that of the token mean over the whole step: grad_accum × b gives the update of
    one batch of grad_accum · b windows. Returns the step's parts (means over micro-batches)."""
    device = _device_of(student)
    sums: dict[str, float] = {}
    for chunk, chunk_starts in zip(windows.split(cfg.batch_size), starts.split(cfg.batch_size)):
        x = chunk.to(device)
        with _autocast(device, cfg.autocast_bf16):
            if cfg.alpha == 0:
                teacher_out = None
            elif teacher_topk is not None:
                teacher_out = teacher_topk(chunk_starts, device)
            else:
                # A bf16 teacher copy runs as it is: autocast would only add casts around it.
                with torch.no_grad(), _autocast(device, cfg.autocast_bf16
                                                and not cfg.teacher_bf16):
                    teacher_out = teacher(x).logits[:, :-1]
            student_logits = student(x).logits[:, :-1]
        loss, parts = _loss(student_logits, teacher_out, x[:, 1:], cfg)
        (loss / cfg.grad_accum).backward()
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v / cfg.grad_accum
    return sums


def _device_of(model) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _EvalReference:
    """The teacher as evaluate_quality's reference, its logits kept per evaluation window: every
    evaluation reads the same windows of the same frozen teacher, so each is computed once
    (when they fit in ``max_bytes``; else the teacher runs every time)."""

    def __init__(self, teacher, n_windows: int, window: int, vocab: int | None,
                 max_bytes: int = 4 << 30):
        self.teacher = teacher
        self.cache: dict[bytes, torch.Tensor] | None = (
            {} if vocab is not None and n_windows * window * vocab * 4 <= max_bytes else None)

    @torch.no_grad()
    def __call__(self, chunk: torch.Tensor):
        if self.cache is None:
            return self.teacher(chunk)
        key = chunk.cpu().numpy().tobytes()
        if key not in self.cache:
            self.cache[key] = self.teacher(chunk).logits
        return SimpleNamespace(logits=self.cache[key])


def _evaluate(student, reference: _EvalReference, eval_ids: torch.Tensor,
              cfg: DistillConfig) -> QualityResult:
    """Held-out quality in the models' own dtype (no autocast: the figure must not depend on
    the training precision), student in eval mode."""
    was_training = student.training
    student.eval()
    try:
        return evaluate_quality(student, eval_ids, cfg.eval_len, cfg.eval_windows,
                                reference=reference, progress=False)
    finally:
        student.train(was_training)


def _trajectory(cfg: DistillConfig) -> dict:
    """The config fields a resumed run must share with the checkpoint it continues."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _RUN_CONTROL}


# ---- the run -------------------------------------------------------------------------------

def _check_inputs(student, teacher, data: DistillData, cfg: DistillConfig) -> None:
    if not isinstance(data, DistillData):
        raise TypeError(f"data must be DistillData(train_ids, eval_ids), got "
                        f"{type(data).__name__}")
    s_cfg, t_cfg = getattr(student, "config", None), getattr(teacher, "config", None)
    if s_cfg is not None and t_cfg is not None:
        check_same_vocab_size(s_cfg, t_cfg)
        vocab = s_cfg.vocab_size
        for name, ids in (("train_ids", data.train_ids), ("eval_ids", data.eval_ids)):
            if ids.numel() and int(ids.max()) >= vocab:
                raise ValueError(f"{name} holds token id {int(ids.max())}, outside the "
                                 f"models' vocabulary of {vocab}")
        if cfg.topk is not None and cfg.topk > vocab:
            raise ValueError(f"topk = {cfg.topk} exceeds the vocabulary size {vocab}")
    if data.train_ids.numel() < cfg.seq_len:
        raise ValueError(f"train_ids has {data.train_ids.numel()} tokens, fewer than one "
                         f"training window of seq_len = {cfg.seq_len}")
    if data.eval_ids.numel() < cfg.eval_len:
        raise ValueError(f"eval_ids has {data.eval_ids.numel()} tokens, fewer than one "
                         f"evaluation window of {cfg.eval_len} (eval_seq_len or seq_len)")
    if _device_of(teacher) != _device_of(student):
        raise ValueError(f"teacher is on {_device_of(teacher)} but the student on "
                         f"{_device_of(student)}: put both on the same device")


def _progress_bar(cfg: DistillConfig, initial: int):
    from tqdm.auto import tqdm

    show = cfg.progress
    if show is None:
        show = sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")
    return tqdm(total=cfg.steps, initial=initial, desc="distill", unit="step",
                disable=not show)


def distill(student, teacher, data: DistillData,
            config: DistillConfig | None = None) -> DistillResult:
    """Trains ``student`` in place to match ``teacher`` on data.train_ids; returns the run's
    record. student, teacher: causal LMs returning .logits (batch, seq, vocab) with the same
    vocabulary, on the same device. data: ``DistillData(train_ids, eval_ids)``, two 1-D integer
    token streams. The student's mode is restored on return; the teacher is left in eval mode.

    With config.checkpoint_dir and resume=True, a run continues from the checkpoint there (the
    config, all but the run-control fields, and the data must match) and reaches the same
    weights as if it had never stopped; without resume an existing checkpoint is an error.
    """
    cfg = config if config is not None else DistillConfig()
    _check_inputs(student, teacher, data, cfg)
    from . import students as hooks  # the compressed-student contract: masks, trainable set

    params = list(hooks.trainable_parameters(student))
    if not params:
        raise ValueError("the student has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    fingerprint = data.fingerprint()
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir is not None else None
    run, last_ckpt = _Run(), None
    if ckpt_dir is not None and (found := latest_checkpoint(ckpt_dir)) is not None:
        if not cfg.resume:
            raise ValueError(f"{ckpt_dir} already holds a checkpoint ({found.name}); pass "
                             f"resume=True to continue it or choose another checkpoint_dir")
        saved = load_checkpoint(found, student, optimizer, _trajectory(cfg), fingerprint,
                                _device_of(student))
        run, last_ckpt = _Run(**saved), found
    saved_step = run.step if last_ckpt is not None else None

    device = _device_of(student)
    eval_ids = data.eval_ids.to(device)
    train_teacher = teacher
    if cfg.teacher_bf16 and cfg.alpha > 0:
        train_teacher = copy.deepcopy(teacher).to(torch.bfloat16).eval().requires_grad_(False)
    teacher_topk = (_TeacherTopk(train_teacher, data.train_ids, cfg.seq_len, cfg.topk,
                                 cfg.autocast_bf16 and not cfg.teacher_bf16, cfg.temperature)
                    if cfg.topk is not None and cfg.alpha > 0 else None)
    n_eval = eval_ids.numel() // cfg.eval_len
    reference = _EvalReference(teacher, n_eval if cfg.eval_windows is None
                               else min(n_eval, cfg.eval_windows), cfg.eval_len,
                               getattr(getattr(teacher, "config", None), "vocab_size", None))
    cuda_devices = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    was_training = student.training
    teacher.eval()
    student.train()
    t0, elapsed0 = time.perf_counter(), run.elapsed_s

    def elapsed() -> float:
        return elapsed0 + time.perf_counter() - t0

    def record_eval() -> None:
        start = time.perf_counter()
        q = _evaluate(student, reference, eval_ids, cfg)
        run.eval_s += time.perf_counter() - start
        since = [s["loss"] for s in run.step_log
                 if s["step"] > (run.history[-1]["step"] if run.history else 0)]
        run.history.append({"step": run.step,
                            "train_loss": sum(since) / len(since) if since else None,
                            "eval_ppl": q.ppl, "eval_kl": q.kl, "eval_top1": q.top1_agreement,
                            "lr": run.step_log[-1]["lr"] if run.step_log else None,
                            "elapsed_s": elapsed(), "eval_s": run.eval_s})

    def checkpoint() -> None:
        nonlocal last_ckpt, saved_step
        run.elapsed_s = elapsed()
        last_ckpt = save_checkpoint(ckpt_dir, student, optimizer, dataclasses.asdict(run),
                                    _trajectory(cfg), fingerprint)
        saved_step = run.step

    bar = _progress_bar(cfg, run.step)
    stopped_early = False
    try:
        if run.step == 0 and not run.history:
            start = time.perf_counter()
            run.teacher_ppl = evaluate_quality(reference, eval_ids, cfg.eval_len,
                                               cfg.eval_windows, progress=False).ppl
            run.eval_s += time.perf_counter() - start
            record_eval()
        while run.step < cfg.steps:
            if cfg.max_time_s is not None and time.perf_counter() - t0 >= cfg.max_time_s:
                stopped_early = True
                break
            lr = lr_at(run.step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            seed = step_seed(cfg.seed, run.step)
            starts = sample_starts(data.train_ids.numel(), cfg.batch_size * cfg.grad_accum,
                                   cfg.seq_len, torch.Generator().manual_seed(seed),
                                   aligned=teacher_topk is not None)
            windows = gather_windows(data.train_ids, starts, cfg.seq_len)
            # Dropout and any other sampling inside the models also draw from (seed, step),
            # in a fork so the caller's RNG streams are left as they were.
            with torch.random.fork_rng(devices=cuda_devices):
                torch.manual_seed(seed)
                parts = _backward_step(student, train_teacher, windows, starts, cfg,
                                       teacher_topk)
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            student.zero_grad(set_to_none=True)
            hooks.after_step(student)
            run.step += 1
            run.step_log.append({"step": run.step, "loss": parts["total"],
                                 "soft": parts.get("soft"), "hard": parts.get("hard"), "lr": lr})
            if cfg.eval_every is not None and run.step % cfg.eval_every == 0:
                record_eval()
            if ckpt_dir is not None and cfg.checkpoint_every is not None \
                    and run.step % cfg.checkpoint_every == 0:
                checkpoint()
            bar.set_postfix(loss=f"{parts['total']:.4f}",
                            ppl=f"{run.history[-1]['eval_ppl']:.2f}", refresh=False)
            bar.update(1)
        if run.history[-1]["step"] != run.step:
            record_eval()
        if ckpt_dir is not None and saved_step != run.step:
            checkpoint()
    finally:
        bar.close()
        student.train(was_training)
    return DistillResult(run.step, stopped_early, run.teacher_ppl, run.history, run.step_log,
                         last_ckpt)
