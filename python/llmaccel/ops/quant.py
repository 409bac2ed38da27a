"""Dynamic int8 activation quantization: llmaccel::quantize_act_int8."""

from __future__ import annotations

import torch

from .. import _C
from ._library import ACT_DTYPES, act_2d, check_cpu, fail, lib, num_threads, ptr

lib.define("quantize_act_int8(Tensor x, int block) -> (Tensor, Tensor, Tensor)")


def _quantize_act_int8(x, block):
    op = "quantize_act_int8"
    check_cpu(op, x=x)
    if x.dim() != 2:
        fail(op, f"x must be 2-D (M, K), got shape {tuple(x.shape)}")
    if block < 1:
        fail(op, f"block must be >= 1, got {block}")
    x2 = act_2d(op, x)
    m, k = x2.shape
    k_pad = (k + block - 1) // block * block
    q = torch.empty(m, k_pad, dtype=torch.int8)
    scale = torch.empty(m, k_pad // block, dtype=torch.float32)
    qsum = torch.empty(m, k_pad // block, dtype=torch.int32)
    if m == 0:
        return q, scale, qsum
    _C.quant_act_int8(ptr(x2), ACT_DTYPES[x.dtype], m, k, x2.stride(0), block, k_pad, ptr(q),
                      ptr(scale), ptr(qsum), num_threads())
    return q, scale, qsum


lib.impl("quantize_act_int8", _quantize_act_int8, "CPU")


@torch.library.register_fake("llmaccel::quantize_act_int8", lib=lib)
def _(x, block):
    m, k = x.shape
    nb = (k + block - 1) // block
    return (x.new_empty(m, nb * block, dtype=torch.int8), x.new_empty(m, nb, dtype=torch.float32),
            x.new_empty(m, nb, dtype=torch.int32))


quantize_act_int8 = torch.ops.llmaccel.quantize_act_int8.default
