"""quantize_: swap a model's nn.Linear modules for QuantLinear, in place."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..configs import QuantConfig
from ..nn import QuantLinear

FilterFn = Callable[[nn.Module, str], bool]


def quantize_(model: nn.Module, config: QuantConfig, filter_fn: FilterFn | None = None) -> nn.Module:
    """Replaces every nn.Linear in ``model`` (for which ``filter_fn(module, fqn)`` is true, if
    given) by ``QuantLinear.from_linear(module, config)`` — round-to-nearest. Returns ``model``.
    A bare nn.Linear passed as ``model`` cannot be swapped in place: use QuantLinear.from_linear.
    """
    if isinstance(model, nn.Linear):
        raise TypeError("quantize_ swaps submodules in place; for a bare nn.Linear use "
                        "llmaccel.nn.QuantLinear.from_linear(linear, config)")
    targets = [(fqn, mod) for fqn, mod in model.named_modules()
               if type(mod) is nn.Linear and (filter_fn is None or filter_fn(mod, fqn))]
    for fqn, mod in targets:
        parent_name, _, child = fqn.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, QuantLinear.from_linear(mod, config))
    return model
