"""Perplexity under the GPTQ convention: the text is tokenized as one sequence, cut into
non-overlapping windows of a fixed length (the tail shorter than a window is dropped), and
perplexity = exp(mean next-token NLL over every predicted token of every window)."""

from __future__ import annotations

import math
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


@torch.inference_mode()
def perplexity(model, input_ids: torch.Tensor, window: int = 512, max_windows: int | None = None,
               progress: bool = True) -> PerplexityResult:
    """model: a causal LM returning .logits (batch, seq, vocab); input_ids: (n_tokens,) long.

    Each window is scored on its own (no context carried over): the GPTQ papers' protocol, so
    figures compare with theirs when window and text match.
    """
    ids = input_ids.reshape(-1)
    if window < 2:
        raise ValueError(f"window must be >= 2 tokens, got {window}")
    n = ids.numel() // window
    if max_windows is not None:
        n = min(n, max_windows)
    if n == 0:
        raise ValueError(f"text has {ids.numel()} tokens, fewer than one window of {window}")
    windows = range(n)
    if progress:
        try:
            from tqdm.auto import tqdm
            windows = tqdm(windows, desc=f"perplexity ({window}-token windows)", leave=False)
        except ImportError:
            pass
    total, count = 0.0, 0
    for i in windows:
        chunk = ids[i * window:(i + 1) * window].unsqueeze(0)
        logits = model(chunk).logits[0, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum")
        total += nll.item()
        count += window - 1
    mean = total / count
    return PerplexityResult(math.exp(mean), mean, count, n, window)
