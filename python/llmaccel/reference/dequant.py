import torch

from ..formats import (PackedInt4, PackedInt4Sp24, PackedInt8, PackedSp24, dequant_int4_sp24,
                       unpack_int4, unpack_int8, unpack_sp24)


def dequant_w4(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
               n: int, k: int) -> torch.Tensor:
    """int4_tile16x8 → float32 (n, k): (q − zero) · scale, zero = 8 when ``zeros`` is None."""
    k_pad = qweight.shape[1] // 8
    p = PackedInt4(qweight, scales, zeros, n, k, k_pad // scales.shape[1])
    codes, s, z = unpack_int4(p)
    zero = z.float() if z is not None else torch.full_like(s, 8.0)
    g = p.group_size
    w = (codes.float() - zero.repeat_interleave(g, 1)[:, :k]) * s.repeat_interleave(g, 1)[:, :k]
    return w


def dequant_w8(qweight: torch.Tensor, scales: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """int8_tile16x4 → float32 (n, k): q · scale."""
    q, s = unpack_int8(PackedInt8(qweight, scales, n, k))
    return q.float() * s.unsqueeze(1)


def dequant_w4_sp24(qweight: torch.Tensor, scales: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """int4_sp24_tile16x32 → float32 (n, k): (q − 8) · scale, 0 where pruned."""
    return dequant_int4_sp24(PackedInt4Sp24.of(qweight, scales, n, k))


def dequant_sp24(packed: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """bf16_sp24_tile16x32 → float32 (n, k): the stored bf16 values, 0 where pruned."""
    return unpack_sp24(PackedSp24(packed, n, k))
