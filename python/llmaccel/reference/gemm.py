import torch

from ..formats import PackedInt4, unpack_int4
from .dequant import dequant_w4, dequant_w8
from .quant import quantize_act_int8


def _finish(y: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, n: int) -> torch.Tensor:
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype).reshape(*x.shape[:-1], n)


def gemm_f32(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (..., K) float32/bfloat16 · weight (N, K) float32ᵀ + bias → (..., N) in x's dtype."""
    n, k = weight.shape
    return _finish(x.reshape(-1, k).float() @ weight.t(), bias, x, n)


def gemm_w4a16(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
               zeros: torch.Tensor | None, bias: torch.Tensor | None, n: int) -> torch.Tensor:
    """x (..., K) float32/bfloat16 · dequant_w4(W)ᵀ + bias → (..., n) in x's dtype, fp32 math."""
    k = x.shape[-1]
    w = dequant_w4(qweight, scales, zeros, n, k)
    return _finish(x.reshape(-1, k).float() @ w.t(), bias, x, n)


def gemm_w4a8(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
              zeros: torch.Tensor | None, bias: torch.Tensor | None, n: int) -> torch.Tensor:
    """x quantized per token in blocks of the group size, then exact int32 group dot products:
    y = Σ_g sx[m,g]·s[n,g]·(Σ_{k∈g} xq·q − zero[n,g]·Σ_{k∈g} xq) + bias."""
    k = x.shape[-1]
    p = PackedInt4(qweight, scales, zeros, n, k, (qweight.shape[1] // 8) // scales.shape[1])
    codes, s, z = unpack_int4(p)
    g, n_groups = p.group_size, s.shape[1]
    xq, sx, qsum = quantize_act_int8(x.reshape(-1, k), g)
    m = xq.shape[0]
    wq = torch.zeros(n, p.k_pad, dtype=torch.int64)
    wq[:, :k] = codes.long()
    # Exact integer dot products per group (int64 matmul has no rounding).
    dots = torch.einsum("mgk,ngk->mng", xq.long().view(m, n_groups, g), wq.view(n, n_groups, g))
    zero = z.long() if z is not None else torch.full((n, n_groups), 8, dtype=torch.int64)
    centered = dots - zero.unsqueeze(0) * qsum.long().unsqueeze(1)
    y = (centered.float() * (sx.unsqueeze(1) * s.unsqueeze(0))).sum(dim=2)
    return _finish(y, bias, x, n)


def gemm_w8a16(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
               bias: torch.Tensor | None, n: int) -> torch.Tensor:
    """x (..., K) · (q · scale)ᵀ + bias, fp32 math, output in x's dtype."""
    k = x.shape[-1]
    w = dequant_w8(qweight, torch.ones_like(scales), n, k)
    y = (x.reshape(-1, k).float() @ w.t()) * scales[:n]
    return _finish(y, bias, x, n)


def gemm_w8a8(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
              bias: torch.Tensor | None, n: int, act_block: int = 0) -> torch.Tensor:
    """Dynamic int8 x · int8 W with exact int32 dots and scaled epilogues.

    act_block = 0: one activation scale per token over all of K, y = sx·s·Σ xq·q + bias.
    act_block = B: one per token and block of B columns, y = s·Σ_b sx_b·Σ_{k∈b} xq·q + bias
    (a single block is the per-token formula)."""
    k = x.shape[-1]
    k_pad = qweight.shape[1] // 16
    block = act_block if act_block > 0 else k_pad
    xq, sx, _ = quantize_act_int8(x.reshape(-1, k), block)
    wq = dequant_w8(qweight, torch.ones_like(scales), n, k).long()
    m, n_blocks = xq.shape[0], sx.shape[1]
    xl = torch.zeros(m, n_blocks * block, dtype=torch.int64)
    xl[:, :k] = xq[:, :k].long()
    wl = torch.zeros(n, n_blocks * block, dtype=torch.int64)
    wl[:, :k] = wq
    dots = torch.einsum("mbk,nbk->mnb", xl.view(m, n_blocks, block), wl.view(n, n_blocks, block))
    if n_blocks == 1:
        y = dots[:, :, 0].float() * (sx * scales[:n].unsqueeze(0))
    else:
        y = (dots.float() * sx.unsqueeze(1)).sum(dim=2) * scales[:n].unsqueeze(0)
    return _finish(y, bias, x, n)
