"""Round-to-nearest weight quantizers: float weight → integer codes and scales.

The math of one tensor, shared by every layer and pipeline; byte layouts are formats.py's.
"""

from __future__ import annotations

import torch

from .formats import int4_padding


def quantize_int4(w: torch.Tensor, group_size: int, symmetric: bool):
    """w (N, K) float → (codes uint8 (N, K) in 0..15, scales float32 (N, G), zeros uint8 or None).

    Symmetric: per group, the weight of largest magnitude w* gets scale w*/-8, so it maps exactly
    to -8 and the whole range -8..7 is used (llama.cpp Q4_0); zero point 8.
    Asymmetric: range [min(w, 0), max(w, 0)] over 15 steps with an integer zero point (GPTQ).
    A tail group shorter than group_size is padded with zeros, which changes neither rule.
    """
    if w.dim() != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got {tuple(w.shape)}")
    n, k = w.shape
    _, k_pad, g = int4_padding(n, k, group_size)
    wf = torch.zeros(n, k_pad, dtype=torch.float32)
    wf[:, :k] = w.detach().float()
    groups = wf.view(n, k_pad // g, g)
    if symmetric:
        idx = groups.abs().argmax(dim=2, keepdim=True)
        scales = (groups.gather(2, idx) / -8.0).squeeze(2)
        inv = torch.where(scales != 0, 1.0 / scales, torch.zeros_like(scales))
        codes = torch.round(groups * inv.unsqueeze(2)).clamp_(-8, 7) + 8
        zeros = None
    else:
        lo = groups.amin(dim=2).clamp(max=0)
        hi = groups.amax(dim=2).clamp(min=0)
        scales = (hi - lo) / 15.0
        inv = torch.where(scales > 0, 1.0 / scales, torch.zeros_like(scales))
        zeros = torch.round(-lo * inv).clamp_(0, 15)
        codes = (torch.round(groups * inv.unsqueeze(2)) + zeros.unsqueeze(2)).clamp_(0, 15)
        zeros = zeros.to(torch.uint8)
    codes = codes.view(n, k_pad)[:, :k].to(torch.uint8)
    return codes, scales.contiguous(), zeros


def quantize_int8(w: torch.Tensor):
    """w (N, K) float → (codes int8 (N, K) in -127..127, scales float32 (N,)), symmetric per row."""
    if w.dim() != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got {tuple(w.shape)}")
    wf = w.detach().float()
    scales = wf.abs().amax(dim=1) / 127.0
    inv = torch.where(scales > 0, 1.0 / scales, torch.zeros_like(scales))
    codes = torch.round(wf * inv.unsqueeze(1)).clamp_(-127, 127).to(torch.int8)
    return codes, scales
