"""Quality of a compressed model against its original, in one pass over the text: perplexity
(GPTQ convention, as perplexity.py) and the KL divergence of next-token distributions.

KL(P_original ‖ P_compressed), averaged over every predicted token, says how far the whole
distribution moved — perplexity only looks at the probability of the token that came next, and
can even improve by chance while the model's behaviour drifts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class QualityResult:
    ppl: float
    nll: float            # mean next-token negative log-likelihood, nats
    kl: float | None      # mean KL(reference ‖ model) per token, nats; None without a reference
    top1_agreement: float | None  # share of positions where both models' argmax agree
    tokens: int
    windows: int
    window: int

    def as_dict(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def evaluate_quality(model, input_ids: torch.Tensor, window: int = 512,
                     max_windows: int | None = None, reference=None,
                     progress: bool = True) -> QualityResult:
    """Perplexity of ``model`` on input_ids (n_tokens,) cut into non-overlapping windows, and, with
    a ``reference`` model, the KL divergence and top-1 agreement of their next-token
    distributions on the same positions."""
    ids = input_ids.reshape(-1)
    if window < 2:
        raise ValueError(f"window must be >= 2 tokens, got {window}")
    n = ids.numel() // window
    if max_windows is not None:
        n = min(n, max_windows)
    if n == 0:
        raise ValueError(f"text has {ids.numel()} tokens, fewer than one window of {window}")
    it = range(n)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc=f"quality ({window}-token windows)", leave=False)
    nll = kl = agree = 0.0
    for i in it:
        chunk = ids[i * window:(i + 1) * window].unsqueeze(0)
        logp = F.log_softmax(model(chunk).logits[0, :-1].float(), dim=-1)
        nll += F.nll_loss(logp, chunk[0, 1:], reduction="sum").item()
        if reference is not None:
            ref = F.log_softmax(reference(chunk).logits[0, :-1].float(), dim=-1)
            kl += F.kl_div(logp, ref, log_target=True, reduction="sum").item()
            agree += (logp.argmax(-1) == ref.argmax(-1)).sum().item()
    count = n * (window - 1)
    return QualityResult(math.exp(nll / count), nll / count,
                         None if reference is None else kl / count,
                         None if reference is None else agree / count, count, n, window)
