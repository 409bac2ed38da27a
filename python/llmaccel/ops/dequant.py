"""Dequantization ops: packed weight → float32 (n, k). For fallbacks, debugging, export, and the
backward of the GEMM ops (ops/autograd.py)."""

from __future__ import annotations

import torch

from .. import _C
from ._library import check_cpu, fail, lib, num_threads, ptr
from .gemm import check_w4, check_w8
from .sparse import _check_sp24, _check_w4_sp24

lib.define("dequant_w4(Tensor qweight, Tensor scales, Tensor? zeros, int n, int k) -> Tensor")
lib.define("dequant_w8(Tensor qweight, Tensor scales, int n, int k) -> Tensor")
lib.define("dequant_w4_sp24(Tensor qweight, Tensor scales, int n, int k) -> Tensor")
lib.define("dequant_sp24(Tensor packed, int n, int k) -> Tensor")


def _check_k(op: str, k: int, k_pad: int, group: int) -> None:
    if not (k_pad - group < k <= k_pad):
        fail(op, f"k={k} does not match the packed k_pad={k_pad} (group {group})")


def _dequant_w4(qweight, scales, zeros, n, k):
    op = "dequant_w4"
    check_cpu(op, qweight=qweight, scales=scales, zeros=zeros)
    k_pad, group = check_w4(op, qweight, scales, zeros, n)
    _check_k(op, k, k_pad, group)
    out = torch.empty(n, k, dtype=torch.float32)
    _C.dequant_w4(ptr(qweight), ptr(scales), ptr(zeros), n, k, qweight.shape[0] * 16, k_pad,
                  group, ptr(out), k, num_threads())
    return out


def _dequant_w8(qweight, scales, n, k):
    op = "dequant_w8"
    check_cpu(op, qweight=qweight, scales=scales)
    k_pad = check_w8(op, qweight, scales, n)
    if not (k_pad - 4 < k <= k_pad):
        fail(op, f"k={k} does not match the packed k_pad={k_pad}")
    out = torch.empty(n, k, dtype=torch.float32)
    _C.dequant_w8(ptr(qweight), ptr(scales), n, k, qweight.shape[0] * 16, k_pad, ptr(out), k,
                  num_threads())
    return out


def _dequant_w4_sp24(qweight, scales, n, k):
    op = "dequant_w4_sp24"
    k_pad, group = _check_w4_sp24(op, qweight, scales, None, n)
    _check_k(op, k, k_pad, group)
    out = torch.empty(n, k, dtype=torch.float32)
    _C.dequant_w4_sp24(ptr(qweight), ptr(scales), n, k, qweight.shape[0] * 16, k_pad, group,
                       ptr(out), k, num_threads())
    return out


def _dequant_sp24(packed, n, k):
    op = "dequant_sp24"
    k_pad, group = _check_sp24(op, packed, None, n)
    _check_k(op, k, k_pad, group)
    out = torch.empty(n, k, dtype=torch.float32)
    _C.dequant_sp24(ptr(packed), n, k, packed.shape[0] * 16, k_pad, ptr(out), k, num_threads())
    return out


lib.impl("dequant_w4", _dequant_w4, "CPU")
lib.impl("dequant_w8", _dequant_w8, "CPU")
lib.impl("dequant_w4_sp24", _dequant_w4_sp24, "CPU")
lib.impl("dequant_sp24", _dequant_sp24, "CPU")


@torch.library.register_fake("llmaccel::dequant_w4", lib=lib)
def _(qweight, scales, zeros, n, k):
    return qweight.new_empty(n, k, dtype=torch.float32)


@torch.library.register_fake("llmaccel::dequant_w8", lib=lib)
def _(qweight, scales, n, k):
    return qweight.new_empty(n, k, dtype=torch.float32)


@torch.library.register_fake("llmaccel::dequant_w4_sp24", lib=lib)
def _(qweight, scales, n, k):
    return qweight.new_empty(n, k, dtype=torch.float32)


@torch.library.register_fake("llmaccel::dequant_sp24", lib=lib)
def _(packed, n, k):
    return packed.new_empty(n, k, dtype=torch.float32)


dequant_w4 = torch.ops.llmaccel.dequant_w4.default
dequant_w8 = torch.ops.llmaccel.dequant_w8.default
dequant_w4_sp24 = torch.ops.llmaccel.dequant_w4_sp24.default
dequant_sp24 = torch.ops.llmaccel.dequant_sp24.default
