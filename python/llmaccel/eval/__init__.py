"""Evaluation of compressed models: quality (perplexity) now; KL and speed with the model issue."""

from .perplexity import PerplexityResult, perplexity

__all__ = ["PerplexityResult", "perplexity"]
