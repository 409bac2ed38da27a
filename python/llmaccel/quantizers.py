"""Round-to-nearest weight quantizers: float weight → integer codes and scales.

The math of one tensor, shared by every layer and pipeline; byte layouts are the formats
package's.
"""

from __future__ import annotations

import torch

from .configs import Int4WeightOnly
from .formats import int4_padding

INT4_CONTAINER_BITS = (2, 3, 4)  # widths whose codes an int4 container holds


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


def int4_code_range(bits: int = 4, symmetric: bool = True) -> tuple[int, int]:
    """(lowest, highest) code of ``bits``-bit weights in the int4 container (int4_tile16x8).

    The container's kernels compute (q − zero)·scale for any code q in 0..15, so 2- and 3-bit
    weights live in it unchanged: asymmetric codes use 0..2^bits−1 with a zero point in that
    range; symmetric codes sit around the format's fixed zero point 8, 8−2^(bits−1) ..
    8+2^(bits−1)−1 (3 bits: 4..11). Fewer bits buy no bytes yet: the grid, not the size.
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or bits not in INT4_CONTAINER_BITS:
        raise ValueError(f"bits must be 2, 3 or 4 (codes kept in int4 containers), got {bits!r}")
    half = 2 ** (bits - 1)
    return (8 - half, 8 + half - 1) if symmetric else (0, 2 * half - 1)


def int4_group_params(groups: torch.Tensor, symmetric: bool, bits: int = 4):
    """Per-group (scale, zero) of ``bits``-bit codes (int4_code_range) for weight groups
    (..., g), float32, by the rules of quantize_int4 with 2^bits levels: symmetric puts the
    largest-magnitude weight on the lowest code (zero 8); asymmetric spans [min(w, 0),
    max(w, 0)] with an integer zero point. Shared with calibrated quantizers (GPTQ) and
    fake-quantized students."""
    int4_code_range(bits, symmetric)  # validates bits
    half = 2 ** (bits - 1)
    if symmetric:
        idx = groups.abs().argmax(dim=-1, keepdim=True)
        scales = (groups.gather(-1, idx) / -float(half)).squeeze(-1)
        return scales, torch.full_like(scales, 8.0)
    levels = 2 ** bits - 1
    lo = groups.amin(dim=-1).clamp(max=0)
    hi = groups.amax(dim=-1).clamp(min=0)
    scales = (hi - lo) / float(levels)
    inv = torch.where(scales > 0, 1.0 / scales, torch.zeros_like(scales))
    return scales, torch.round(-lo * inv).clamp_(0, levels)


def int4_group_params_mse(groups: torch.Tensor, symmetric: bool, grid: int = 40,
                          max_shrink: float = 0.4, norm: float = 2.4, bits: int = 4):
    """As int4_group_params, but each group's range is also tried shrunk by up to
    ``max_shrink`` (in ``grid`` steps) and the one with the least Σ|w − q(w)|^norm kept: clipping
    a rare extreme weight buys finer steps for all the others (GPTQ's reference quantizer search;
    norm 2.4 weighs large errors a little more than squared error).

    The search runs in float32 whatever ``groups``' dtype, and returns that dtype: the kernels'
    scales are float32 anyway, and in float64 (GPTQ's weights) it took ~1.7× as long (38 against
    22 ms per group of 1536 rows × 128 inside GPTQ on a 2-core CPU; GPTQ itself 20-30 % faster)."""
    lo, hi = int4_code_range(bits, symmetric)
    g = groups.float()
    best_s, best_z = int4_group_params(g, symmetric, bits)
    best_err = _group_err(g, best_s, best_z, norm, lo, hi)
    for i in range(1, int(max_shrink * grid) + 1):
        p = 1 - i / grid
        s, z = int4_group_params(g * p, symmetric, bits)
        err = _group_err(g, s, z, norm, lo, hi)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_s, best_z = torch.where(better, s, best_s), torch.where(better, z, best_z)
    return best_s.to(groups.dtype), best_z.to(groups.dtype)


def _group_err(groups, scales, zeros, norm, lo, hi):
    s, z = scales.unsqueeze(-1), zeros.unsqueeze(-1)
    return ((int4_encode(groups, s, z, lo, hi) - z) * s - groups).abs().pow(norm).sum(dim=-1)


def int4_encode(w: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                lo: int = 0, hi: int = 15) -> torch.Tensor:
    """Codes lo..hi (float; int4_code_range gives them for fewer bits) of w under broadcastable
    scales and zero points: the nearest code, clamped; (code − zero) · scale is the weight the
    kernels use."""
    inv = torch.where(scales != 0, 1.0 / scales, torch.zeros_like(scales))
    return (torch.round(w * inv) + zeros).clamp_(lo, hi)


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
