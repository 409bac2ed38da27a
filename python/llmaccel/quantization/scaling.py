"""Per-input-channel scales folded into the op before a group of linears (AWQ, SmoothQuant).

Linears that read the same tensor form a group: for x = prev(h), every linear in the group
computes (x / s) · (W · diag(s))ᵀ = x · Wᵀ. Dividing the output of ``prev`` by s — an RMSNorm's
weight, or the rows of the projection before — and multiplying the group's weight columns by s
leaves the float model's function unchanged, and moves range from activations to weights (or
back) so that quantization loses less. Inference pays nothing: the scales live in weights.

In a Llama-style decoder layer the groups are
    input_layernorm          → self_attn.q_proj, k_proj, v_proj
    self_attn.v_proj         → self_attn.o_proj   (only when v's outputs are o's inputs: no GQA)
    post_attention_layernorm → mlp.gate_proj, up_proj
    mlp.up_proj              → mlp.down_proj      (down reads silu(gate(x)) ⊙ up(x): linear in up)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# (previous op, its consumers), attribute paths inside one decoder layer.
_LLAMA_GROUPS = (
    ("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
    ("self_attn.v_proj", ("self_attn.o_proj",)),
    ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
    ("mlp.up_proj", ("mlp.down_proj",)),
)


@dataclass
class ScaleGroup:
    prev_name: str
    prev: nn.Module
    names: tuple[str, ...]       # the consumers, relative to the layer
    linears: tuple[nn.Linear, ...]


def _get(layer: nn.Module, path: str) -> nn.Module | None:
    try:
        return layer.get_submodule(path)
    except AttributeError:
        return None


def _scalable_norm(mod: nn.Module) -> bool:
    # y = weight ⊙ normalize(x) (+ bias): dividing weight (and bias) by s divides y by s.
    # Gemma's RMSNorm multiplies by (1 + weight) and would need a different fold.
    name = type(mod).__name__
    if isinstance(mod, nn.LayerNorm):
        return mod.weight is not None
    return name.endswith("RMSNorm") and "Gemma" not in name and hasattr(mod, "weight")


def scale_groups(layer: nn.Module) -> list[ScaleGroup]:
    """The foldable groups of a Llama-style decoder layer (Llama, Mistral, Qwen2, SmolLM).

    Raises TypeError for layers of another shape: the methods that need groups say which
    architectures they support instead of silently skipping layers.
    """
    groups = []
    for prev_name, names in _LLAMA_GROUPS:
        prev = _get(layer, prev_name)
        linears = [_get(layer, n) for n in names]
        if prev is None or any(not isinstance(m, nn.Linear) for m in linears):
            if prev_name in ("input_layernorm", "post_attention_layernorm"):
                raise TypeError(f"{type(layer).__name__} is not a Llama-style decoder layer "
                                f"(no {prev_name} → {', '.join(names)}); AWQ and SmoothQuant "
                                "support Llama, Mistral, Qwen2 and SmolLM layouts")
            continue
        if isinstance(prev, nn.Linear):
            if prev.out_features != linears[0].in_features:
                continue  # grouped-query attention: v's outputs are repeated into o's inputs
        elif not _scalable_norm(prev):
            raise TypeError(f"cannot fold scales into {type(prev).__name__} ({prev_name})")
        groups.append(ScaleGroup(prev_name, prev, names, tuple(linears)))
    return groups


@torch.no_grad()
def fold_scales(group: ScaleGroup, s: torch.Tensor) -> None:
    """prev's output ÷ s, every consumer's weight columns × s: the float function is unchanged."""
    s = s.to(torch.float32)
    prev = group.prev
    if isinstance(prev, nn.Linear):
        prev.weight.div_(s.to(prev.weight.dtype).unsqueeze(1))
    else:
        prev.weight.div_(s.to(prev.weight.dtype))
    if getattr(prev, "bias", None) is not None:
        prev.bias.div_(s.to(prev.bias.dtype))
    for lin in group.linears:
        lin.weight.mul_(s.to(lin.weight.dtype).unsqueeze(0))


def weight_absmax(group: ScaleGroup) -> torch.Tensor:
    """max |W_ij| over the group's outputs i, per input channel j."""
    return torch.stack([lin.weight.detach().float().abs().amax(dim=0)
                        for lin in group.linears]).amax(dim=0)
