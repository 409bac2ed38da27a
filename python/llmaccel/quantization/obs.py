"""The Optimal Brain Surgeon column sweep shared by GPTQ (rounding) and SparseGPT (pruning).

Both methods change a layer's weight W (N, K) one input column at a time and spread each
column's change over the columns not yet visited, through the upper Cholesky factor U of the
inverse Hessian (H = XᵀX of the calibration inputs), so that the layer's output error
‖(W − Ŵ) Xᵀ‖² stays small. They differ only in what a column becomes — its rounded value
(GPTQ), or its value with some entries set to zero (SparseGPT) — so that choice is the caller's
``update_column`` and the sweep is written once.

Updates are lazy in blocks of columns: within a block each column updates the rest of the
block, and the block's accumulated errors reach the later columns as one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# update_column(pos, w_col, upcoming) -> the column's new value (N,) float64. pos: position in
# visiting order; w_col: the column as updated so far; upcoming(width): the next ``width``
# columns from this one on (visiting order), as updated so far.
UpdateColumn = Callable[[int, torch.Tensor, Callable[[int], torch.Tensor]], torch.Tensor]


def prepare(w: torch.Tensor, hessian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 copies of w (N, K) and hessian (K, K); inputs that never fired (zero diagonal)
    get a unit diagonal and zero weights — they cannot affect the output."""
    if w.dim() != 2 or hessian.shape != (w.shape[1], w.shape[1]):
        raise ValueError(f"need w (N, K) and hessian (K, K), got {tuple(w.shape)} and "
                         f"{tuple(hessian.shape)}")
    W = w.detach().to(torch.float64).clone()
    H = hessian.detach().to(torch.float64).clone()
    dead = torch.diagonal(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    return W, H


def inverse_hessian_factor(H: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor U of (H + λI)⁻¹, λ = damp · mean diagonal, in H's column order.
    Modifies H in place (the damping)."""
    k = H.shape[0]
    H += damp * torch.diagonal(H).mean() * torch.eye(k, dtype=torch.float64)
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)


def sweep(W: torch.Tensor, U: torch.Tensor, block_size: int, update_column: UpdateColumn) -> None:
    """Visits the columns of W (N, K) float64, in place, in their current order; U from
    inverse_hessian_factor for that same order. W's visited columns keep their values from
    before their own update; callers record what ``update_column`` returned."""
    k = W.shape[1]
    for i1 in range(0, k, block_size):
        i2 = min(i1 + block_size, k)
        W1, E1 = W[:, i1:i2].clone(), torch.zeros(W.shape[0], i2 - i1, dtype=torch.float64)
        for i in range(i2 - i1):
            def upcoming(width: int, i: int = i) -> torch.Tensor:
                inside = W1[:, i:i + width]
                return torch.cat([inside, W[:, i2:i2 + width - inside.shape[1]]], dim=1)

            q = update_column(i1 + i, W1[:, i], upcoming)
            err = (W1[:, i] - q) / U[i1 + i, i1 + i]
            W1[:, i:] -= err.unsqueeze(1) * U[i1 + i, i1 + i:i2].unsqueeze(0)
            E1[:, i] = err
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
