"""Layer-by-layer calibration: run calibration text through a decoder one layer at a time.

The inputs of the first decoder layer are caught once (the embedding runs, then a pre-hook
stops the model); then each layer in turn is run over every calibration sample with hooks that
gather what the method needs about each linear's input (its Hessian XᵀX, per-channel maxima and
means, a sample of rows), the method rewrites the layer, and the *rewritten* layer is run again
to produce the next layer's inputs — so each layer is calibrated on the inputs it will see once
everything before it is quantized. Memory stays at one layer's activations for the calibration
set, whatever the model's depth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

# Where Hugging Face causal LMs keep their decoder layers (Llama, Mistral, Qwen2, Gemma, Phi-3:
# model.layers; GPT-2 / GPT-J: transformer.h; OPT: model.decoder.layers).
_LAYER_PATHS = ("model.layers", "transformer.h", "model.decoder.layers", "gpt_neox.layers")


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(qualified name, the ModuleList of decoder layers) of a causal LM."""
    for path in _LAYER_PATHS:
        try:
            mod = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            return path, mod
    raise TypeError(f"cannot find the decoder layers of {type(model).__name__} (looked for "
                    f"{', '.join(_LAYER_PATHS)}); calibrated methods need a decoder-only LM")


class _Caught(Exception):
    """Raised by the first layer's pre-hook: the model has given us the layer's inputs."""


@dataclass
class LayerInputs:
    """The calibration set as the current layer receives it: hidden states (n, seq, hidden)
    and, per batch of samples, the other arguments the model passed (masks, rotary tables)."""

    hidden: torch.Tensor
    batch_size: int
    kwargs: list[dict] = field(default_factory=list)

    def batches(self) -> Iterator[tuple[torch.Tensor, dict]]:
        for b, kw in enumerate(self.kwargs):
            yield self.hidden[b * self.batch_size:(b + 1) * self.batch_size], kw


def check_calibration_ids(ids: torch.Tensor | None, method: str) -> None:
    """Raises a ValueError a user can act on unless ``ids`` is (n_samples, seq_len) token ids."""
    if ids is None:
        raise ValueError(f"{method} needs calibration token ids "
                         "(calibration=llmaccel.data.calibration_ids(tokenizer))")
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
        got = (f"{tuple(ids.shape)} {ids.dtype}" if isinstance(ids, torch.Tensor)
               else type(ids).__name__)
        raise ValueError(f"calibration must be a (n_samples, seq_len) LongTensor of token ids, "
                         f"got {got}")


@torch.inference_mode()
def catch_first_layer_inputs(model: nn.Module, layer: nn.Module, input_ids: torch.Tensor,
                             batch_size: int) -> LayerInputs:
    """Runs the model on input_ids (n, seq) until ``layer`` (the first decoder layer) is called."""
    hidden, kwargs = [], []

    def pre_hook(_mod, args, kw):
        h = args[0] if args else kw.pop("hidden_states")
        hidden.append(h.detach().float())
        kw = dict(kw)
        # No cache while calibrating: each batch is scored on its own, like perplexity.
        kw.pop("past_key_values", None), kw.pop("past_key_value", None)
        kw["use_cache"] = False
        kwargs.append(kw)
        raise _Caught

    handle = layer.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        for b in range(0, input_ids.shape[0], batch_size):
            try:
                model(input_ids[b:b + batch_size], use_cache=False)
            except _Caught:
                pass
    finally:
        handle.remove()
    return LayerInputs(torch.cat(hidden), batch_size, kwargs)


def run_layer(layer: nn.Module, inputs: LayerInputs, update: bool) -> None:
    """Runs ``layer`` over the calibration set; with ``update``, its outputs replace the inputs
    (becoming the next layer's), in place."""
    with torch.inference_mode():
        for h, kw in inputs.batches():
            out = layer(h, **kw)
            out = out[0] if isinstance(out, tuple) else out
            if update:
                h.copy_(out.float())


@dataclass
class InputStats:
    """What was seen at one linear's input over the calibration set (float32, on CPU)."""

    tokens: int = 0
    hessian: torch.Tensor | None = None   # Σ xᵀx (K, K), when asked for
    absmax: torch.Tensor | None = None    # max |x_j| (K,)
    abssum: torch.Tensor | None = None    # Σ |x_j| (K,); mean = abssum / tokens
    sqsum: torch.Tensor | None = None     # Σ x_j² (K,); ‖X_j‖₂ = sqrt(sqsum) (Wanda's norm)
    sample: torch.Tensor | None = None    # random input rows (R, K), for searches

    @property
    def absmean(self) -> torch.Tensor:
        return self.abssum / max(self.tokens, 1)


class InputRecorder:
    """Forward hooks on a layer's nn.Linear modules that accumulate InputStats per linear.

    Linears fed the very same tensor (q/k/v, gate/up) share one InputStats object, so the
    K×K Hessian of a shared input is accumulated once, not once per consumer.
    """

    def __init__(self, linears: dict[str, nn.Linear], hessian: bool, sample_rows: int = 0,
                 seed: int = 0):
        """sample_rows: input rows kept per batch (InputStats.sample), 0 for none."""
        self.stats: dict[str, InputStats] = {}
        self._hessian, self._sample_rows = hessian, sample_rows
        self._gen = torch.Generator().manual_seed(seed)
        self._last: tuple[torch.Tensor, InputStats] | None = None
        self._handles = [mod.register_forward_hook(self._hook(name))
                         for name, mod in linears.items()]

    def _hook(self, name: str) -> Callable:
        def hook(_mod, args, _out):
            x = args[0]
            if self._last is not None and self._last[0] is x:
                self.stats.setdefault(name, self._last[1])  # same tensor: same statistics
                return
            st = self.stats.setdefault(name, InputStats())
            self._last = (x, st)
            self._accumulate(st, x.detach().reshape(-1, x.shape[-1]).float())
        return hook

    def _accumulate(self, st: InputStats, x: torch.Tensor) -> None:
        a = x.abs()
        amax, asum, sq = a.amax(dim=0), a.sum(dim=0), (x * x).sum(dim=0)
        if st.tokens == 0:
            st.absmax, st.abssum, st.sqsum = amax, asum, sq
            if self._hessian:
                st.hessian = torch.zeros(x.shape[1], x.shape[1])
        else:
            torch.maximum(st.absmax, amax, out=st.absmax)
            st.abssum += asum
            st.sqsum += sq
        if self._hessian:
            st.hessian.addmm_(x.t(), x)
        if self._sample_rows:
            # The same number of random rows from every batch: searches see tokens from the
            # whole calibration set, not just its start.
            idx = torch.randperm(x.shape[0], generator=self._gen)[:self._sample_rows]
            st.sample = x[idx] if st.sample is None else torch.cat([st.sample, x[idx]])
        st.tokens += x.shape[0]

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._last = None


def collect_input_stats(layer: nn.Module, inputs: LayerInputs, linears: dict[str, nn.Linear],
                        hessian: bool, sample_rows: int = 0) -> dict[str, InputStats]:
    """Runs ``layer`` over the calibration set and returns each linear's InputStats, with about
    ``sample_rows`` input rows sampled evenly across the set."""
    per_batch = -(-sample_rows // max(len(inputs.kwargs), 1)) if sample_rows else 0
    rec = InputRecorder(linears, hessian, per_batch)
    try:
        run_layer(layer, inputs, update=False)
    finally:
        rec.close()
    missing = set(linears) - set(rec.stats)
    if missing:
        raise RuntimeError(f"linears never called during calibration: {sorted(missing)}")
    return rec.stats


def stages(stats: dict[str, InputStats]) -> list[list[str]]:
    """Linears in the order the layer first called them, those reading one input grouped
    (q/k/v, then o, then gate/up, then down in a Llama layer): the order in which calibrated
    methods rewrite them when each stage is to see the rewritten stages before it."""
    out: list[list[str]] = []
    for name, st in stats.items():
        if out and stats[out[-1][0]] is st:
            out[-1].append(name)
        else:
            out.append([name])
    return out
