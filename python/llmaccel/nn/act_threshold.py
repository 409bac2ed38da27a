"""Changing, after the fact, the batch size from which packed layers quantize activations."""

from __future__ import annotations

import dataclasses

from torch import nn

from .quant_linear import QuantLinear, act_int8_threshold
from .sparse_linear import SparseLinear


def set_act_int8_min_m(model: nn.Module, min_m: int | None) -> list[str]:
    """Sets ``act_int8_min_m`` (rows of x from which activations are quantized to int8; None:
    never) on every layer of ``model`` that has the choice: weight-only QuantLinear (int4, int8)
    and int4 SparseLinear. Int8Dynamic layers (int8 at every M) and bf16 SparseLinear layers
    (no int8 kernel) are left alone. Returns the names of the layers changed; their configs
    change with them, so a checkpoint saved afterwards keeps the setting."""
    changed = []
    for name, mod in model.named_modules():
        if not isinstance(mod, (QuantLinear, SparseLinear)):
            continue
        if not any(f.name == "act_int8_min_m" for f in dataclasses.fields(mod.config)):
            continue
        if isinstance(mod, SparseLinear) and mod.config.bits != 4:
            continue
        mod.config = dataclasses.replace(mod.config, act_int8_min_m=min_m)
        mod._int8_min_m = act_int8_threshold(mod.config)  # the forward's copy, as in __init__
        changed.append(name)
    return changed
