"""sparsify_: pruned 2:4 layers become SparseLinear, which reads 25 % (int4) or 44 % (bf16) fewer
weight bytes than the dense layer holding the same zeros, in kernels built for it. Pruning alone
only writes zeros: a dense kernel streams them all the same."""

from __future__ import annotations

import torch
from torch import nn

from ..configs import Int4WeightOnly
from ..nn import QuantLinear, SparseLinear
from ..quantization.layer_plan import FilterFn
from .undo import UndoLog


def is_2_4(nonzero: torch.Tensor) -> bool:
    """True when a (N, K) nonzero mask keeps at most 2 of every 4 consecutive columns."""
    n, k = nonzero.shape
    return k % 4 == 0 and bool((nonzero.view(n, k // 4, 4).sum(dim=2) <= 2).all())


def packable(mod: nn.Module, float_weights: bool = True) -> bool:
    """Whether sparsify_ would convert this module."""
    if isinstance(mod, QuantLinear):
        if not isinstance(mod.config, Int4WeightOnly) or not mod.config.symmetric:
            return False
        return is_2_4(mod.codes()[0] != 8)  # what the 2:4 format stores: codes, zero = 8
    if type(mod) is nn.Linear and float_weights and mod.weight.is_floating_point():
        return is_2_4(mod.weight.detach() != 0)
    return False


def pack_module(mod: nn.Module) -> SparseLinear:
    """The SparseLinear twin of a packable module (see packable)."""
    if isinstance(mod, QuantLinear):
        return SparseLinear.from_quant_linear(mod)
    return SparseLinear.from_linear(mod)


def sparsify_(model: nn.Module, filter_fn: FilterFn | None = None, *,
              float_weights: bool = True) -> list[str]:
    """Replaces every 2:4 sparse linear of ``model`` by a SparseLinear, in place; returns their
    names. Symmetric int4 QuantLinear layers keep their exact codes and scales; float nn.Linear
    layers (with ``float_weights``) keep their values rounded to bfloat16. Layers that are not
    2:4 (dense, unstructured sparsity, int8, asymmetric int4) are left as they are.

    filter_fn(module, name): only modules for which it is true are considered.
    All or nothing: if a conversion fails, the model is left as it was.
    """
    log = UndoLog()
    done = []
    try:
        for name, mod in list(model.named_modules()):
            if not name or (filter_fn is not None and not filter_fn(mod, name)):
                continue
            if packable(mod, float_weights):
                log.swap(model, name, pack_module(mod))
                done.append(name)
    except BaseException:
        log.undo()
        raise
    return done
