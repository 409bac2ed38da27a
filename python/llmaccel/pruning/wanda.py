"""Wanda (Sun et al., 2023): pruning by weights and activations, no weight update.

A weight's effect on the output is |W_ij| · |x_j|; over the calibration tokens that is
|W_ij| · ‖X_j‖₂. LLMs have a few input channels hundreds of times louder than the rest, so a
small weight there can matter more than a large one elsewhere — which magnitude pruning cannot
see. Weights compete within their output row, each row losing the same share.
"""

from __future__ import annotations

import torch

from .configs import Wanda
from .masks import mask_for


def wanda_scores(w: torch.Tensor, input_sqsum: torch.Tensor) -> torch.Tensor:
    """w (N, K), input_sqsum (K,) = Σ_tokens x_j² → scores |W_ij| · ‖X_j‖₂ (N, K) float32."""
    if input_sqsum.shape != (w.shape[1],):
        raise ValueError(f"need one input norm per input feature ({w.shape[1]}), got "
                         f"{tuple(input_sqsum.shape)}")
    return w.detach().float().abs() * input_sqsum.float().sqrt().to(w.device).unsqueeze(0)


def wanda_mask(w: torch.Tensor, input_sqsum: torch.Tensor, cfg: Wanda) -> torch.Tensor:
    """w (N, K), input_sqsum (K,) → keep-mask bool (N, K) under cfg's sparsity and pattern."""
    return mask_for(wanda_scores(w, input_sqsum), cfg.sparsity, cfg.nm, per_row=True)
