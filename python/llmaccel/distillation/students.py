"""Students for distillation: compressed models that train with plain ``loss.backward();
optimizer.step()`` against a teacher.

* ``pruned_student``         a pruned model whose zeros stay where they are while it trains.
* ``fake_quant_student``     linears → FakeQuantLinear: float weights trained through rounding
                             onto fixed group scales (a straight-through estimator); then
                             ``pack_fake_quant`` makes QuantLinear layers with the same scales
                             and the trained codes, which compute the trained logits.
* ``layer_dropped_student``  a copy of the teacher keeping some of its decoder layers.

The training contract (``constraints.py``): give the optimizer ``trainable_parameters(model)``
and call ``after_step(model)`` after every optimizer step; this module re-exports both, and the
fake-quant student (``fake_quant.py``), so one import gives the trainer every student.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import formats
from ..nn import SparseLinear
from ..pruning.pack import is_2_4
from ..quantization.calibration import decoder_layers
from ..quantization.layer_plan import swap_module
from .constraints import FixedMask, add_constraint, after_step, trainable_parameters
from .fake_quant import (FakeQuantLinear, code_range, fake_quant_student, group_params,
                         pack_fake_quant)

__all__ = ["FakeQuantLinear", "FixedMask", "after_step", "code_range", "fake_quant_student",
           "group_params", "layer_dropped_student", "pack_fake_quant", "pruned_student",
           "trainable_parameters"]

# ---- pruned student -------------------------------------------------------------------------

def pruned_student(model: nn.Module,
                   masks: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """Fixes the zeros of a pruned ``model`` for training, in place; returns ``model``.

    masks: {qualified name: bool keep-mask (out_features, in_features)} of nn.Linear or
        FakeQuantLinear layers; weights outside a mask are set to zero now. None: every such
        layer with exact zeros in its weight (what prune_ leaves) keeps them — but a 2:4 layer
        keeps 2 trainable slots in every group of 4 (its nonzeros topped up with its first
        zeros, formats.sp24_mask), so a kept weight that is exactly zero, as a quantized weight
        on the zero point's code is, still trains. Elsewhere such a weight is pinned with the
        pruned ones: pass masks to tell them apart.

    2:4 SparseLinear layers holding bfloat16 values (sparsify_) first become nn.Linear layers
    with the same values in the model's float dtype; ``llmaccel.sparsify_(model)`` packs them
    back after training. Int4 SparseLinear layers hold codes: make them FakeQuantLinear first,
    ``fake_quant_student(model, bits=4, init="quantized")``.
    """
    _unpack_sparse(model)
    if masks is None:
        masks = {name: _zeros_mask(m.weight.detach()) for name, m in model.named_modules()
                 if _maskable(m)}
        masks = {name: keep for name, keep in masks.items() if not bool(keep.all())}
        if not masks:
            raise ValueError("found no linear layer with zero weights: prune the model first "
                             "(llmaccel.prune_) or pass masks")
    for name, keep in masks.items():
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            mod = None
        if not _maskable(mod):
            raise ValueError(f"masks name {name!r}, which is not an nn.Linear or "
                             "FakeQuantLinear of the model")
        if (not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool
                or keep.shape != mod.weight.shape):
            got = (f"{tuple(keep.shape)} {keep.dtype}" if isinstance(keep, torch.Tensor)
                   else type(keep).__name__)
            raise ValueError(f"mask of {name} must be a bool tensor shaped like its weight "
                             f"{tuple(mod.weight.shape)}, got {got}")
        constraint = FixedMask(keep.to(mod.weight.device))
        add_constraint(mod, constraint)
        constraint.apply(mod)
    return model


def _zeros_mask(w: torch.Tensor) -> torch.Tensor:
    nonzero = w != 0
    return formats.sp24_mask(nonzero) if is_2_4(nonzero) else nonzero


def _maskable(m: nn.Module) -> bool:
    return type(m) is nn.Linear or isinstance(m, FakeQuantLinear)


def _unpack_sparse(model: nn.Module) -> None:
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, SparseLinear):
            continue
        if mod.config.bits != 16:
            raise TypeError(f"{name} is an int4 2:4 SparseLinear: make it trainable with "
                            "fake_quant_student(model, bits=4, init='quantized') first")
        lin = nn.Linear(mod.in_features, mod.out_features, mod.bias is not None, dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(mod.dequantize())
            if mod.bias is not None:
                lin.bias.copy_(mod.bias)
        swap_module(model, name, lin.to(mod.packed.device))


# ---- layer-dropped student ------------------------------------------------------------------

def layer_dropped_student(teacher: nn.Module, n_layers: int | None = None, *,
                          keep: Sequence[int] | None = None,
                          calibration: torch.Tensor | None = None) -> nn.Module:
    """A copy of ``teacher`` with only some of its decoder layers, initialised from the teacher's
    weights; the teacher is unchanged. Give one of:

    n_layers: how many layers to keep.
        With ``calibration`` (token ids (batch, seq) or (seq,)): drop the contiguous block of
        L − n layers whose input and output hidden states are closest in angle on those tokens
        (Gromov et al., 2024, "The Unreasonable Ineffectiveness of the Deeper Layers"): the
        block that changes the residual stream least. The last layer always stays. On
        SmolLM2-135M (30 → 20, Shakespeare) this starts at perplexity 252 where the even
        spread below starts at 14205 (16 evaluation windows of 512 tokens).
        Without: spread evenly from the first to the last (layer round(i·(L−1)/(n−1)) for
        i = 0..n−1; 30 → 20 drops about every third layer), as DistilBERT initialises from
        every other teacher layer. The first and the last layer always stay.
    keep: the indices to keep, strictly increasing in 0..L−1.

    The copy's config has num_hidden_layers (and layer_types, where the model has them) for the
    kept layers and ``llmaccel_kept_layers`` (their teacher indices), and each kept layer's
    ``layer_idx`` is renumbered 0..n−1, so the KV cache, which is indexed by it, works.
    """
    path, layers = decoder_layers(teacher)
    total = len(layers)
    if calibration is not None:
        if keep is not None:
            raise ValueError("calibration chooses which layers to keep: give n_layers, not keep")
        _layers_to_keep(total, n_layers, None)  # the same n_layers checks
        n_drop = total - n_layers
        start = closest_block(teacher, layers, n_drop, calibration) if n_drop else 0
        keep = [i for i in range(total) if not start <= i < start + n_drop]
        n_layers = None
    keep = _layers_to_keep(total, n_layers, keep)
    # Seeding deepcopy's memo with the dropped layers makes it skip them (they come out as None
    # and the ModuleList is rebuilt below): the copy never holds more than the student's layers.
    kept_set = set(keep)
    memo = {id(layer): None for i, layer in enumerate(layers) if i not in kept_set}
    student = copy.deepcopy(teacher, memo)
    copied = student.get_submodule(path)
    kept = nn.ModuleList([copied[i] for i in keep])
    for i, layer in enumerate(kept):
        for m in layer.modules():
            if "layer_idx" in vars(m):
                m.layer_idx = i
    swap_module(student, path, kept)
    cfg = getattr(student, "config", None)
    if cfg is not None:
        cfg.num_hidden_layers = len(keep)
        # Provenance, saved with the config: which teacher layers the student started from.
        cfg.llmaccel_kept_layers = list(keep)
        types = getattr(cfg, "layer_types", None)
        if isinstance(types, (list, tuple)) and len(types) == total:
            cfg.layer_types = [types[i] for i in keep]
    return student


def _layers_to_keep(total: int, n_layers: int | None, keep: Sequence[int] | None) -> list[int]:
    if (n_layers is None) == (keep is None):
        raise ValueError("give exactly one of n_layers and keep")
    if keep is None:
        if (isinstance(n_layers, bool) or not isinstance(n_layers, int)
                or not 1 <= n_layers <= total):
            raise ValueError(f"n_layers must be an int in 1..{total} (the teacher's layers), "
                             f"got {n_layers!r}")
        if n_layers == 1:
            return [0]
        # Round half up in integers: spacing (total−1)/(n−1) ≥ 1, so the indices are distinct.
        return [(2 * i * (total - 1) + n_layers - 1) // (2 * (n_layers - 1))
                for i in range(n_layers)]
    keep = list(keep)
    if (not keep or any(isinstance(i, bool) or not isinstance(i, int) for i in keep)
            or any(b <= a for a, b in zip(keep, keep[1:])) or keep[0] < 0 or keep[-1] >= total):
        raise ValueError(f"keep must be strictly increasing layer indices in 0..{total - 1}, "
                         f"got {keep!r}")
    return keep


@torch.no_grad()
def block_distances(teacher: nn.Module, layers: Sequence[nn.Module], n_drop: int,
                    calibration: torch.Tensor) -> torch.Tensor:
    """Mean angular distance arccos(cos(h_l, h_{l+n})) / π over the calibration tokens between
    the input of layer l and the input of layer l + n_drop, for l = 0..L−1−n_drop (blocks that
    end before the last layer) → (L − n_drop,) float64. The inputs are caught by pre-hooks on
    the decoder layers, so the final norm never enters (HF's last hidden state is normed)."""
    if (not isinstance(calibration, torch.Tensor) or calibration.is_floating_point()
            or calibration.dim() not in (1, 2) or calibration.numel() == 0):
        raise ValueError("calibration must be a non-empty integer tensor of token ids "
                         "(batch, seq) or (seq,)")
    if not 1 <= n_drop < len(layers):
        raise ValueError(f"can drop 1..{len(layers) - 1} of {len(layers)} layers, not {n_drop}")
    ids = calibration.unsqueeze(0) if calibration.dim() == 1 else calibration
    n_starts = len(layers) - n_drop
    inputs: list[torch.Tensor] = []

    def catch(_module, args, kwargs):
        inputs.append((args[0] if args else kwargs["hidden_states"]).float())

    hooks = [layer.register_forward_pre_hook(catch, with_kwargs=True) for layer in layers]
    sums = torch.zeros(n_starts, dtype=torch.float64)
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    try:
        for row in ids:  # one window at a time: L hidden states of one window in memory
            inputs.clear()
            teacher(row[None].to(device))
            for start in range(n_starts):
                # float64: arccos is steep at 1, where float32 rounding alone reads ~1e-4.
                cos = F.cosine_similarity(inputs[start].double(),
                                          inputs[start + n_drop].double(), dim=-1)
                sums[start] += torch.arccos(cos.clamp(-1, 1)).sum().cpu() / math.pi
    finally:
        for h in hooks:
            h.remove()
        teacher.train(was_training)
    return sums / ids.numel()


def closest_block(teacher: nn.Module, layers: Sequence[nn.Module], n_drop: int,
                  calibration: torch.Tensor) -> int:
    """The first layer of the n_drop-layer block to drop (``block_distances``' argmin)."""
    return int(block_distances(teacher, layers, n_drop, calibration).argmin())
