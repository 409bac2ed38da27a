"""Token data for distillation: a training stream cut into random windows, a held-out stream for
evaluation, and the per-step seed that makes every step's randomness reproducible.

Every random choice of step s (which windows, and dropout inside the models) comes from a
generator seeded with ``step_seed(seed, s)``, not from a stream advanced by the steps before it:
a run resumed at step s therefore draws exactly what an uninterrupted run draws there, and the
checkpoint needs no RNG state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

SEED_LIMIT = 2 ** 31


def _check_ids(name: str, ids) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex() \
            or ids.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of token ids (n_tokens,)")
    if ids.dim() != 1:
        raise ValueError(f"{name} must be 1-D (n_tokens,), got shape {tuple(ids.shape)}: "
                         f"concatenate documents into one stream first")
    if ids.numel() and int(ids.min()) < 0:
        raise ValueError(f"{name} holds negative token ids (min {int(ids.min())})")
    return ids.to(device="cpu", dtype=torch.long).contiguous()


@dataclass(frozen=True)
class DistillData:
    """train_ids (n_train,) and eval_ids (n_eval,): integer token ids, each one concatenated
    stream (documents joined by the tokenizer's separator). Stored on the CPU as int64; keep the
    two disjoint (different texts) so that held-out perplexity means something."""

    train_ids: torch.Tensor
    eval_ids: torch.Tensor

    def __post_init__(self):
        object.__setattr__(self, "train_ids", _check_ids("train_ids", self.train_ids))
        object.__setattr__(self, "eval_ids", _check_ids("eval_ids", self.eval_ids))

    def fingerprint(self) -> dict:
        """Sizes and SHA-256 of both streams: a checkpoint records them so that a resume on
        different data fails loudly instead of silently training on something else."""
        return {name: {"tokens": ids.numel(),
                       "sha256": hashlib.sha256(ids.numpy().tobytes()).hexdigest()}
                for name, ids in (("train", self.train_ids), ("eval", self.eval_ids))}


def step_seed(seed: int, step: int) -> int:
    """The seed of optimizer step ``step`` (0-based): distinct for every (seed, step) pair with
    0 <= seed < 2**31 and 0 <= step < 2**32."""
    return seed * 2 ** 32 + step


def sample_starts(n_tokens: int, count: int, seq_len: int, generator: torch.Generator,
                  aligned: bool) -> torch.Tensor:
    """``count`` window start offsets (count,) int64 into a stream of n_tokens.

    aligned=False: any offset in [0, n_tokens − seq_len], so the model sees every token at every
    position over time. aligned=True: offsets on the grid of non-overlapping windows
    (multiples of seq_len), so a window recurs and per-window results can be cached.
    """
    if aligned:
        n_windows = n_tokens // seq_len
        return torch.randint(0, n_windows, (count,), generator=generator) * seq_len
    return torch.randint(0, n_tokens - seq_len + 1, (count,), generator=generator)


def gather_windows(ids: torch.Tensor, starts: torch.Tensor, seq_len: int) -> torch.Tensor:
    """ids (n_tokens,), starts (count,) → windows (count, seq_len) int64."""
    return ids[starts.unsqueeze(1) + torch.arange(seq_len)]
