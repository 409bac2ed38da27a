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
from ..quantizers import int4_encode, int4_group_params, int4_group_params_mse


def _prepare(w: torch.Tensor, hessian: torch.Tensor, damp: float):
    if w.dim() != 2 or hessian.shape != (w.shape[1], w.shape[1]):
        raise ValueError(f"need w (N, K) and hessian (K, K), got {tuple(w.shape)} and "
                         f"{tuple(hessian.shape)}")
    W = w.detach().to(torch.float64).clone()
    H = hessian.detach().to(torch.float64).clone()
    dead = torch.diagonal(H) == 0  # inputs that never fire: their weights cannot matter
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    return W, H


def _solve(W: torch.Tensor, H: torch.Tensor, perm: torch.Tensor, damp: float, block_size: int,
           round_column) -> None:
    """The GPTQ sweep, in place on W (N, K) float64. Columns are visited in ``perm`` order;
    ``round_column(col, w_col, upcoming)`` returns column ``col``'s quantized value (and records
    its codes), where ``upcoming()`` gives the still-unquantized columns from this one on, as
    updated so far (in visiting order) — what per-group parameters are computed from."""
    k = W.shape[1]
    W[:] = W[:, perm]
    H = H[perm][:, perm]
    H += damp * torch.diagonal(H).mean() * torch.eye(k, dtype=torch.float64)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    for i1 in range(0, k, block_size):
        i2 = min(i1 + block_size, k)
        W1, E1 = W[:, i1:i2].clone(), torch.zeros(W.shape[0], i2 - i1, dtype=torch.float64)
        for i in range(i2 - i1):
            q = round_column(int(perm[i1 + i]), W1[:, i],
                             lambda: torch.cat([W1[:, i:], W[:, i2:]], dim=1))
            err = (W1[:, i] - q) / U[i1 + i, i1 + i]
            W1[:, i:] -= err.unsqueeze(1) * U[i1 + i, i1 + i:i2].unsqueeze(0)
            E1[:, i] = err
        W[:, i2:] -= E1 @ U[i1:i2, i2:]


def gptq_quantize_int4(w: torch.Tensor, hessian: torch.Tensor, group_size: int = 128,
                       symmetric: bool = True, damp: float = 0.01, act_order: bool = False,
                       block_size: int = 128, mse: bool = False):
    """w (N, K) float, hessian (K, K) = XᵀX (any positive scale) → (codes uint8 (N, K),
    scales float32 (N, G), zeros uint8 (N, G) or None), as quantizers.quantize_int4.

    damp: fraction of the mean diagonal added to H (numerical safety for rank-deficient X).
    mse: choose each group's range by quantizers.int4_group_params_mse (may clip) instead of
    the full range.
    """
    W, H = _prepare(w, hessian, damp)
    n, k = W.shape
    _, k_pad, g = int4_padding(n, k, group_size)
    scales = torch.zeros(n, k_pad // g, dtype=torch.float64)
    zeros = torch.zeros(n, k_pad // g, dtype=torch.float64)
    codes = torch.zeros(n, k, dtype=torch.float64)

    def set_group(gi: int, cols: torch.Tensor) -> None:
        padded = torch.zeros(n, g, dtype=torch.float64)
        padded[:, :cols.shape[1]] = cols
        params = int4_group_params_mse if mse else int4_group_params
        scales[:, gi], zeros[:, gi] = params(padded, symmetric)

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
            set_group(gi, upcoming()[:, :min(g, k - col)])
        q = int4_encode(w_col, scales[:, gi], zeros[:, gi])
        codes[:, col] = q
        return (q - zeros[:, gi]) * scales[:, gi]

    _solve(W, H, perm, damp, block_size, round_column)
    return (codes.to(torch.uint8), scales.to(torch.float32),
            None if symmetric else zeros.to(torch.uint8))


def gptq_quantize_int8(w: torch.Tensor, hessian: torch.Tensor, damp: float = 0.01,
                       act_order: bool = False, block_size: int = 128):
    """int8 per output channel (scales from the original rows, as quantizers.quantize_int8)
    → (codes int8 (N, K), scales float32 (N,))."""
    W, H = _prepare(w, hessian, damp)
    scales = W.abs().amax(dim=1) / 127.0
    inv = torch.where(scales > 0, 1.0 / scales, torch.zeros_like(scales))
    codes = torch.zeros_like(W)
    perm = (torch.argsort(torch.diagonal(H), descending=True) if act_order
            else torch.arange(W.shape[1]))

    def round_column(col: int, w_col: torch.Tensor, upcoming) -> torch.Tensor:
        q = torch.round(w_col * inv).clamp_(-127, 127)
        codes[:, col] = q
        return q * scales

    _solve(W, H, perm, damp, block_size, round_column)
    return codes.to(torch.int8), scales.to(torch.float32)
