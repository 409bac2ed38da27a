"""Glue for ``llmaccel distill``: token streams from the Shakespeare splits, a student built by
mode (a compressed checkpoint, or fewer layers of the teacher), and the packing after training.

    data = shakespeare_data(teacher_tok)
    student, prep = build_student(teacher, student=pruned_model)  # or drop_layers=N
    result = distill(student, teacher, data, DistillConfig(...))
    finish_student(student, prep)          # FakeQuantLinear → QuantLinear, 2:4 → SparseLinear
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..nn import QuantLinear, SparseLinear
from .data import DistillData
from .students import (_maskable, fake_quant_student, layer_dropped_student, pack_fake_quant,
                       pruned_student)


@dataclass
class StudentPrep:
    """What build_student did, so finish_student can undo the training-time forms."""

    mode: str                          # "checkpoint" or "layer-dropped"
    fake_quant: bool = False           # QuantLinear/int4 SparseLinear → FakeQuantLinear
    pinned_zeros: bool = False         # pruned_student masks keep the zeros fixed
    had_sparse: bool = False           # the student held 2:4 SparseLinear layers


def shakespeare_data(tokenizer, max_train_tokens: int | None = None,
                     max_eval_tokens: int | None = None) -> DistillData:
    """Training ids from the calibration plays, held-out ids from the evaluation plays (disjoint
    texts), tokenized with ``tokenizer`` (the teacher's)."""
    from .. import data as text_data  # looked up at call time: tests replace shakespeare_text

    def ids(split: str, limit: int | None):
        out = tokenizer(text_data.shakespeare_text(split), return_tensors="pt").input_ids[0]
        return out if limit is None else out[:limit]

    return DistillData(ids("calibration", max_train_tokens), ids("evaluation", max_eval_tokens))


def layer_calibration(train_ids: torch.Tensor, windows: int = 8,
                      seq_len: int = 512) -> torch.Tensor:
    """The first ``windows`` non-overlapping windows of a training stream (as many as fit),
    (n, seq_len): what ``build_student`` measures hidden states on to choose layers to drop."""
    seq_len = min(seq_len, train_ids.numel())
    n = max(1, min(windows, train_ids.numel() // seq_len))
    return train_ids[:n * seq_len].view(n, seq_len)


def _has_zero_weights(model: nn.Module) -> bool:
    return any(_maskable(m) and bool((m.weight == 0).any()) for m in model.modules())


def check_student_args(student_given: bool, drop_layers: int | None,
                       fake_quant_bits: int | None, group_size: int | None) -> None:
    """ValueError for student flags that contradict each other (before any model is loaded)."""
    if student_given == (drop_layers is not None):
        raise ValueError("give exactly one of --student (a compressed model) and --drop-layers "
                         "(a student made from the teacher)")
    if group_size is not None and fake_quant_bits is None:
        raise ValueError("--group-size applies to --fake-quant-bits: give both")
    if drop_layers is not None and fake_quant_bits is not None:
        raise ValueError("--fake-quant-bits trains the QuantLinear layers of a quantized "
                         "--student; a --drop-layers student is float")


def build_student(teacher: nn.Module, student: nn.Module | None = None,
                  drop_layers: int | None = None, fake_quant_bits: int | None = None,
                  group_size: int | None = None,
                  calibration: torch.Tensor | None = None) -> tuple[nn.Module, StudentPrep]:
    """The trainable student and what was done to it.

    student: a compressed model (pruned: zeros kept fixed; quantized: needs fake_quant_bits,
        its QuantLinear layers train as FakeQuantLinear on their own scales). drop_layers: make
        the student from ``teacher`` keeping this many decoder layers, dropping the block that
        changes ``calibration``'s hidden states least (token ids; None: an even spread; see
        ``layer_dropped_student``). Exactly one of student and drop_layers.
    """
    check_student_args(student is not None, drop_layers, fake_quant_bits, group_size)
    if drop_layers is not None:
        return (layer_dropped_student(teacher, drop_layers, calibration=calibration),
                StudentPrep("layer-dropped"))
    prep = StudentPrep("checkpoint")
    prep.had_sparse = any(isinstance(m, SparseLinear) for m in student.modules())
    quantized = any(isinstance(m, QuantLinear) or (isinstance(m, SparseLinear)
                                                   and m.config.bits == 4)
                    for m in student.modules())
    if fake_quant_bits is not None:
        if not quantized:
            raise ValueError("--fake-quant-bits needs a quantized --student (int4 QuantLinear "
                             "or SparseLinear layers); this one has none")
        fake_quant_student(student, bits=fake_quant_bits, group_size=group_size,
                           init="quantized")
        prep.fake_quant = True
        # A quantized weight on the zero point's code is exactly zero too: only 2:4 layers
        # (which pruned_student reads as 2:4) have zeros that mean "pruned".
        pin = prep.had_sparse
    else:
        if quantized:
            raise ValueError("the --student has quantized layers, whose codes do not train: "
                             "give --fake-quant-bits (their bits, e.g. 4) to train them "
                             "through fake quantization")
        pin = prep.had_sparse or _has_zero_weights(student)
    if pin:
        pruned_student(student)
        prep.pinned_zeros = True
    return student, prep


def finish_student(student: nn.Module, prep: StudentPrep) -> nn.Module:
    """Back to the stored forms: FakeQuantLinear → QuantLinear (same scales, trained codes) and,
    where the student came as 2:4 SparseLinear, 2:4 layers → SparseLinear again."""
    if prep.fake_quant:
        pack_fake_quant(student)
    if prep.had_sparse:
        from ..pruning import sparsify_

        sparsify_(student)
    return student.eval()


def history_table(result, teacher_ppl: float | None = None) -> str:
    """A small before/after table of a DistillResult."""
    first, last = result.history[0], result.history[-1]
    rows = [("teacher ppl", f"{result.teacher_ppl if teacher_ppl is None else teacher_ppl:.3f}",
             ""),
            ("student ppl", f"{first['eval_ppl']:.3f}", f"{last['eval_ppl']:.3f}"),
            ("KL(teacher‖student)", f"{first['eval_kl']:.4f}", f"{last['eval_kl']:.4f}"),
            ("top-1 agreement", f"{first['eval_top1']:.3f}", f"{last['eval_top1']:.3f}"),
            ("steps", "0", str(result.steps)),
            ("seconds training", "", f"{last['elapsed_s'] - last['eval_s']:.1f}"),
            ("seconds evaluating", "", f"{last['eval_s']:.1f}")]
    lines = [f"{'':22s}{'before':>12s}{'after':>12s}"]
    lines += [f"{name:22s}{before:>12s}{after:>12s}" for name, before, after in rows]
    if result.stopped_early:
        lines.append("(stopped early by --max-time-s)")
    return "\n".join(lines)
