"""Dense canonical formats: int4 group-wise and int8 per-channel weights.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .spec import ROW_BLOCK, FormatSpec, _check_codes, _round_up

INT4_TILE16X8 = FormatSpec("int4_tile16x8", 1)
INT8_TILE16X4 = FormatSpec("int8_tile16x4", 1)


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

