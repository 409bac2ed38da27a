"""Magnitude pruning: the weights of smallest |W| go — no data, no weight update."""

from __future__ import annotations

import torch

from .configs import Magnitude
from .masks import mask_for


def magnitude_mask(w: torch.Tensor, cfg: Magnitude) -> torch.Tensor:
    """w (N, K) → keep-mask bool (N, K). Unstructured masks rank the whole layer at once: a
    row of small weights can lose more than the ``sparsity`` share (the usual baseline)."""
    return mask_for(w.detach().float().abs(), cfg.sparsity, cfg.nm, per_row=False)
