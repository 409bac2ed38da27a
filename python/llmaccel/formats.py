"""Packed weight formats: the one place that knows byte layouts.

Each format is named and versioned. Its layout is the canonical on-disk layout (checkpoints store
exactly these tensors) and is also what the CPU kernels read directly; other devices repack at
load time. Sharding rules sit beside the packing code they depend on.

``int4_tile16x8`` v1 — int4 group-wise weights, symmetric or asymmetric
    Codes ``q`` are unsigned nibbles 0..15; weight = (q - zero) * scale, with zero = 8 for
    symmetric weights (no zeros tensor) or a per-group uint8 zero point.
    N is padded to ``n_pad`` (multiple of 16), K to ``k_pad`` (multiple of the group size, itself
    a multiple of 32; per-channel means one group of ``k_pad``). Padding codes equal the zero
    point and padded rows have scale 0, so padding dequantizes to exactly 0.

    - ``qweight`` uint8 ``(n_pad/16, k_pad*8)``: for row block b and k-step s (8 columns), 64
      bytes ``[lane 0..15][j 0..3]``; byte (l, j) holds q[16b+l, 8s+j] in its low nibble and
      q[16b+l, 8s+4+j] in its high nibble. One 64-byte load gives 16 rows x 8 columns, so an
      AVX-512 kernel gets a 16-wide output vector with no shuffles, and the two nibble planes are
      the two 4-byte groups VNNI multiplies.
    - ``scales`` float32 ``(n_pad/16, n_groups, 16)``; ``zeros`` uint8, same shape, or absent.

``int8_tile16x4`` v1 — int8 per-output-channel weights, weight = q * scale
    - ``qweight`` int8 ``(n_pad/16, k_pad*16)``: for block b and k-step s (4 columns), 64 bytes
      ``[lane 0..15][j 0..3]`` holding q[16b+l, 4s+j]; K padded to a multiple of 4 with zeros.
    - ``scales`` float32 ``(n_pad,)``, 0 for padded rows.

2:4 sparse formats. Along K, every group of 4 columns of a row keeps (at most) 2 weights; a row
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

__all__ = [
    "BF16_SP24_TILE16X32",
    "FORMATS",
    "INT4_SP24_TILE16X32",
    "INT4_TILE16X8",
    "INT8_TILE16X4",
    "FormatSpec",
    "PackedInt4",
    "PackedInt4Sp24",
    "PackedInt8",
    "PackedSp24",
    "int4_padding",
    "pack_int4",
    "pack_int4_sp24",
    "pack_int8",
    "pack_sp24",
    "sp24_mask",
    "unpack_int4",
    "unpack_int4_sp24",
    "unpack_int8",
    "unpack_sp24",
]

ROW_BLOCK = 16  # output rows per tile: one AVX-512 vector of fp32/int32 results


@dataclass(frozen=True)
class FormatSpec:
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}/v{self.version}"


INT4_TILE16X8 = FormatSpec("int4_tile16x8", 1)
INT8_TILE16X4 = FormatSpec("int8_tile16x4", 1)
INT4_SP24_TILE16X32 = FormatSpec("int4_sp24_tile16x32", 1)
BF16_SP24_TILE16X32 = FormatSpec("bf16_sp24_tile16x32", 1)
FORMATS = {f.name: f for f in (INT4_TILE16X8, INT8_TILE16X4, INT4_SP24_TILE16X32,
                               BF16_SP24_TILE16X32)}
SP24_CHUNK = 32  # columns per chunk: 8 groups of 4, one 32-word permute table of activations


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def _check_codes(what: str, t: torch.Tensor, lo: int, hi: int) -> None:
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{what} must be an integer tensor, got {t.dtype}")
    if t.numel() and (int(t.min()) < lo or int(t.max()) > hi):
        raise ValueError(f"{what} must lie in {lo}..{hi}, got {int(t.min())}..{int(t.max())}")


def int4_padding(n: int, k: int, group_size: int) -> tuple[int, int, int]:
    """(n_pad, k_pad, group) for an (n, k) weight; group_size -1 means one group per row."""
    if n < 1 or k < 1:
        raise ValueError(f"weight shape must be positive, got ({n}, {k})")
    if group_size == -1:
        k_pad = _round_up(k, 32)
        return _round_up(n, ROW_BLOCK), k_pad, k_pad
    if group_size < 32 or group_size % 32:
        raise ValueError(f"group_size must be -1 or a positive multiple of 32, got {group_size}")
    return _round_up(n, ROW_BLOCK), _round_up(k, group_size), group_size


@dataclass
class PackedInt4:
    """An int4_tile16x8 weight: tensors plus the logical shape they represent."""

    qweight: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    n: int
    k: int
    group_size: int  # effective group (k_pad for per-channel)

    @property
    def n_pad(self) -> int:
        return self.qweight.shape[0] * ROW_BLOCK

    @property
    def k_pad(self) -> int:
        return self.qweight.shape[1] // 8


@dataclass
class PackedInt8:
    """An int8_tile16x4 weight."""

    qweight: torch.Tensor
    scales: torch.Tensor
    n: int
    k: int

    @property
    def n_pad(self) -> int:
        return self.qweight.shape[0] * ROW_BLOCK

    @property
    def k_pad(self) -> int:
        return self.qweight.shape[1] // 16


def pack_int4(q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
              group_size: int) -> PackedInt4:
    """Packs codes q (N, K) in 0..15, scales (N, ceil(K/G)) and zeros (same, or None = 8)."""
    if q.dim() != 2:
        raise ValueError(f"q must be 2-D (N, K), got shape {tuple(q.shape)}")
    n, k = q.shape
    n_pad, k_pad, g = int4_padding(n, k, group_size)
    n_groups = k_pad // g
    if tuple(scales.shape) != (n, n_groups):
        raise ValueError(f"scales must have shape ({n}, {n_groups}), got {tuple(scales.shape)}")
    if zeros is not None and tuple(zeros.shape) != (n, n_groups):
        raise ValueError(f"zeros must have shape ({n}, {n_groups}), got {tuple(zeros.shape)}")
    _check_codes("int4 codes", q, 0, 15)
    if zeros is not None:
        _check_codes("int4 zero points", zeros, 0, 15)
    q = q.to(torch.int32)
    zero_codes = (zeros.to(torch.int32) if zeros is not None
                  else torch.full((n, n_groups), 8, dtype=torch.int32))
    full = zero_codes.repeat_interleave(g, dim=1)  # padding columns take the zero point
    full[:, :k] = q
    full = torch.cat([full, torch.full((n_pad - n, k_pad), 8 if zeros is None else 0,
                                       dtype=torch.int32)])
    t = full.view(n_pad // 16, 16, k_pad // 8, 2, 4)
    byte = (t[:, :, :, 0, :] | (t[:, :, :, 1, :] << 4)).to(torch.uint8)
    qweight = byte.permute(0, 2, 1, 3).reshape(n_pad // 16, k_pad * 8).contiguous()

    def tile_meta(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        padded = torch.zeros(n_pad, n_groups, dtype=dtype)
        padded[:n] = x.to(dtype)
        return padded.view(n_pad // 16, 16, n_groups).permute(0, 2, 1).contiguous()

    return PackedInt4(qweight, tile_meta(scales, torch.float32),
                      tile_meta(zeros, torch.uint8) if zeros is not None else None, n, k, g)


def unpack_int4(p: PackedInt4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Inverse of pack_int4: codes (N, K) uint8, scales (N, G) float32, zeros (N, G) or None."""
    nb = p.qweight.shape[0]
    byte = p.qweight.view(nb, p.k_pad // 8, 16, 4).permute(0, 2, 1, 3).to(torch.int32)
    codes = torch.stack([byte & 15, byte >> 4], dim=3)  # (nb, 16, steps, 2, 4)
    codes = codes.reshape(p.n_pad, p.k_pad)[: p.n, : p.k].to(torch.uint8)

    def untile(x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 1).reshape(p.n_pad, -1)[: p.n].contiguous()

    return codes, untile(p.scales), untile(p.zeros) if p.zeros is not None else None


def pack_int8(q: torch.Tensor, scales: torch.Tensor) -> PackedInt8:
    """Packs int8 codes q (N, K) and per-row scales (N,)."""
    if q.dim() != 2:
        raise ValueError(f"q must be 2-D (N, K), got shape {tuple(q.shape)}")
    n, k = q.shape
    if tuple(scales.shape) != (n,):
        raise ValueError(f"scales must have shape ({n},), got {tuple(scales.shape)}")
    _check_codes("int8 codes", q, -128, 127)
    n_pad, k_pad = _round_up(n, ROW_BLOCK), _round_up(k, 4)
    full = torch.zeros(n_pad, k_pad, dtype=torch.int8)
    full[:n, :k] = q.to(torch.int8)
    qweight = full.view(n_pad // 16, 16, k_pad // 4, 4).permute(0, 2, 1, 3)
    qweight = qweight.reshape(n_pad // 16, k_pad * 16).contiguous()
    s = torch.zeros(n_pad, dtype=torch.float32)
    s[:n] = scales.to(torch.float32)
    return PackedInt8(qweight, s, n, k)


def unpack_int8(p: PackedInt8) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of pack_int8: codes (N, K) int8 and scales (N,) float32."""
    nb = p.qweight.shape[0]
    q = p.qweight.view(nb, p.k_pad // 4, 16, 4).permute(0, 2, 1, 3).reshape(p.n_pad, p.k_pad)
    return q[: p.n, : p.k].contiguous(), p.scales[: p.n].clone()


# ---- 2:4 sparse -----------------------------------------------------------------------------

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


# ---- CUDA device layouts ------------------------------------------------------------------------
# Never stored on disk: nn.QuantLinear repacks the canonical tensors into these when it moves to a
# CUDA device and back when it saves. Both are pure permutations of the codes (exact both ways).
#
# ``int4_cuda_mma16x32`` v1 — int32 ``(n_pad/16, k_pad/32, 32, 2)``: row tile t (16 rows), chunk c
#     (32 columns), lane l = 4r + j, word s. The word holds, for k0 = 32c + 8j + 4s, the eight
#     nibbles i = 0..7 (bits 4i..4i+3): i=0 (r, k0), 4 (r, k0+1), 1 (r+8, k0), 5 (r+8, k0+1),
#     2 (r, k0+2), 6 (r, k0+3), 3 (r+8, k0+2), 7 (r+8, k0+3) (rows within the tile). So
#     (word >> 4p) & 0x000F000F is the pair of an mma.m16n8k16 A register: p = 0..3 give a0a1,
#     a2a3, a4a5, a6a7 — lane l's k-slots 2j, 2j+1, 2j+8, 2j+9 stand for columns k0..k0+3, and
#     the activations a lane needs for both k16 steps of a chunk are the 8 contiguous columns
#     32c + 8j .. +7 (one 16-byte load). Scales and zeros stay in int4_tile16x8's layout.
# ``int8_cuda_mma16x32`` v1 — int32 ``(n_pad/16, ceil(k_pad/32), 32, 4)``, K zero-padded to 32:
#     lane l = 4r + j holds bytes (little-endian, signed codes) of word 0: row r, columns
#     32c + 8j + 0..3; word 1: row r+8, same columns; word 2: row r, 32c + 8j + 4..7; word 3: row
#     r+8, same. Words 0-3 are exactly an mma.m16n8k32.s8 A fragment (slots 4j.., 16+4j.. standing
#     for columns 8j.., 8j+4..), and as pairs of bytes the A registers of two m16n8k16 steps.
#     Scales stay int8_tile16x4's (n_pad,) vector.
INT4_CUDA_MMA = FormatSpec("int4_cuda_mma16x32", 1)
INT8_CUDA_MMA = FormatSpec("int8_cuda_mma16x32", 1)

# nibble index of (row half h, column kk) inside an int4_cuda_mma16x32 word: i = h + _NIB[kk]
_NIB = (0, 4, 2, 6)


def _int4_codes_grid(qweight: torch.Tensor) -> torch.Tensor:
    """int4_tile16x8 qweight → codes (n_pad, k_pad) int32, on qweight's device."""
    nb, k_pad = qweight.shape[0], qweight.shape[1] // 8
    byte = qweight.view(nb, k_pad // 8, 16, 4).to(torch.int32)
    codes = torch.stack([byte & 15, byte >> 4], dim=3)  # (nb, s, lane, half, j) → col 8s+4half+j
    return codes.permute(0, 2, 1, 3, 4).reshape(nb * 16, k_pad)


def to_cuda_int4(qweight: torch.Tensor) -> torch.Tensor:
    """int4_tile16x8 qweight (n_pad/16, k_pad*8) uint8 → int4_cuda_mma16x32 (n_pad/16, k_pad/32,
    32, 2) int32, on the same device."""
    if qweight.dtype != torch.uint8 or qweight.dim() != 2 or qweight.shape[1] % 256:
        raise ValueError(f"expected an int4_tile16x8 qweight (uint8, (n_pad/16, k_pad*8)), got "
                         f"{qweight.dtype} {tuple(qweight.shape)}")
    nb, k_pad = qweight.shape[0], qweight.shape[1] // 8
    g = _int4_codes_grid(qweight).view(nb, 2, 8, k_pad // 32, 4, 2, 4)  # t h r c j s kk
    shift = (torch.tensor(_NIB, dtype=torch.int32, device=qweight.device).view(1, 4)
             + torch.arange(2, dtype=torch.int32, device=qweight.device).view(2, 1)) * 4  # (h, kk)
    words = (g << shift.view(1, 2, 1, 1, 1, 1, 4)).sum(dim=(1, 6), dtype=torch.int64)
    words = words.permute(0, 2, 1, 3, 4).reshape(nb, k_pad // 32, 32, 2)  # t c (r j) s
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32).contiguous()


def from_cuda_int4(words: torch.Tensor) -> torch.Tensor:
    """Inverse of to_cuda_int4: int4_cuda_mma16x32 → int4_tile16x8 qweight (uint8)."""
    if words.dtype != torch.int32 or words.dim() != 4 or words.shape[2:] != (32, 2):
        raise ValueError(f"expected an int4_cuda_mma16x32 tensor (int32, (n_pad/16, k_pad/32, "
                         f"32, 2)), got {words.dtype} {tuple(words.shape)}")
    nb, nc = words.shape[:2]
    w = words.to(torch.int64) & 0xFFFFFFFF
    w = w.view(nb, nc, 8, 4, 2).permute(0, 2, 1, 3, 4)  # t r c j s
    shift = ((torch.tensor(_NIB, device=words.device).view(1, 4)
              + torch.arange(2, device=words.device).view(2, 1)) * 4)  # (h, kk)
    nib = (w.unsqueeze(-1).unsqueeze(1) >> shift.view(1, 2, 1, 1, 1, 1, 4)) & 15  # t h r c j s kk
    codes = nib.reshape(nb * 16, nc * 32).to(torch.uint8)
    t = codes.view(nb, 16, nc * 4, 2, 4)  # rows, k-step s of 8, half, j
    byte = t[:, :, :, 0, :] | (t[:, :, :, 1, :] << 4)
    return byte.permute(0, 2, 1, 3).reshape(nb, nc * 256).contiguous()


def to_cuda_int8(qweight: torch.Tensor) -> torch.Tensor:
    """int8_tile16x4 qweight (n_pad/16, k_pad*16) int8 → int8_cuda_mma16x32 (n_pad/16,
    ceil(k_pad/32), 32, 4) int32, on the same device."""
    if qweight.dtype != torch.int8 or qweight.dim() != 2 or qweight.shape[1] % 64:
        raise ValueError(f"expected an int8_tile16x4 qweight (int8, (n_pad/16, k_pad*16)), got "
                         f"{qweight.dtype} {tuple(qweight.shape)}")
    nb, k_pad = qweight.shape[0], qweight.shape[1] // 16
    rows = qweight.view(nb, k_pad // 4, 16, 4).permute(0, 2, 1, 3).reshape(nb, 16, k_pad)
    nc = (k_pad + 31) // 32
    full = torch.zeros(nb, 16, nc * 32, dtype=torch.int8, device=qweight.device)
    full[:, :, :k_pad] = rows
    g = full.view(nb, 2, 8, nc, 4, 2, 4)  # t h r c j s byte ; word index = 2s + h
    words = g.permute(0, 3, 2, 4, 5, 1, 6).reshape(nb, nc, 32, 4, 4).contiguous()
    return words.view(torch.int32).view(nb, nc, 32, 4)


def from_cuda_int8(words: torch.Tensor, k_pad: int) -> torch.Tensor:
    """Inverse of to_cuda_int8 for a canonical weight of ``k_pad`` (multiple of 4) columns."""
    if (words.dtype != torch.int32 or words.dim() != 4 or words.shape[2:] != (32, 4)
            or k_pad % 4 or not (words.shape[1] * 32 - 32 < k_pad <= words.shape[1] * 32)):
        raise ValueError(f"expected an int8_cuda_mma16x32 tensor (int32, (n_pad/16, "
                         f"ceil(k_pad/32), 32, 4)) for k_pad={k_pad}, got {words.dtype} "
                         f"{tuple(words.shape)}")
    nb, nc = words.shape[:2]
    g = words.contiguous().view(torch.int8).view(nb, nc, 8, 4, 2, 2, 4)  # t c r j s h byte
    rows = g.permute(0, 5, 2, 1, 3, 4, 6).reshape(nb, 16, nc * 32)[:, :, :k_pad]
    return rows.reshape(nb, 16, k_pad // 4, 4).permute(0, 2, 1, 3).reshape(nb, k_pad * 16).contiguous()
