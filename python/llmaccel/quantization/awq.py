"""AWQ (Lin et al., 2023): activation-aware scales, then clipping ranges, searched per group.

Few input channels carry large activations; their weights matter most. Scaling those weight
columns up (and the activations down by the same factor, folded into the op before) gives them
finer quantization steps. The per-channel scale is s = mean|x|^r / mean|ŵ|^(1−r) (ŵ: weights
normalised by their group's maximum), r searched on a grid to minimise the group's output error
on calibration rows; s = 1 (plain round-to-nearest) is always a candidate, so the search never
does worse than RTN on its own objective. Then, per output row and weight group, the clipping
range is shrunk where that lowers the output error (not for q/k: their errors meet in q·kᵀ).
"""

from __future__ import annotations

import torch
from torch import nn

from ..configs import Int4WeightOnly, LayerScheme
from ..formats import int4_padding
from ..quantizers import fake_quantize, int4_encode, int4_group_params
from .scaling import ScaleGroup

# AutoAWQ's convention: q/k are not clipped (their errors multiply in the attention scores).
NO_CLIP = ("q_proj", "k_proj")


def _normalised_weight_mean(linears, schemes) -> torch.Tensor:
    parts = []
    for lin, sch in zip(linears, schemes):
        w = lin.weight.detach().float().abs()
        # Normalised per quantization group (a whole row for per-channel schemes).
        g = sch.group_size if isinstance(sch, Int4WeightOnly) and sch.group_size > 0 else w.shape[1]
        n, k = w.shape
        k_pad = -(-k // g) * g
        padded = torch.zeros(n, k_pad)
        padded[:, :k] = w
        groups = padded.view(n, k_pad // g, g)
        parts.append((groups / groups.amax(dim=2, keepdim=True).clamp(min=1e-12)).view(n, k_pad)[:, :k])
    return torch.cat(parts).mean(dim=0)


@torch.no_grad()
def search_scale(group: ScaleGroup, x: torch.Tensor, x_absmean: torch.Tensor,
                 schemes: list[LayerScheme | None], grid: int) -> tuple[torch.Tensor, float, float]:
    """The per-input-channel scale s (K,) for ``group`` → (s, its output MSE, RTN's output MSE).

    x: calibration input rows (R, K); schemes: each linear's scheme (None: kept in float).
    """
    ws = [lin.weight.detach().float() for lin in group.linears]
    ref = x @ torch.cat(ws).t()
    w_mean = _normalised_weight_mean(group.linears, schemes)

    def loss(s: torch.Tensor) -> float:
        wq = [w if sch is None else fake_quantize(w * s, sch) / s for w, sch in zip(ws, schemes)]
        return (x @ torch.cat(wq).t() - ref).pow(2).mean().item()

    best_s = torch.ones_like(x_absmean)
    rtn = best = loss(best_s)
    for i in range(grid):
        r = i / grid
        s = (x_absmean.pow(r) / (w_mean.pow(1 - r) + 1e-4)).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()  # centre the range: only ratios between channels matter
        if not torch.isfinite(s).all():
            continue
        cur = loss(s)
        if cur < best:
            best, best_s = cur, s
    return best_s, best, rtn


@torch.no_grad()
def search_clip(linear: nn.Linear, x: torch.Tensor, scheme: Int4WeightOnly, grid: int,
                max_shrink: float) -> torch.Tensor:
    """Per (output row, group) clipping bound → the clamped weight (N, K) to quantize.

    The bound shrinks from the group's max |w| in steps of 1/grid (down to 1 − max_shrink);
    each (row, group) keeps the bound whose quantized outputs x_g · w_gᵀ are closest to the
    float ones on the calibration rows x (R, K).
    """
    w = linear.weight.detach().float()
    n, k = w.shape
    _, k_pad, g = int4_padding(n, k, scheme.group_size)
    n_groups = k_pad // g
    wp = torch.zeros(n, k_pad)
    wp[:, :k] = w
    xp = torch.zeros(x.shape[0], k_pad)
    xp[:, :k] = x
    wg = wp.view(n, n_groups, g)
    xg = xp.view(-1, n_groups, g)
    ref = torch.einsum("rgk,ngk->rng", xg, wg)
    org_max = wg.abs().amax(dim=2, keepdim=True)
    best_err = torch.full((n, n_groups, 1), float("inf"))
    best_max = org_max.clone()
    for i in range(int(max_shrink * grid) + 1):
        max_val = org_max * (1 - i / grid)
        cur = wg.clamp(-max_val, max_val)
        scales, zeros = int4_group_params(cur, scheme.symmetric)
        s, z = scales.unsqueeze(2), zeros.unsqueeze(2)
        q = (int4_encode(cur, s, z) - z) * s
        err = (torch.einsum("rgk,ngk->rng", xg, q) - ref).pow(2).mean(dim=0).unsqueeze(2)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_max = torch.where(better, max_val, best_max)
    return wg.clamp(-best_max, best_max).view(n, k_pad)[:, :k]
