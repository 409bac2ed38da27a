"""prune_: zero weights of a model's nn.Linear modules (Magnitude, Wanda, SparseGPT — optionally
quantizing the survivors with GPTQ), or remove whole channels and heads (Structured), in place.

Calibrated methods run one decoder layer at a time, as quantize_ does (quantization.calibration):
each layer is pruned on the inputs it receives through the already pruned layers before it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..quantization import calibration as cal
from ..quantization.layer_plan import FilterFn, assign_configs
from ..quantization.quantize import gptq_linear
from .configs import Magnitude, PruneConfig, SparseGPT, Structured, Wanda, WeightPruningConfig
from .magnitude import magnitude_mask
from .pack import pack_module, packable
from .sparsegpt import sparsegpt_prune
from .structured import prune_structured
from .undo import UndoLog
from .wanda import wanda_mask

_CONFIG_TYPES = (Magnitude, Wanda, SparseGPT)
_CALIBRATED = (Wanda, SparseGPT)


def plan(model: nn.Module, config: WeightPruningConfig,
         overrides: Mapping[str, WeightPruningConfig | None] | None = None,
         filter_fn: FilterFn | None = None) -> dict[str, WeightPruningConfig]:
    """Which nn.Linear gets which pruning config: {qualified name: config}; absent names stay
    dense. overrides: {regex: config or None}, first match wins (as quantization.plan); lm_head
    is kept dense unless a pattern names it (embeddings are not linears: never pruned)."""
    if isinstance(config, Structured) or any(isinstance(c, Structured)
                                             for c in (overrides or {}).values()):
        raise TypeError("Structured pruning works on whole decoder layers, not per linear: "
                        "give it to prune_ without overrides or filter_fn")
    return assign_configs(model, config, overrides, filter_fn, _CONFIG_TYPES,
                          "a Magnitude, Wanda or SparseGPT config")


def prune_(model: nn.Module, config: PruneConfig, filter_fn: FilterFn | None = None, *,
           calibration: torch.Tensor | None = None,
           overrides: Mapping[str, WeightPruningConfig | None] | None = None,
           batch_size: int = 8, progress: bool = True) -> nn.Module:
    """Prunes ``model`` in place; returns it.

    config: Magnitude (no data), Wanda or SparseGPT (need ``calibration``), each with a
        sparsity and a pattern ("unstructured", "2:4", "4:8"): pruned nn.Linear modules keep
        their shape with zeros in the weight — or become QuantLinear with
        SparseGPT(quantize=GPTQ(...)). Structured (needs ``calibration``): whole MLP channels
        and KV groups removed, modules and model.config shrunk.
    filter_fn(module, name): only linears for which it is true are considered.
    overrides: {regex: config or None} per layer name, first match wins; lm_head is kept
        dense unless a pattern names it.
    calibration: token ids (n_samples, seq_len), e.g. llmaccel.data.calibration_ids(tok).
    batch_size: calibration samples per forward pass.

    All or nothing: if the run fails or is interrupted, every change is undone and the model is
    as it was (until it returns it holds the replaced weights: about one extra copy).
    """
    if isinstance(model, nn.Linear):
        raise TypeError("prune_ edits a model's submodules in place; for one weight use "
                        "llmaccel.pruning.magnitude_mask / wanda_mask / sparsegpt_prune")
    if not isinstance(config, (*_CONFIG_TYPES, Structured)):
        raise TypeError(f"unsupported config {config!r}: expected Magnitude, Wanda, SparseGPT "
                        "or Structured")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    log = UndoLog()
    if isinstance(config, Structured):
        if overrides or filter_fn is not None:
            raise ValueError("Structured pruning removes the same number of channels and heads "
                             "from every decoder layer (the model config holds one size for "
                             "all): it takes no overrides or filter_fn")
        cal.check_calibration_ids(calibration, "Structured")
        _all_or_nothing(log, lambda: prune_structured(model, config, calibration, batch_size,
                                                      progress, log))
        return model

    plans = plan(model, config, overrides, filter_fn)
    _check_plans(model, plans)
    calibrated = [c for c in plans.values() if isinstance(c, _CALIBRATED)]
    if calibrated:
        cal.check_calibration_ids(calibration, type(calibrated[0]).__name__)

    def run() -> None:
        done = set()
        if calibrated:
            done = _calibrated(model, plans, calibration, batch_size, progress, log)
        for fqn, cfg in plans.items():  # data-free: all of it when nothing is calibrated
            if fqn not in done:
                _prune_linear(model, fqn, cfg, None, log)

    _all_or_nothing(log, run)
    return model


def _all_or_nothing(log: UndoLog, run) -> None:
    try:
        run()
    except BaseException:  # KeyboardInterrupt too: never leave a half-pruned model
        log.undo()
        raise


def _check_plans(model: nn.Module, plans: dict[str, WeightPruningConfig]) -> None:
    """Errors that would otherwise surface halfway through a long run."""
    seen: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        seen[id(p)] = seen.get(id(p), 0) + 1
    layer_path = None
    if any(isinstance(c, _CALIBRATED) for c in plans.values()):
        layer_path, _ = cal.decoder_layers(model)
    for fqn, cfg in plans.items():
        lin = model.get_submodule(fqn)
        if seen[id(lin.weight)] > 1:
            raise ValueError(f"{fqn}.weight is shared with another module (tied embeddings?); "
                             "pruning it would prune that one too")
        if cfg.nm is not None and lin.in_features % cfg.nm[1]:
            raise ValueError(f"{fqn} has {lin.in_features} input features, not a multiple of "
                             f"M={cfg.nm[1]} for pattern {cfg.pattern!r}")
        if isinstance(cfg, _CALIBRATED) and not fqn.startswith(f"{layer_path}."):
            raise ValueError(f"{fqn} is outside the decoder layers, where {type(cfg).__name__} "
                             "has no calibration inputs; use Magnitude for it (overrides)")


def _calibrated(model: nn.Module, plans: dict[str, WeightPruningConfig], ids: torch.Tensor,
                batch_size: int, progress: bool, log: UndoLog) -> set[str]:
    """Prunes the planned linears of every decoder layer, layer by layer; returns their names."""
    path, layers = cal.decoder_layers(model)
    inputs = cal.catch_first_layer_inputs(model, layers[0], ids, batch_size)
    methods = sorted({type(c).__name__ for c in plans.values()})
    it = enumerate(layers)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, total=len(layers), desc=f"{'+'.join(methods)} layers", unit="layer")
    done = set()
    for i, layer in it:
        prefix = f"{path}.{i}."
        mine = {f[len(prefix):]: c for f, c in plans.items() if f.startswith(prefix)}
        if mine:
            _prune_layer(layer, mine, inputs, log)
            done.update(prefix + n for n in mine)
        cal.run_layer(layer, inputs, update=True)  # the next layer's inputs, through this one
    return done


def _prune_layer(layer: nn.Module, mine: dict[str, WeightPruningConfig],
                 inputs: cal.LayerInputs, log: UndoLog) -> None:
    linears = {n: m for n, m in layer.named_modules() if type(m) is nn.Linear}
    if not any(isinstance(c, _CALIBRATED) for c in mine.values()):
        for name, cfg in mine.items():
            _prune_linear(layer, name, cfg, None, log)
        return

    def wants_hessian(names) -> bool:
        return any(isinstance(mine.get(n), SparseGPT) for n in names)

    stats = cal.collect_input_stats(layer, inputs, linears, hessian=wants_hessian(mine))
    for i, stage in enumerate(cal.stages(stats)):
        todo = [n for n in stage if n in mine]
        if i > 0 and any(isinstance(mine[n], _CALIBRATED) and mine[n].true_sequential
                         for n in todo):
            # The inputs of this stage as they are now that the stages before are pruned.
            stats.update(cal.collect_input_stats(layer, inputs, {n: linears[n] for n in stage},
                                                 hessian=wants_hessian(stage)))
        for name in todo:
            _prune_linear(layer, name, mine[name], stats[name], log)


def _prune_linear(root: nn.Module, name: str, cfg: WeightPruningConfig,
                  st: cal.InputStats | None, log: UndoLog) -> None:
    lin = root.get_submodule(name)
    w = lin.weight.detach()
    if isinstance(cfg, SparseGPT):
        pruned, keep = sparsegpt_prune(w.cpu(), st.hessian, cfg.sparsity, cfg.nm, cfg.damp,
                                       cfg.block_size)
    elif isinstance(cfg, Wanda):
        keep = wanda_mask(w, st.sqsum, cfg)
        pruned = w.masked_fill(~keep, 0)
    else:
        keep = magnitude_mask(w, cfg)
        pruned = w.masked_fill(~keep, 0)
    log.set(lin, "weight", nn.Parameter(pruned.to(w.dtype).to(w.device),
                                        requires_grad=lin.weight.requires_grad))
    if isinstance(cfg, SparseGPT) and cfg.quantize is not None:
        # The survivors quantized with the same Hessian, the pruned weights held at zero.
        q = gptq_linear(lin, cfg.quantize, st.hessian, keep)
        if cfg.nm == (2, 4) and packable(q):
            q = pack_module(q)  # 2:4 + symmetric int4: the sparse kernel, same codes and scales
        log.swap(root, name, q)
