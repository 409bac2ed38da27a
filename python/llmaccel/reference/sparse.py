"""Reference twins of the 2:4 sparse GEMMs: unpack to the dense weight, then one fp32 matmul."""

import torch

from ..formats import PackedInt4Sp24, unpack_int4_sp24
from .dequant import dequant_sp24, dequant_w4_sp24
from .gemm import _finish
from .quant import quantize_act_int8


def _int4_sp24_codes(qweight: torch.Tensor, scales: torch.Tensor, n: int,
                     k: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The codes (n, k), scales (n, n_groups) and group size of an int4_sp24 weight."""
    p = PackedInt4Sp24.of(qweight, scales, n, k)
    codes, s = unpack_int4_sp24(p)
    return codes, s, p.group_size


def gemm_w4a16_sp24(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                    bias: torch.Tensor | None, n: int) -> torch.Tensor:
    """x (..., K), rounded to bfloat16, · ((q − 8) · scale)ᵀ + bias, fp32 math, output in x's
    dtype (see csrc/sparse/gemm_sp24.h for why the activations are bf16)."""
    k = x.shape[-1]
    w = dequant_w4_sp24(qweight, scales, n, k)
    return _finish(x.reshape(-1, k).bfloat16().float() @ w.t(), bias, x, n)


def gemm_w4a8_sp24(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                   bias: torch.Tensor | None, n: int) -> torch.Tensor:
    """x quantized per token in blocks of the group size, then exact integer group sums over
    the kept weights: y = Σ_g sx[m,g]·s[n,g]·Σ_{k∈g} xq·(q − 8) + bias (pruned weights are 0)."""
    k = x.shape[-1]
    codes, s, g = _int4_sp24_codes(qweight, scales, n, k)
    n_groups = s.shape[1]
    xq, sx, _ = quantize_act_int8(x.reshape(-1, k), g)
    wq = torch.zeros(n, n_groups * g, dtype=torch.int64)
    wq[:, :k] = codes.long() - 8  # pruned weights unpack as code 8: 0
    m = xq.shape[0]
    dots = torch.einsum("mgk,ngk->mng", xq.long().view(m, n_groups, g), wq.view(n, n_groups, g))
    y = (dots.float() * (sx.unsqueeze(1) * s.unsqueeze(0))).sum(dim=2)
    return _finish(y, bias, x, n)


def gemm_sp24(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None,
              n: int) -> torch.Tensor:
    """x (..., K) · Wᵀ + bias with W the bf16 values of a bf16_sp24 weight, fp32 math."""
    k = x.shape[-1]
    w = dequant_sp24(packed, n, k)
    return _finish(x.reshape(-1, k).float() @ w.t(), bias, x, n)
