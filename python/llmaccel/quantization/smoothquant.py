"""SmoothQuant (Xiao et al., 2022): make activations easy to quantize per token for W8A8.

A few input channels carry activations 10-100x the rest, so one int8 scale per token wastes
its range on them. Dividing channel j by s_j = max|x_j|^α / max|w_j|^(1−α) (and multiplying the
weight columns by it, folded into the op before: quantization/scaling.py) splits the range
between activations and weights; α = 0.5 balances them. Weights are then int8 per channel and
activations int8 per token, at every M (Int8Dynamic).
"""

from __future__ import annotations

import torch

from .scaling import ScaleGroup, weight_absmax


def smooth_scale(group: ScaleGroup, x_absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    """The per-input-channel divisor s (K,) of the group's input."""
    w_max = weight_absmax(group).clamp(min=1e-5)
    s = x_absmax.clamp(min=1e-5).pow(alpha) / w_max.pow(1 - alpha)
    # Channels that never fire (x max ~ 0) would get s ~ 0 and blow the weights up: leave them.
    return torch.where(x_absmax > 1e-5, s.clamp(min=1e-5), torch.ones_like(s))
