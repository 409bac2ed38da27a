"""Pruning pipelines over whole models: Magnitude, Wanda and SparseGPT weight sparsity
(unstructured or N:M, optionally followed by GPTQ on the survivors) and Structured channel and
head removal — all through ``prune_(model, config)``."""

from .configs import Magnitude, SparseGPT, Structured, Wanda, parse_pattern
from .magnitude import magnitude_mask
from .masks import nm_mask, unstructured_mask
from .pack import sparsify_
from .prune import plan, prune_
from .sparsegpt import sparsegpt_prune
from .wanda import wanda_mask, wanda_scores

__all__ = ["Magnitude", "SparseGPT", "Structured", "Wanda", "magnitude_mask", "nm_mask",
           "parse_pattern", "plan", "prune_", "sparsegpt_prune", "sparsify_", "unstructured_mask",
           "wanda_mask", "wanda_scores"]
