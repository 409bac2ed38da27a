"""SparseGPT (Frantar & Alistarh, 2023) for one linear layer: a sparse W' that keeps the layer's
output error ‖(W − W') Xᵀ‖² small on calibration inputs X, given H = XᵀX.

It is GPTQ's sweep (quantization.obs) with "zero this weight or not" in place of "round this
weight": columns are visited left to right, the zeroed weights' values are compensated on the
columns not yet visited through the inverse Hessian, so the survivors absorb what the pruned
ones did. The mask is chosen as the sweep reaches it, from the weights as updated so far, by
the OBS saliency w² / [H⁻¹]_jj — the output error that zeroing w alone would cost, where
[H⁻¹]_jj is the square of the sweep's Cholesky diagonal at column j:
  - unstructured: at the start of each block of columns, the lowest-saliency share of that
    block over all rows (block counts sum exactly to the layer's share);
  - N:M: at the start of each group of M columns, the M − N lowest per row.
"""

from __future__ import annotations

import torch

from ..quantization import obs
from .masks import lowest_mask, nm_mask, pruned_count


def sparsegpt_prune(w: torch.Tensor, hessian: torch.Tensor, sparsity: float,
                    nm: tuple[int, int] | None = None, damp: float = 0.01,
                    block_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """w (N, K) float, hessian (K, K) = XᵀX (any positive scale) → (pruned weight float64
    (N, K), keep-mask bool (N, K)); the pruned weight is exactly zero where keep is False.

    sparsity: share zeroed (unstructured); nm: (N, M) to keep N of every M instead.
    damp: fraction of the mean diagonal added to H. block_size: columns per lazy update and per
    unstructured mask choice.
    """
    W, H = obs.prepare(w, hessian)
    rows, k = W.shape
    if nm is not None and k % nm[1]:
        raise ValueError(f"an N:M pattern with M={nm[1]} needs in_features divisible by "
                         f"{nm[1]}, got {k}")
    U = obs.inverse_hessian_factor(H, damp)
    inv_diag_sq = torch.diagonal(U).pow(2)
    keep = torch.ones(rows, k, dtype=torch.bool)
    pruned = torch.zeros_like(W)

    def saliency(cols: torch.Tensor, pos: int) -> torch.Tensor:
        return cols.pow(2) / inv_diag_sq[pos:pos + cols.shape[1]]

    def prune_column(pos: int, w_col: torch.Tensor, upcoming) -> torch.Tensor:
        if nm is not None and pos % nm[1] == 0:
            keep[:, pos:pos + nm[1]] = nm_mask(saliency(upcoming(nm[1]), pos), *nm)
        elif nm is None and pos % block_size == 0:
            end = min(pos + block_size, k)
            # Each block's count is the difference of the rounded running totals, so the
            # blocks add up to exactly pruned_count(sparsity, N·K).
            count = pruned_count(sparsity, rows * end) - pruned_count(sparsity, rows * pos)
            keep[:, pos:end] = lowest_mask(saliency(upcoming(end - pos), pos), count)
        pruned[:, pos] = torch.where(keep[:, pos], w_col, 0.0)
        return pruned[:, pos]

    obs.sweep(W, U, block_size, prune_column)
    return pruned, keep
