"""Perplexity under the GPTQ convention: the text is tokenized as one sequence, cut into
non-overlapping windows of a fixed length (the tail shorter than a window is dropped), and
perplexity = exp(mean next-token NLL over every predicted token of every window)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PerplexityResult:
    ppl: float
    nll: float           # mean negative log-likelihood per predicted token, nats
    tokens: int          # predicted tokens (windows × (window − 1))
    windows: int
    window: int

    def __str__(self) -> str:
        return (f"perplexity {self.ppl:.3f} ({self.windows} windows of {self.window} tokens, "
                f"{self.tokens} predicted)")


def perplexity(model, input_ids: torch.Tensor, window: int = 512, max_windows: int | None = None,
               progress: bool = True) -> PerplexityResult:
    """model: a causal LM returning .logits (batch, seq, vocab); input_ids: (n_tokens,) long.

    Each window is scored on its own (no context carried over): the GPTQ papers' protocol, so
    figures compare with theirs when window and text match. (eval.quality does the same pass
    and adds KL divergence against a reference model.)
    """
    from .quality import evaluate_quality

    r = evaluate_quality(model, input_ids, window, max_windows, progress=progress)
    return PerplexityResult(r.ppl, r.nll, r.tokens, r.windows, r.window)
