"""GPTQ (Frantar et al., 2022) for one linear layer: int4 codes that minimise the layer's output
error ‖(W − Q) Xᵀ‖² on calibration inputs X, given H = XᵀX.

Columns are quantized one at a time; each one's rounding error is spread over the columns not
yet quantized through the inverse Hessian (its upper Cholesky factor), in blocks of 128 columns
so that most of the update is one matrix product. Codes, scales and zero points come out in
the same form as RTN's (quantizers.quantize_int4), so the same packing and kernels run them.

Activation order processes columns by decreasing H diagonal (the most sensitive first). Its
group parameters are *static*: computed from the original weight for each group of consecutive
columns before any update, so groups stay contiguous in the packed layout and inference pays
nothing for the reordering.
"""

from __future__ import annotations

import torch

from ..formats import int4_padding
from ..quantizers import int4_code_range, int4_encode, int4_group_params, int4_group_params_mse
from . import obs


def _solve(W: torch.Tensor, H: torch.Tensor, perm: torch.Tensor, damp: float, block_size: int,
           round_column) -> None:
    """The GPTQ sweep (obs.sweep), in place on W (N, K) float64. Columns are visited in ``perm``
    order; ``round_column(col, w_col, upcoming)`` returns column ``col``'s quantized value (and
    records its codes), where ``upcoming(width)`` gives the next ``width`` still-unquantized
    columns from this one on, as updated so far (in visiting order) — what per-group parameters
    are computed from."""
    W[:] = W[:, perm]
    U = obs.inverse_hessian_factor(H[perm][:, perm], damp)
    obs.sweep(W, U, block_size,
              lambda pos, w_col, upcoming: round_column(int(perm[pos]), w_col, upcoming))


def _check_keep(keep: torch.Tensor | None, W: torch.Tensor) -> torch.Tensor | None:
    if keep is None:
        return None
    if keep.shape != W.shape or keep.dtype != torch.bool:
        raise ValueError(f"keep must be a bool mask shaped like w {tuple(W.shape)}, got "
                         f"{tuple(keep.shape)} {keep.dtype}")
    return keep.cpu()


def gptq_quantize_int4(w: torch.Tensor, hessian: torch.Tensor, group_size: int = 128,
                       symmetric: bool = True, damp: float = 0.01, act_order: bool = False,
                       block_size: int = 128, mse: bool = False,
                       keep: torch.Tensor | None = None, bits: int = 4):
    """w (N, K) float, hessian (K, K) = XᵀX (any positive scale) → (codes uint8 (N, K),
    scales float32 (N, G), zeros uint8 (N, G) or None), as quantizers.quantize_int4.

    bits: 4, or 3 / 2 for codes on a coarser grid inside the same int4 container
    (quantizers.int4_code_range: symmetric 3-bit codes are 4..11 around the zero point 8).

    damp: fraction of the mean diagonal added to H (numerical safety for rank-deficient X).
    mse: choose each group's range by quantizers.int4_group_params_mse (may clip) instead of
    the full range.
    keep: bool (N, K), the weights a pruning left (SparseGPT + GPTQ). The others get the zero
    point's code — exactly 0.0 — whatever the error compensation of earlier columns added to
    them, and that error is compensated in turn; group ranges span the kept weights only.
    """
    lo, hi = int4_code_range(bits, symmetric)
    W, H = obs.prepare(w, hessian)
    keep = _check_keep(keep, W)
    n, k = W.shape
    _, k_pad, g = int4_padding(n, k, group_size)
    scales = torch.zeros(n, k_pad // g, dtype=torch.float64)
    zeros = torch.zeros(n, k_pad // g, dtype=torch.float64)
    codes = torch.zeros(n, k, dtype=torch.float64)

    def set_group(gi: int, cols: torch.Tensor) -> None:
        padded = torch.zeros(n, g, dtype=torch.float64)
        padded[:, :cols.shape[1]] = cols
        if keep is not None:
            padded[:, :cols.shape[1]] *= keep[:, gi * g:gi * g + cols.shape[1]]
        if mse:
            scales[:, gi], zeros[:, gi] = int4_group_params_mse(padded, symmetric, bits=bits)
        else:
            scales[:, gi], zeros[:, gi] = int4_group_params(padded, symmetric, bits)

    if act_order:
        for gi in range(k_pad // g):  # static groups, from the original weight
            set_group(gi, W[:, gi * g:min(k, (gi + 1) * g)])
        perm = torch.argsort(torch.diagonal(H), descending=True)
    else:
        perm = torch.arange(k)

    def round_column(col: int, w_col: torch.Tensor, upcoming) -> torch.Tensor:
        gi = col // g
        if not act_order and col % g == 0:
            # The group's parameters from its columns as updated so far.
            set_group(gi, upcoming(min(g, k - col)))
        q = int4_encode(w_col, scales[:, gi], zeros[:, gi], lo, hi)
        if keep is not None:
            q = torch.where(keep[:, col], q, zeros[:, gi])
        codes[:, col] = q
        return (q - zeros[:, gi]) * scales[:, gi]

    _solve(W, H, perm, damp, block_size, round_column)
    return (codes.to(torch.uint8), scales.to(torch.float32),
            None if symmetric else zeros.to(torch.uint8))


def gptq_quantize_int8(w: torch.Tensor, hessian: torch.Tensor, damp: float = 0.01,
                       act_order: bool = False, block_size: int = 128,
                       keep: torch.Tensor | None = None):
    """int8 per output channel (scales from the original rows, as quantizers.quantize_int8)
    → (codes int8 (N, K), scales float32 (N,)). keep: as gptq_quantize_int4 (code 0 elsewhere)."""
    W, H = obs.prepare(w, hessian)
    keep = _check_keep(keep, W)
    scales = W.abs().amax(dim=1) / 127.0
    inv = torch.where(scales > 0, 1.0 / scales, torch.zeros_like(scales))
    codes = torch.zeros_like(W)
    perm = (torch.argsort(torch.diagonal(H), descending=True) if act_order
            else torch.arange(W.shape[1]))

    def round_column(col: int, w_col: torch.Tensor, upcoming) -> torch.Tensor:
        q = torch.round(w_col * inv).clamp_(-127, 127)
        if keep is not None:
            q = q * keep[:, col]
        codes[:, col] = q
        return q * scales

    _solve(W, H, perm, damp, block_size, round_column)
    return codes.to(torch.int8), scales.to(torch.float32)
