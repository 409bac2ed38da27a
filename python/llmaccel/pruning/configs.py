"""Pruning configs: plain, frozen descriptions of what to remove and how to choose it.

Weight pruning (Magnitude, Wanda, SparseGPT) zeroes weights inside each nn.Linear, with a
pattern: ``"unstructured"`` (any ``sparsity``: the share of weights set to zero) or ``"N:M"``
(N weights kept in every M consecutive inputs of a row, "2:4" or "4:8": the layouts sparse
kernels read). Structured pruning removes whole MLP channels and attention heads, so the model
becomes a smaller dense one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..configs import GPTQ

_NM = re.compile(r"^(\d+):(\d+)$")


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """"unstructured" → None; "N:M" → (N, M), the weights kept per group of M."""
    if pattern == "unstructured":
        return None
    match = _NM.match(pattern) if isinstance(pattern, str) else None
    if match is None or not 0 < int(match[1]) < int(match[2]):
        raise ValueError(f"pattern must be 'unstructured' or 'N:M' with 0 < N < M (e.g. '2:4', "
                         f"'4:8'), got {pattern!r}")
    return int(match[1]), int(match[2])


def _check_share(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


@dataclass(frozen=True)
class _WeightPruning:
    """sparsity: share of the weights set to zero (default 0.5). An N:M pattern fixes it at
    (M − N) / M: leave it out, or give that value."""

    sparsity: float | None = None
    pattern: str = "unstructured"

    def __post_init__(self):
        nm = parse_pattern(self.pattern)
        if nm is None:
            sparsity = 0.5 if self.sparsity is None else self.sparsity
            _check_share("sparsity", sparsity)
        else:
            n, m = nm
            sparsity = (m - n) / m
            if self.sparsity is not None and self.sparsity != sparsity:
                raise ValueError(f"pattern {self.pattern!r} prunes {m - n} of every {m} weights "
                                 f"(sparsity {sparsity}); sparsity={self.sparsity!r} contradicts "
                                 "it — leave sparsity out")
        object.__setattr__(self, "sparsity", float(sparsity))

    @property
    def nm(self) -> tuple[int, int] | None:
        """(N, M) for an N:M pattern, None for unstructured."""
        return parse_pattern(self.pattern)


@dataclass(frozen=True)
class Magnitude(_WeightPruning):
    """Zeroes the weights of smallest |W| — the data-free baseline. Unstructured: the smallest
    ``sparsity`` share of the whole layer (its weights compete across rows); N:M: per group."""


@dataclass(frozen=True)
class Wanda(_WeightPruning):
    """Wanda (Sun et al., 2023): scores |W_ij| · ‖X_j‖₂, with ‖X_j‖₂ the norm of input channel j
    over the calibration tokens, so a small weight on a loud channel survives. Unstructured:
    the ``sparsity`` share of each output row (rows compete only with themselves, as the paper
    found best for LLMs); N:M: per group. No weight update. Needs ``calibration``.

    true_sequential: within a decoder layer, each projection's input norms are taken through
        the already pruned projections before it (q/k/v → o → gate/up → down).
    """

    true_sequential: bool = True


@dataclass(frozen=True)
class SparseGPT(_WeightPruning):
    """SparseGPT (Frantar & Alistarh, 2023): the GPTQ sweep (quantization.obs) with pruning in
    place of rounding: column by column, weights are zeroed where w² / [H⁻¹]_jj is smallest, and
    each column's change is compensated on the columns not yet visited through the inverse
    Hessian of the calibration inputs. Unstructured masks are chosen per block of
    ``block_size`` columns over all rows; N:M masks per group. Needs ``calibration``.

    damp: fraction of the mean Hessian diagonal added to it (rank-deficient inputs).
    true_sequential: as Wanda's.
    quantize: a GPTQ config to quantize the surviving weights after pruning, in the same
        layer-by-layer pass and with the same Hessian (2:4 + GPTQ w4): the layer becomes a
        QuantLinear whose pruned weights are exactly zero. (Its true_sequential is not used:
        SparseGPT's governs the pass.)
    """

    damp: float = 0.01
    block_size: int = 128
    true_sequential: bool = True
    quantize: GPTQ | None = None

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.damp < 1:
            raise ValueError(f"damp must be in [0, 1), got {self.damp}")
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if self.quantize is not None and not isinstance(self.quantize, GPTQ):
            raise TypeError(f"quantize must be a GPTQ config or None, got {self.quantize!r}")


@dataclass(frozen=True)
class Structured:
    """Removes whole MLP intermediate channels and whole attention KV groups (a key/value head
    with the query heads that read it), the same number in every decoder layer, and shrinks the
    nn.Linear modules and the model config to match: the result is a smaller dense model that
    any runtime loads. Channels and groups are ranked by the output energy they carry on the
    calibration inputs, Σ_tokens x_c² · ‖W_out[:, c]‖² (the next projection's column c), one
    decoder layer at a time. Needs ``calibration``; Llama-style layers (self_attn.q/k/v/o_proj,
    mlp.gate/up/down_proj).

    sparsity: share of the MLP intermediate channels removed.
    attention_sparsity: share of the KV groups removed (rounded to whole groups, at least one
        kept); None means ``sparsity``.
    multiple_of: the kept intermediate size is rounded to a multiple of this (int4 kernels
        pack input features in groups of 32; a ragged size would be padded at every call).
    """

    sparsity: float = 0.3
    attention_sparsity: float | None = None
    multiple_of: int = 32

    def __post_init__(self):
        _check_share("sparsity", self.sparsity)
        if self.attention_sparsity is None:
            object.__setattr__(self, "attention_sparsity", self.sparsity)
        _check_share("attention_sparsity", self.attention_sparsity)
        if isinstance(self.multiple_of, bool) or not isinstance(self.multiple_of, int) \
                or self.multiple_of < 1:
            raise ValueError(f"multiple_of must be an int >= 1, got {self.multiple_of!r}")


WeightPruningConfig = Magnitude | Wanda | SparseGPT
PruneConfig = WeightPruningConfig | Structured
