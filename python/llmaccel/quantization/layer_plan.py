"""Which nn.Linear gets which config, and module swaps — shared by quantize_ and prune_, so
per-layer overrides mean the same thing in both."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from torch import nn

FilterFn = Callable[[nn.Module, str], bool]
# Kept as it is unless an override names it: the output projection sees every token's full
# vocabulary distribution and is where small models lose most to compression.
DEFAULT_KEEP = r"(^|\.)lm_head$"


def assign_configs(model: nn.Module, config, overrides: Mapping[str, object] | None,
                   filter_fn: FilterFn | None, config_types: tuple[type, ...],
                   what: str) -> dict[str, object]:
    """{qualified name: config} for the nn.Linear modules of ``model``; absent names are left
    as they are.

    overrides: {regex: config or None}; the first pattern found (re.search) in a layer's name
    gives its config, None leaves the layer alone. lm_head is left alone unless a pattern names
    it. A pattern that matches no linear is an error (a typo would otherwise go unnoticed).
    config_types / what: the configs an override may hold, and their name for errors.
    """
    overrides = dict(overrides or {})
    for pattern, cfg in overrides.items():
        re.compile(pattern)
        if cfg is not None and not isinstance(cfg, config_types):
            raise TypeError(f"override {pattern!r}: expected {what} or None, got {cfg!r}")
    used, out = set(), {}
    for fqn, mod in model.named_modules():
        if type(mod) is not nn.Linear or (filter_fn is not None and not filter_fn(mod, fqn)):
            continue
        pattern = next((p for p in overrides if re.search(p, fqn)), None)
        if pattern is not None:
            used.add(pattern)
            cfg = overrides[pattern]
        else:
            cfg = None if re.search(DEFAULT_KEEP, fqn) else config
        if cfg is not None:
            out[fqn] = cfg
    unused = set(overrides) - used
    if unused:
        raise ValueError(f"override patterns match no linear layer: {sorted(unused)}")
    return out


def swap_module(root: nn.Module, fqn: str, new: nn.Module) -> None:
    """Puts ``new`` at the qualified name ``fqn`` under ``root``."""
    parent_name, _, child = fqn.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)
