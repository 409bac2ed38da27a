"""Structured pruning: whole MLP channels and attention KV groups removed, the modules and the
model config shrunk to match — a smaller dense model, no sparse kernel needed.

Hugging Face configs hold one intermediate_size and one head count for every layer, so each
decoder layer loses the same number of channels and groups; which ones is decided per layer,
one layer at a time, on calibration inputs that already pass through the pruned layers before.

A channel c that feeds projection W_out (down_proj for MLP channels, o_proj for head channels)
adds x_c · W_out[:, c] to the output; over the calibration tokens its energy is
Σ x_c² · ‖W_out[:, c]‖² (Wanda's score, summed over the column). A KV group scores the sum over
the channels of every query head that reads it; a group goes with all its query heads, so the
ratio of query to key/value heads — what the attention code repeats by — is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from ..quantization import calibration as cal
from .configs import Structured
from .masks import pruned_count
from .undo import UndoLog

_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


def structured_sizes(config, cfg: Structured) -> tuple[int, int]:
    """(KV groups kept, intermediate channels kept) per layer for a HF model config."""
    kv_heads, inter = config.num_key_value_heads, config.intermediate_size
    kv_keep = kv_heads - pruned_count(cfg.attention_sparsity, kv_heads)
    if kv_keep < 1:
        raise ValueError(f"attention_sparsity={cfg.attention_sparsity} would remove all "
                         f"{kv_heads} KV groups; at least one must stay")
    inter_keep, pruned = inter, pruned_count(cfg.sparsity, inter)
    if pruned:
        step = cfg.multiple_of
        inter_keep = min(inter, max(step, round((inter - pruned) / step) * step))
    return kv_keep, inter_keep


def check_layer(layer: nn.Module, where: str) -> None:
    """Raises TypeError unless ``layer`` has Llama-style float projections."""
    for part, names in (("self_attn", _ATTENTION), ("mlp", _MLP)):
        for name in names:
            mod = getattr(getattr(layer, part, None), name, None)
            if type(mod) is not nn.Linear:
                raise TypeError(f"structured pruning needs {where}.{part}.{name} as a float "
                                f"nn.Linear (Llama-style layers, pruned before quantizing), got "
                                f"{type(mod).__name__}")


def prune_structured(model: nn.Module, cfg: Structured, ids: torch.Tensor, batch_size: int,
                     progress: bool, log: UndoLog) -> None:
    """Shrinks every decoder layer of ``model`` and its config, through ``log``."""
    path, layers = cal.decoder_layers(model)
    config = model.config
    for i, layer in enumerate(layers):
        check_layer(layer, f"{path}.{i}")
    head_dim = getattr(config, "head_dim", None) or layers[0].self_attn.head_dim
    kv_heads, heads, inter = (config.num_key_value_heads, config.num_attention_heads,
                              config.intermediate_size)
    kv_keep, inter_keep = structured_sizes(config, cfg)
    rep = heads // kv_heads  # query heads per KV group

    inputs = cal.catch_first_layer_inputs(model, layers[0], ids, batch_size)
    it = enumerate(layers)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, total=len(layers), desc="Structured layers", unit="layer")
    for i, layer in it:
        attn, mlp = layer.self_attn, layer.mlp
        if kv_keep < kv_heads:
            energy = _channel_energy(layer, inputs, attn.o_proj)
            groups = _top(energy.view(kv_heads, rep * head_dim).sum(1), kv_keep)
            q_heads = (groups.unsqueeze(1) * rep + torch.arange(rep)).reshape(-1)
            q_rows, kv_rows = _head_rows(q_heads, head_dim), _head_rows(groups, head_dim)
            log.set(attn, "q_proj", _select(attn.q_proj, rows=q_rows))
            log.set(attn, "k_proj", _select(attn.k_proj, rows=kv_rows))
            log.set(attn, "v_proj", _select(attn.v_proj, rows=kv_rows))
            log.set(attn, "o_proj", _select(attn.o_proj, cols=q_rows))
            # transformers < 4.48 reshapes by these attributes instead of by -1.
            for attr, value in (("num_heads", kv_keep * rep), ("num_key_value_heads", kv_keep)):
                if hasattr(attn, attr):
                    log.set(attn, attr, value)
        if inter_keep < inter:
            channels = _top(_channel_energy(layer, inputs, mlp.down_proj), inter_keep)
            log.set(mlp, "gate_proj", _select(mlp.gate_proj, rows=channels))
            log.set(mlp, "up_proj", _select(mlp.up_proj, rows=channels))
            log.set(mlp, "down_proj", _select(mlp.down_proj, cols=channels))
            if hasattr(mlp, "intermediate_size"):
                log.set(mlp, "intermediate_size", inter_keep)
        cal.run_layer(layer, inputs, update=True)  # the next layer's inputs, through this one

    log.set(config, "head_dim", head_dim)  # explicit: no longer hidden_size // heads
    log.set(config, "num_attention_heads", kv_keep * rep)
    log.set(config, "num_key_value_heads", kv_keep)
    log.set(config, "intermediate_size", inter_keep)


def _channel_energy(layer: nn.Module, inputs: cal.LayerInputs, out_proj: nn.Linear) -> torch.Tensor:
    """Σ_tokens x_c² · ‖W[:, c]‖² (K,) for each input channel c of ``out_proj``."""
    st = cal.collect_input_stats(layer, inputs, {"out": out_proj}, hessian=False)["out"]
    return st.sqsum * out_proj.weight.detach().float().pow(2).sum(0).cpu()


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` highest scores, in increasing order (kept units keep their
    relative order, so the layer's layout stays the same apart from the gaps)."""
    return torch.sort(torch.topk(scores, count).indices).values


def _head_rows(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    return (heads.unsqueeze(1) * head_dim + torch.arange(head_dim)).reshape(-1)


def _select(lin: nn.Linear, rows: torch.Tensor | None = None,
            cols: torch.Tensor | None = None) -> nn.Linear:
    """A new nn.Linear with the given output rows / input columns of ``lin``."""
    w = lin.weight.detach()
    if rows is not None:
        w = w[rows.to(w.device)]
    if cols is not None:
        w = w[:, cols.to(w.device)]
    out = nn.utils.skip_init(nn.Linear, w.shape[1], w.shape[0], bias=lin.bias is not None,
                             device=w.device, dtype=w.dtype)
    with torch.no_grad():
        out.weight.copy_(w)
        if lin.bias is not None:
            out.bias.copy_(lin.bias if rows is None else lin.bias[rows.to(w.device)])
    out.weight.requires_grad_(lin.weight.requires_grad)
    return out
