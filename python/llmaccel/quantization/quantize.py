"""quantize_: swap a model's nn.Linear modules for QuantLinear, in place — by round-to-nearest,
or calibrated (GPTQ, AWQ, SmoothQuant) one decoder layer at a time."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..configs import (AWQ, GPTQ, CalibratedConfig, Int4WeightOnly, Int8Dynamic, Int8WeightOnly,
                       QuantConfig, SmoothQuant)
from ..nn import QuantLinear
from . import awq, calibration as cal, gptq, smoothquant
from .layer_plan import FilterFn, assign_configs, swap_module
from .scaling import fold_scales, scale_groups

_CONFIG_TYPES = (Int4WeightOnly, Int8WeightOnly, Int8Dynamic, GPTQ, AWQ, SmoothQuant)
_CALIBRATED = (GPTQ, AWQ, SmoothQuant)


def plan(model: nn.Module, config: QuantConfig, overrides: Mapping[str, QuantConfig | None] | None = None,
         filter_fn: FilterFn | None = None) -> dict[str, QuantConfig]:
    """Which nn.Linear gets which config: {qualified name: config}; absent names stay float.

    overrides: {regex: config or None}; the first pattern found (re.search) in a layer's name
    gives its config, None keeps it in float. lm_head is kept unless a pattern names it.
    """
    return assign_configs(model, config, overrides, filter_fn, _CONFIG_TYPES,
                          "a quantization config")


def quantize_(model: nn.Module, config: QuantConfig, filter_fn: FilterFn | None = None, *,
              calibration: torch.Tensor | None = None,
              overrides: Mapping[str, QuantConfig | None] | None = None,
              batch_size: int = 8, progress: bool = True) -> nn.Module:
    """Replaces the nn.Linear modules of ``model`` by QuantLinear, in place; returns ``model``.

    config: a layer scheme (Int4WeightOnly, Int8WeightOnly, Int8Dynamic: round-to-nearest, no
        data needed) or a calibrated method (GPTQ, AWQ, SmoothQuant: needs ``calibration``).
    filter_fn(module, name): only linears for which it is true are considered.
    overrides: {regex: config or None} per layer name, first match wins (see ``plan``);
        lm_head is kept in float unless a pattern names it.
    calibration: token ids (n_samples, seq_len), e.g. llmaccel.data.calibration_ids(tok).
    batch_size: calibration samples per forward pass.

    Calibrated methods run decoder layer by layer (memory: one layer's activations for the
    calibration set); linears outside the decoder layers are rounded to nearest. If it is
    interrupted, the model is left partly quantized: quantize a copy, or reload.
    """
    if isinstance(model, nn.Linear):
        raise TypeError("quantize_ swaps submodules in place; for a bare nn.Linear use "
                        "llmaccel.nn.QuantLinear.from_linear(linear, config)")
    if not isinstance(config, _CONFIG_TYPES):
        raise TypeError(f"unsupported config {config!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    plans = plan(model, config, overrides, filter_fn)
    if any(isinstance(c, _CALIBRATED) for c in plans.values()):
        cal.check_calibration_ids(calibration, type(config).__name__)
        _calibrated(model, plans, calibration, batch_size, progress)
    for fqn, cfg in plans.items():  # what is left: RTN (all of it when nothing is calibrated)
        mod = model.get_submodule(fqn)
        if type(mod) is nn.Linear:
            swap_module(model, fqn, QuantLinear.from_linear(mod, _scheme(cfg)))
    return model


def _scheme(cfg: QuantConfig):
    return cfg.scheme() if isinstance(cfg, _CALIBRATED) else cfg


def _calibrated(model: nn.Module, plans: dict[str, QuantConfig], ids: torch.Tensor,
                batch_size: int, progress: bool) -> None:
    path, layers = cal.decoder_layers(model)
    inputs = cal.catch_first_layer_inputs(model, layers[0], ids, batch_size)
    methods = sorted({type(c).__name__ for c in plans.values() if isinstance(c, _CALIBRATED)})
    it = enumerate(layers)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, total=len(layers), desc=f"{'+'.join(methods)} layers", unit="layer")
    for i, layer in it:
        prefix = f"{path}.{i}."
        mine = {f[len(prefix):]: c for f, c in plans.items() if f.startswith(prefix)}
        if mine:
            _calibrate_layer(layer, mine, inputs)
        cal.run_layer(layer, inputs, update=True)  # the next layer's inputs, through this one


def _calibrate_layer(layer: nn.Module, mine: dict[str, QuantConfig], inputs: cal.LayerInputs) -> None:
    linears = {n: m for n, m in layer.named_modules() if type(m) is nn.Linear}
    want_awq = any(isinstance(c, AWQ) for c in mine.values())
    stats = cal.collect_input_stats(
        layer, inputs, linears, hessian=any(isinstance(c, GPTQ) for c in mine.values()),
        sample_rows=max((c.sample_rows for c in mine.values() if isinstance(c, AWQ)), default=0))

    if want_awq or any(isinstance(c, SmoothQuant) for c in mine.values()):
        for group in scale_groups(layer):
            cfgs = {type(mine[n]) for n in group.names
                    if isinstance(mine.get(n), (AWQ, SmoothQuant))}
            if not cfgs:
                continue
            if len(cfgs) > 1:
                raise ValueError(f"{', '.join(group.names)} read one input and cannot be scaled "
                                 "for both AWQ and SmoothQuant")
            st = stats[group.names[0]]
            lead = next(mine[n] for n in group.names if isinstance(mine.get(n), (AWQ, SmoothQuant)))
            if isinstance(lead, AWQ):
                schemes = [_scheme(mine[n]) if n in mine else None for n in group.names]
                s, _, _ = awq.search_scale(group, st.sample, st.absmean, schemes, lead.grid)
            else:
                s = smoothquant.smooth_scale(group, st.absmax, lead.alpha)
            fold_scales(group, s)
            _divide_stats(st, s)

    for i, stage in enumerate(cal.stages(stats)):
        todo = [n for n in stage if n in mine]
        if i > 0 and any(isinstance(mine[n], GPTQ) and mine[n].true_sequential for n in todo):
            # The inputs of this stage as they are now that the stages before are quantized.
            stats.update(cal.collect_input_stats(layer, inputs, {n: linears[n] for n in stage},
                                                 hessian=True))
        for name in todo:
            _quantize_linear(layer, name, linears[name], mine[name], stats[name])


def _quantize_linear(layer: nn.Module, name: str, lin: nn.Linear, cfg: QuantConfig,
                     st: cal.InputStats) -> None:
    scheme = _scheme(cfg)
    if (isinstance(cfg, AWQ) and cfg.clip and isinstance(scheme, Int4WeightOnly)
            and not name.endswith(awq.NO_CLIP)):
        with torch.no_grad():
            lin.weight.copy_(awq.search_clip(lin, st.sample[:cfg.clip_rows], scheme,
                                             cfg.clip_grid, cfg.clip_max_shrink))
    if isinstance(cfg, GPTQ):
        q = gptq_linear(lin, cfg, st.hessian)
    else:
        q = QuantLinear(lin.in_features, lin.out_features, lin.bias is not None, scheme)
        q.load_weight(lin.weight, lin.bias)
        q = q.to(lin.weight.device)
    swap_module(layer, name, q)


def gptq_linear(lin: nn.Linear, cfg: GPTQ, hessian: torch.Tensor,
                keep: torch.Tensor | None = None) -> QuantLinear:
    """``lin`` quantized by GPTQ under ``cfg``, given its input Hessian (K, K), as a QuantLinear
    on lin's device. keep: bool (N, K), weights a pruning left; the others stay exactly zero."""
    q = QuantLinear(lin.in_features, lin.out_features, lin.bias is not None, cfg.scheme())
    if cfg.bits != 8:
        codes, scales, zeros = gptq.gptq_quantize_int4(
            lin.weight, hessian, cfg.group_size, cfg.symmetric, cfg.damp, cfg.act_order,
            cfg.block_size, cfg.mse, keep, cfg.bits)
    else:
        (codes, scales), zeros = gptq.gptq_quantize_int8(
            lin.weight, hessian, cfg.damp, cfg.act_order, cfg.block_size, keep), None
    q.load_codes(codes, scales, zeros, lin.bias)
    return q.to(lin.weight.device)


def _divide_stats(st: cal.InputStats, s: torch.Tensor) -> None:
    """The statistics of x / s, from those of x (the group's input after folding s)."""
    if st.hessian is not None:
        st.hessian = st.hessian / torch.outer(s, s)
    st.absmax, st.abssum, st.sqsum = st.absmax / s, st.abssum / s, st.sqsum / (s * s)
    if st.sample is not None:
        st.sample = st.sample / s
