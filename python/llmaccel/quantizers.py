"""Round-to-nearest weight quantizers: float weight → integer codes and scales.

The math of one tensor, shared by every layer and pipeline; byte layouts are formats.py's.
"""

from __future__ import annotations

import torch

from .configs import Int4WeightOnly
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
    scales, zeros = int4_group_params(groups, symmetric)
    codes = int4_encode(groups, scales.unsqueeze(2), zeros.unsqueeze(2))
    zeros = None if symmetric else zeros.to(torch.uint8)
    codes = codes.view(n, k_pad)[:, :k].to(torch.uint8)
    return codes, scales.contiguous(), zeros


def int4_group_params(groups: torch.Tensor, symmetric: bool):
    """Per-group (scale, zero) of int4 codes for weights groups (..., g), float32, by the rules of
    quantize_int4 (zero = 8 when symmetric). Shared with calibrated quantizers (GPTQ)."""
    if symmetric:
        idx = groups.abs().argmax(dim=-1, keepdim=True)
        scales = (groups.gather(-1, idx) / -8.0).squeeze(-1)
        return scales, torch.full_like(scales, 8.0)
    lo = groups.amin(dim=-1).clamp(max=0)
    hi = groups.amax(dim=-1).clamp(min=0)
    scales = (hi - lo) / 15.0
    inv = torch.where(scales > 0, 1.0 / scales, torch.zeros_like(scales))
    return scales, torch.round(-lo * inv).clamp_(0, 15)


def int4_group_params_mse(groups: torch.Tensor, symmetric: bool, grid: int = 40,
                          max_shrink: float = 0.4, norm: float = 2.4):
    """As int4_group_params, but each group's range is also tried shrunk by up to
    ``max_shrink`` (in ``grid`` steps) and the one with the least Σ|w − q(w)|^norm kept: clipping
    a rare extreme weight buys finer steps for all the others (GPTQ's reference quantizer search;
    norm 2.4 weighs large errors a little more than squared error)."""
    best_s, best_z = int4_group_params(groups, symmetric)
    best_err = _group_err(groups, best_s, best_z, norm)
    for i in range(1, int(max_shrink * grid) + 1):
        p = 1 - i / grid
        s, z = int4_group_params(groups * p, symmetric)
        err = _group_err(groups, s, z, norm)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_s, best_z = torch.where(better, s, best_s), torch.where(better, z, best_z)
    return best_s, best_z


def _group_err(groups, scales, zeros, norm):
    s, z = scales.unsqueeze(-1), zeros.unsqueeze(-1)
    return ((int4_encode(groups, s, z) - z) * s - groups).abs().pow(norm).sum(dim=-1)


def int4_encode(w: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    """Codes 0..15 (float) of w under broadcastable scales and zero points: the nearest code,
    clamped; (code − zero) · scale is the weight the kernels use."""
    inv = torch.where(scales != 0, 1.0 / scales, torch.zeros_like(scales))
    return (torch.round(w * inv) + zeros).clamp_(0, 15)


def quantize_int8(w: torch.Tensor):
    """w (N, K) float → (codes int8 (N, K) in -127..127, scales float32 (N,)), symmetric per row."""
    if w.dim() != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got {tuple(w.shape)}")
    wf = w.detach().float()
    scales = wf.abs().amax(dim=1) / 127.0
    inv = torch.where(scales > 0, 1.0 / scales, torch.zeros_like(scales))
    codes = torch.round(wf * inv.unsqueeze(1)).clamp_(-127, 127).to(torch.int8)
    return codes, scales


def fake_quantize(w: torch.Tensor, scheme) -> torch.Tensor:
    """The float weight (N, K) that ``scheme`` (Int4WeightOnly, Int8WeightOnly or Int8Dynamic)
    stores for ``w`` under round-to-nearest: what searches (AWQ) score candidates with."""
    wf = w.detach().float()
    if isinstance(scheme, Int4WeightOnly):
        n, k = wf.shape
        _, k_pad, g = int4_padding(n, k, scheme.group_size)
        padded = torch.zeros(n, k_pad, dtype=torch.float32)
        padded[:, :k] = wf
        groups = padded.view(n, k_pad // g, g)
        scales, zeros = int4_group_params(groups, scheme.symmetric)
        s, z = scales.unsqueeze(2), zeros.unsqueeze(2)
        return ((int4_encode(groups, s, z) - z) * s).view(n, k_pad)[:, :k]
    codes, scales = quantize_int8(wf)
    return codes.float() * scales.unsqueeze(1)
