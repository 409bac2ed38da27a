"""What every packed format shares: its name and version, the 16-row tiles, the input checks."""

from __future__ import annotations

from dataclasses import dataclass

import torch

ROW_BLOCK = 16  # output rows per tile: one AVX-512 vector of fp32/int32 results


@dataclass(frozen=True)
class FormatSpec:
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}/v{self.version}"


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def _check_codes(what: str, t: torch.Tensor, lo: int, hi: int) -> None:
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{what} must be an integer tensor, got {t.dtype}")
    if t.numel() and (int(t.min()) < lo or int(t.max()) > hi):
        raise ValueError(f"{what} must lie in {lo}..{hi}, got {int(t.min())}..{int(t.max())}")

