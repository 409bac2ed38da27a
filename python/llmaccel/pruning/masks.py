"""Keep-masks from importance scores: which weights survive, with exact counts.

Every mask is a bool tensor shaped like the weight, True where the weight is kept. Counts are
exact (ties broken by position, never by a threshold that could take more or fewer), so a
layer pruned at 50 % has exactly half its weights zeroed and an N:M mask has exactly N kept in
every group — what a sparse kernel's layout requires.
"""

from __future__ import annotations

import torch


def pruned_count(sparsity: float, total: int) -> int:
    """How many of ``total`` weights a ``sparsity`` share prunes (rounded to nearest)."""
    return int(round(sparsity * total))


def lowest_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Keep-mask of scores (any shape) with its ``count`` lowest entries pruned."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[torch.argsort(scores.reshape(-1), stable=True)[:count]] = False
    return keep.view(scores.shape)


def unstructured_mask(scores: torch.Tensor, sparsity: float, per_row: bool) -> torch.Tensor:
    """scores (N, K) → keep-mask pruning the ``sparsity`` share of the lowest scores: of each
    row (per_row: exactly pruned_count(sparsity, K) per row), or of the whole tensor."""
    if not per_row:
        return lowest_mask(scores, pruned_count(sparsity, scores.numel()))
    drop = torch.argsort(scores, dim=1, stable=True)[:, :pruned_count(sparsity, scores.shape[1])]
    return torch.ones_like(scores, dtype=torch.bool).scatter_(1, drop, False)


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """scores (N, K), K a multiple of m → keep-mask with exactly the n highest of every m
    consecutive scores of a row kept (ties: the earlier position is pruned first)."""
    rows, k = scores.shape
    if k % m:
        raise ValueError(f"an N:M pattern with M={m} needs in_features divisible by {m}, got {k}")
    groups = scores.reshape(rows, k // m, m)
    drop = torch.argsort(groups, dim=2, stable=True)[:, :, :m - n]
    keep = torch.ones_like(groups, dtype=torch.bool).scatter_(2, drop, False)
    return keep.view(rows, k)


def mask_for(scores: torch.Tensor, sparsity: float, nm: tuple[int, int] | None,
             per_row: bool) -> torch.Tensor:
    """The keep-mask of a config's pattern: N:M when ``nm`` is given, else unstructured."""
    if nm is not None:
        return nm_mask(scores, *nm)
    return unstructured_mask(scores, sparsity, per_row)
