"""2:4 sparse formats. Along K, every group of 4 columns of a row keeps (at most) 2 weights; a row
stores exactly 2 slots per group, a and b, each with a 2-bit position in the group (a group with
fewer than 2 nonzeros stores zeros in the spare slots). K is padded to ``k_pad``, a multiple of
32, so 32 columns (8 groups) form a *chunk*; rows are padded to multiples of 16 with zeros. The
kernels pair the two slots of a group as one bf16 pair, (w_a, w_b) · (x[pos_a], x[pos_b]), and
pick the activations with one permute per group: the position words below hold, for group j of
the chunk, pos_a at bits 2j..2j+1 of the low 16 bits and pos_b at the same bits of the high 16.

``int4_sp24_tile16x32`` v1 — 2:4 sparse int4, symmetric, group-wise scales
    Codes 0..15, weight = (q - 8) * scale; a pruned weight is code 8 (exactly 0). Groups of
    ``group_size`` columns (a multiple of 32) share a scale, as int4_tile16x8.

    - ``qweight`` uint8 ``(n_pad/16, k_pad/32 * 192)``: for row block b and chunk c, 192 bytes:
      two value planes of 64 bytes (groups 0-3, then 4-7), then one position plane of 64 bytes.
      Each plane is 16 little-endian uint32 lanes, one per row. In value plane h, lane l holds
      q_a of group 4h+i at bits 4i..4i+3 and q_b at bits 16+4i..16+4i+3.
    - ``scales`` float32 ``(n_pad/16, n_groups, 16)``, as int4_tile16x8 (0 for padded rows).
    3 bits per weight (+ scales) against int4_tile16x8's 4.

``bf16_sp24_tile16x32`` v1 — 2:4 sparse, bfloat16 values (pruned, not quantized)
    - ``packed`` uint8 ``(n_pad/16, k_pad/32 * 576)``: for row block b and chunk c, eight value
      planes of 64 bytes (group j: lane l holds the bf16 pair w_a | w_b << 16), then the position
      plane. 9 bits per weight against bf16's 16.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .dense import int4_padding
from .spec import ROW_BLOCK, FormatSpec, _check_codes, _round_up

INT4_SP24_TILE16X32 = FormatSpec("int4_sp24_tile16x32", 1)
BF16_SP24_TILE16X32 = FormatSpec("bf16_sp24_tile16x32", 1)
SP24_CHUNK = 32  # columns per chunk: 8 groups of 4, one 32-word permute table of activations


@dataclass
class PackedInt4Sp24:
    """An int4_sp24_tile16x32 weight."""

    qweight: torch.Tensor
    scales: torch.Tensor
    n: int
    k: int
    group_size: int

    @property
    def n_pad(self) -> int:
        return self.qweight.shape[0] * ROW_BLOCK

    @property
    def k_pad(self) -> int:
        return self.qweight.shape[1] // 192 * SP24_CHUNK

    @classmethod
    def of(cls, qweight: torch.Tensor, scales: torch.Tensor, n: int, k: int) -> "PackedInt4Sp24":
        """The weight these tensors hold, its group size read from their shapes (as the ops do)."""
        return cls(qweight, scales, n, k, qweight.shape[1] // 192 * SP24_CHUNK // scales.shape[1])


@dataclass
class PackedSp24:
    """A bf16_sp24_tile16x32 weight."""

    packed: torch.Tensor
    n: int
    k: int

    @property
    def n_pad(self) -> int:
        return self.packed.shape[0] * ROW_BLOCK

    @property
    def k_pad(self) -> int:
        return self.packed.shape[1] // 576 * SP24_CHUNK


def sp24_mask(nonzero: torch.Tensor) -> torch.Tensor:
    """The slots a 2:4 format stores for a (N, K) boolean of nonzero weights, K a multiple of 4:
    every nonzero, topped up to exactly 2 per group of 4 with the group's first zero positions.
    Raises ValueError where a group has more than 2 nonzeros."""
    g = nonzero.reshape(nonzero.shape[0], -1, 4)
    if bool((g.sum(dim=2) > 2).any()):
        rows, groups = torch.nonzero(g.sum(dim=2) > 2, as_tuple=True)
        raise ValueError(f"not 2:4 sparse: row {int(rows[0])}, columns "
                         f"{4 * int(groups[0])}..{4 * int(groups[0]) + 3} keep more than 2 of 4 "
                         f"({int((g.sum(dim=2) > 2).sum())} such groups)")
    # Stable sort puts nonzeros first, each part in column order: the first two are the slots.
    order = torch.sort((~g).to(torch.int8), dim=2, stable=True).indices[..., :2]
    keep = torch.zeros_like(g).scatter_(2, order, True)
    return keep.reshape(nonzero.shape)


def _sp24_slots(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (pos_a < pos_b) of the two kept slots per group: (N, K/4) int64 each."""
    pos = torch.nonzero(keep.reshape(-1, 4))[:, 1].reshape(keep.shape[0], -1, 2)
    return pos[..., 0], pos[..., 1]


def _planes(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """uint32 lanes lo | hi << 16, (n_pad, chunks, planes) int32 words → bytes laid out as
    (n_pad/16, chunks, planes, 16 lanes, 4 bytes)."""
    n_pad, chunks, planes = lo.shape
    b = torch.stack([lo & 255, lo >> 8, hi & 255, hi >> 8], dim=-1).to(torch.uint8)
    return b.view(n_pad // 16, 16, chunks, planes, 4).permute(0, 2, 3, 1, 4)


def _unplanes(t: torch.Tensor, n_pad: int, chunks: int, planes: int):
    """Inverse of _planes: (lo, hi) int32 words (n_pad, chunks, planes)."""
    b = t.view(n_pad // 16, chunks, planes, 16, 4).permute(0, 3, 1, 2, 4).to(torch.int32)
    b = b.reshape(n_pad, chunks, planes, 4)
    return b[..., 0] | (b[..., 1] << 8), b[..., 2] | (b[..., 3] << 8)


def _position_plane(pa: torch.Tensor, pb: torch.Tensor, n_pad: int, chunks: int):
    shift = 2 * torch.arange(8, dtype=torch.int32)
    lo = (pa.to(torch.int32).view(n_pad, chunks, 8) << shift).sum(dim=2, dtype=torch.int32)
    hi = (pb.to(torch.int32).view(n_pad, chunks, 8) << shift).sum(dim=2, dtype=torch.int32)
    return _planes(lo[..., None], hi[..., None])


def _read_positions(t: torch.Tensor, n_pad: int, chunks: int):
    lo, hi = _unplanes(t, n_pad, chunks, 1)
    shift = 2 * torch.arange(8, dtype=torch.int32)
    pa = (lo >> shift) & 3  # (n_pad, chunks, 8) by broadcasting over the group index
    pb = (hi >> shift) & 3
    return pa.reshape(n_pad, -1).long(), pb.reshape(n_pad, -1).long()


def _pad2(x: torch.Tensor, n_pad: int, k_pad: int, fill) -> torch.Tensor:
    out = torch.full((n_pad, k_pad), fill, dtype=x.dtype)
    out[: x.shape[0], : x.shape[1]] = x
    return out


def pack_int4_sp24(q: torch.Tensor, scales: torch.Tensor, group_size: int) -> PackedInt4Sp24:
    """Packs symmetric int4 codes q (N, K) in 0..15 (8 = zero) with at most 2 codes other than 8
    in each group of 4 columns, and scales (N, ceil(K/G))."""
    if q.dim() != 2:
        raise ValueError(f"q must be 2-D (N, K), got shape {tuple(q.shape)}")
    n, k = q.shape
    n_pad, k_pad, g = int4_padding(n, k, group_size)
    n_groups = k_pad // g
    if tuple(scales.shape) != (n, n_groups):
        raise ValueError(f"scales must have shape ({n}, {n_groups}), got {tuple(scales.shape)}")
    _check_codes("int4 codes", q, 0, 15)
    full = _pad2(q.to(torch.int32), n_pad, k_pad, 8)
    keep = sp24_mask(full != 8)
    pa, pb = _sp24_slots(keep)
    groups = full.view(n_pad, -1, 4)
    qa = torch.gather(groups, 2, pa[..., None])[..., 0]
    qb = torch.gather(groups, 2, pb[..., None])[..., 0]
    chunks = k_pad // SP24_CHUNK
    nib = 4 * torch.arange(4, dtype=torch.int32)
    lo = (qa.view(n_pad, chunks, 2, 4) << nib).sum(dim=3, dtype=torch.int32)
    hi = (qb.view(n_pad, chunks, 2, 4) << nib).sum(dim=3, dtype=torch.int32)
    tile = torch.cat([_planes(lo, hi), _position_plane(pa, pb, n_pad, chunks)], dim=2)
    s = torch.zeros(n_pad, n_groups, dtype=torch.float32)
    s[:n] = scales.to(torch.float32)
    return PackedInt4Sp24(tile.reshape(n_pad // 16, -1).contiguous(),
                          s.view(n_pad // 16, 16, n_groups).permute(0, 2, 1).contiguous(), n, k,
                          g)


def unpack_int4_sp24(p: PackedInt4Sp24) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of pack_int4_sp24: codes (N, K) uint8 (8 where pruned), scales (N, G)."""
    n_pad, chunks = p.n_pad, p.k_pad // SP24_CHUNK
    t = p.qweight.view(n_pad // 16, chunks, 3, 64)
    lo, hi = _unplanes(t[:, :, :2].contiguous(), n_pad, chunks, 2)
    nib = 4 * torch.arange(4, dtype=torch.int32)
    qa = ((lo[..., None] >> nib) & 15).reshape(n_pad, -1)
    qb = ((hi[..., None] >> nib) & 15).reshape(n_pad, -1)
    pa, pb = _read_positions(t[:, :, 2:].contiguous(), n_pad, chunks)
    codes = torch.full((n_pad, chunks * 8, 4), 8, dtype=torch.int32)
    codes.scatter_(2, pa[..., None], qa[..., None])
    codes.scatter_(2, pb[..., None], qb[..., None])
    scales = p.scales.permute(0, 2, 1).reshape(n_pad, -1)[: p.n].contiguous()
    return codes.reshape(n_pad, -1)[: p.n, : p.k].to(torch.uint8), scales


def dequant_int4_sp24(p: PackedInt4Sp24) -> torch.Tensor:
    """The float32 weight (N, K) an int4_sp24 weight represents: (q − 8) · scale, 0 where pruned."""
    codes, scales = unpack_int4_sp24(p)
    return (codes.float() - 8) * scales.repeat_interleave(p.group_size, dim=1)[:, :p.k]


def pack_sp24(w: torch.Tensor) -> PackedSp24:
    """Packs a float weight (N, K) with at most 2 nonzeros in each group of 4 columns; values
    are rounded to bfloat16 (round to nearest even)."""
    if w.dim() != 2 or not w.dtype.is_floating_point:
        raise ValueError(f"w must be a 2-D float tensor (N, K), got {w.dtype} {tuple(w.shape)}")
    n, k = w.shape
    if n < 1 or k < 1:
        raise ValueError(f"weight shape must be positive, got ({n}, {k})")
    n_pad, k_pad = _round_up(n, ROW_BLOCK), _round_up(k, SP24_CHUNK)
    bits = _pad2(w.detach().cpu().to(torch.bfloat16), n_pad, k_pad, 0).view(torch.int16)
    bits = bits.to(torch.int32) & 0xFFFF
    keep = sp24_mask(_pad2(w.detach().cpu() != 0, n_pad, k_pad, False))
    pa, pb = _sp24_slots(keep)
    groups = bits.view(n_pad, -1, 4)
    va = torch.gather(groups, 2, pa[..., None])[..., 0]
    vb = torch.gather(groups, 2, pb[..., None])[..., 0]
    chunks = k_pad // SP24_CHUNK
    tile = torch.cat([_planes(va.view(n_pad, chunks, 8), vb.view(n_pad, chunks, 8)),
                      _position_plane(pa, pb, n_pad, chunks)], dim=2)
    return PackedSp24(tile.reshape(n_pad // 16, -1).contiguous(), n, k)


def unpack_sp24(p: PackedSp24) -> torch.Tensor:
    """Inverse of pack_sp24: the weight (N, K) as float32 (bfloat16 values, zeros where pruned)."""
    n_pad, chunks = p.n_pad, p.k_pad // SP24_CHUNK
    t = p.packed.view(n_pad // 16, chunks, 9, 64)
    va, vb = _unplanes(t[:, :, :8].contiguous(), n_pad, chunks, 8)
    pa, pb = _read_positions(t[:, :, 8:].contiguous(), n_pad, chunks)
    bits = torch.zeros(n_pad, chunks * 8, 4, dtype=torch.int32)
    bits.scatter_(2, pa[..., None], va.reshape(n_pad, -1, 1))
    bits.scatter_(2, pb[..., None], vb.reshape(n_pad, -1, 1))
    w = (bits << 16).view(torch.float32)
    return w.reshape(n_pad, -1)[: p.n, : p.k].contiguous()

