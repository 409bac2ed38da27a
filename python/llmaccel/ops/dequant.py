"""Dequantization ops: packed weight → float32 (n, k). For fallbacks, debugging and export."""

from __future__ import annotations

import torch

from .. import _C
from ._library import check_cpu, fail, lib, num_threads, ptr
from .gemm import check_w4, check_w8

lib.define("dequant_w4(Tensor qweight, Tensor scales, Tensor? zeros, int n, int k) -> Tensor")
lib.define("dequant_w8(Tensor qweight, Tensor scales, int n, int k) -> Tensor")


def _dequant_w4(qweight, scales, zeros, n, k):
    op = "dequant_w4"
    check_cpu(op, qweight=qweight, scales=scales, zeros=zeros)
    k_pad, group = check_w4(op, qweight, scales, zeros, n)
    if not (k_pad - group < k <= k_pad):
        fail(op, f"k={k} does not match the packed k_pad={k_pad} (group {group})")
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


lib.impl("dequant_w4", _dequant_w4, "CPU")
lib.impl("dequant_w8", _dequant_w8, "CPU")


@torch.library.register_fake("llmaccel::dequant_w4", lib=lib)
def _(qweight, scales, zeros, n, k):
    return qweight.new_empty(n, k, dtype=torch.float32)


@torch.library.register_fake("llmaccel::dequant_w8", lib=lib)
def _(qweight, scales, n, k):
    return qweight.new_empty(n, k, dtype=torch.float32)


dequant_w4 = torch.ops.llmaccel.dequant_w4.default
dequant_w8 = torch.ops.llmaccel.dequant_w8.default
