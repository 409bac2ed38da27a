"""The distillation trainer's loss kernel: llmaccel::distill_loss_rows (csrc/train/)."""

from __future__ import annotations

import math

import torch

from .. import _C
from ._library import ACT_DTYPES, check_cpu, check_dtype, fail, lib, num_threads, ptr

lib.define("distill_loss_rows(Tensor student, Tensor? teacher, Tensor? labels, float alpha, "
           "float temperature, float scale) -> (Tensor, Tensor, Tensor)")


def _rows_view(op: str, name: str, x: torch.Tensor, shape: tuple[int, ...] | None
               ) -> torch.Tensor:
    check_dtype(op, name, x, *ACT_DTYPES)
    if x.dim() != 2 or x.shape[1] == 0 or (shape is not None and tuple(x.shape) != shape):
        want = f"{shape}" if shape is not None else "(rows, V) with V >= 1"
        fail(op, f"{name} must be 2-D {want}, got shape {tuple(x.shape)}")
    # Rows may be strided (a slice of a larger batch); each row's logits must be contiguous.
    return x if x.stride(1) == 1 and x.stride(0) >= x.shape[1] else x.contiguous()


def _distill_loss_rows(student, teacher, labels, alpha, temperature, scale):
    op = "distill_loss_rows"
    check_cpu(op, student=student, teacher=teacher, labels=labels)
    if not 0 <= alpha <= 1:
        fail(op, f"alpha must be in [0, 1], got {alpha}")
    if not (math.isfinite(temperature) and temperature > 0):
        fail(op, f"temperature must be finite and > 0, got {temperature}")
    s = _rows_view(op, "student", student, None)
    rows, vocab = s.shape
    t = None
    if alpha > 0:
        if teacher is None:
            fail(op, f"alpha = {alpha} > 0 needs teacher logits")
        t = _rows_view(op, "teacher", teacher, (rows, vocab))
    y = None
    if alpha < 1:
        if labels is None:
            fail(op, f"alpha = {alpha} < 1 needs labels")
        check_dtype(op, "labels", labels, torch.int64)
        if tuple(labels.shape) != (rows,):
            fail(op, f"labels must have shape ({rows},), got {tuple(labels.shape)}")
        y = labels.contiguous()
        if rows and (int(y.min()) < 0 or int(y.max()) >= vocab):
            fail(op, f"labels must lie in [0, {vocab}), got [{int(y.min())}, {int(y.max())}]")
    grad = torch.empty(rows, vocab, dtype=s.dtype)
    kl = torch.zeros(rows, dtype=torch.float32)
    nll = torch.zeros(rows, dtype=torch.float32)
    if rows == 0:
        return grad, kl, nll
    _C.distill_loss_rows(ptr(s), ACT_DTYPES[s.dtype], rows, vocab, s.stride(0), ptr(t),
                         ACT_DTYPES[t.dtype] if t is not None else 0,
                         t.stride(0) if t is not None else vocab, ptr(y), alpha, temperature,
                         scale, ptr(grad), ACT_DTYPES[grad.dtype], vocab, ptr(kl), ptr(nll),
                         num_threads())
    return grad, kl, nll


lib.impl("distill_loss_rows", _distill_loss_rows, "CPU")


@torch.library.register_fake("llmaccel::distill_loss_rows", lib=lib)
def _(student, teacher, labels, alpha, temperature, scale):
    rows = student.shape[0]
    return (torch.empty_like(student, memory_format=torch.contiguous_format),
            student.new_empty(rows, dtype=torch.float32),
            student.new_empty(rows, dtype=torch.float32))


distill_loss_rows = torch.ops.llmaccel.distill_loss_rows.default
