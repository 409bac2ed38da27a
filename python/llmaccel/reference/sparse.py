"""Reference twins of the 2:4 sparse GEMMs: unpack to the dense weight, then one fp32 matmul."""

import torch

from ..formats import PackedInt4Sp24, PackedSp24, unpack_int4_sp24, unpack_sp24
from .gemm import _finish


def gemm_w4a16_sp24(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                    bias: torch.Tensor | None, n: int) -> torch.Tensor:
    """x (..., K), rounded to bfloat16, · ((q − 8) · scale)ᵀ + bias, fp32 math, output in x's
    dtype (see csrc/sparse/gemm_sp24.h for why the activations are bf16)."""
    k = x.shape[-1]
    k_pad = qweight.shape[1] // 192 * 32
    codes, s = unpack_int4_sp24(PackedInt4Sp24(qweight, scales, n, k, k_pad // scales.shape[1]))
    g = k_pad // scales.shape[1]
    w = (codes.float() - 8) * s.repeat_interleave(g, dim=1)[:, :k]
    return _finish(x.reshape(-1, k).bfloat16().float() @ w.t(), bias, x, n)


def gemm_sp24(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None,
              n: int) -> torch.Tensor:
    """x (..., K) · Wᵀ + bias with W the bf16 values of a bf16_sp24 weight, fp32 math."""
    k = x.shape[-1]
    w = unpack_sp24(PackedSp24(packed, n, k))
    return _finish(x.reshape(-1, k).float() @ w.t(), bias, x, n)
