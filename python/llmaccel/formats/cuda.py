"""CUDA device layouts. Never stored on disk: nn.QuantLinear repacks the canonical tensors into
these when it moves to a CUDA device and back when it saves. Both are pure permutations of the
codes (exact both ways).

``int4_cuda_mma16x32`` v1 — int32 ``(n_pad/16, k_pad/32, 32, 2)``: row tile t (16 rows), chunk c
    (32 columns), lane l = 4r + j, word s. The word holds, for k0 = 32c + 8j + 4s, the eight
    nibbles i = 0..7 (bits 4i..4i+3): i=0 (r, k0), 4 (r, k0+1), 1 (r+8, k0), 5 (r+8, k0+1),
    2 (r, k0+2), 6 (r, k0+3), 3 (r+8, k0+2), 7 (r+8, k0+3) (rows within the tile). So
    (word >> 4p) & 0x000F000F is the pair of an mma.m16n8k16 A register: p = 0..3 give a0a1,
    a2a3, a4a5, a6a7 — lane l's k-slots 2j, 2j+1, 2j+8, 2j+9 stand for columns k0..k0+3, and
    the activations a lane needs for both k16 steps of a chunk are the 8 contiguous columns
    32c + 8j .. +7 (one 16-byte load). Scales and zeros stay in int4_tile16x8's layout.
``int8_cuda_mma16x32`` v1 — int32 ``(n_pad/16, ceil(k_pad/32), 32, 4)``, K zero-padded to 32:
    lane l = 4r + j holds bytes (little-endian, signed codes) of word 0: row r, columns
    32c + 8j + 0..3; word 1: row r+8, same columns; word 2: row r, 32c + 8j + 4..7; word 3: row
    r+8, same. Words 0-3 are exactly an mma.m16n8k32.s8 A fragment (slots 4j.., 16+4j.. standing
    for columns 8j.., 8j+4..), and as pairs of bytes the A registers of two m16n8k16 steps.
    Scales stay int8_tile16x4's (n_pad,) vector.

A 2:4 int4 weight (int4_sp24_tile16x32) goes to a GPU as int4_cuda_mma16x32 too, its pruned
weights as code 8 (exactly 0): the dense int4 kernels read 4 bits a weight where the 2:4 format
stores 3, but no 2:4 CUDA kernel exists yet. Its scales already are int4_tile16x8's.
"""

from __future__ import annotations

import torch

from .dense import PackedInt4, pack_int4, unpack_int4
from .sp24 import PackedInt4Sp24, pack_int4_sp24, unpack_int4_sp24
from .spec import FormatSpec

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


def to_cuda_int4_sp24(p: PackedInt4Sp24) -> torch.Tensor:
    """An int4_sp24_tile16x32 weight → int4_cuda_mma16x32 words (int32, on the CPU) of the same
    weight as a dense symmetric int4 (code 8 where pruned); p.scales serve both layouts."""
    codes, scales = unpack_int4_sp24(PackedInt4Sp24(p.qweight.cpu(), p.scales.cpu(), p.n, p.k,
                                                    p.group_size))
    return to_cuda_int4(pack_int4(codes, scales, None, p.group_size).qweight)


def from_cuda_int4_sp24(words: torch.Tensor, scales: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Inverse of to_cuda_int4_sp24: the int4_sp24_tile16x32 qweight (uint8, on the CPU); raises
    ValueError where the codes are not 2:4."""
    canonical = from_cuda_int4(words.cpu())
    scales = scales.cpu()
    p = PackedInt4(canonical, scales, None, n, k, canonical.shape[1] // 8 // scales.shape[1])
    codes, s, _ = unpack_int4(p)
    return pack_int4_sp24(codes, s, p.group_size).qweight
