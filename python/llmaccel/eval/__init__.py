"""Evaluation of compressed models: quality (perplexity, KL against the original), speed and
memory (prefill / decode tokens/s, weight bytes, peak RSS), the comparison report, and peers
(llama.cpp) measured the same way."""

from .perplexity import PerplexityResult, perplexity
from .quality import QualityResult, evaluate_quality
from .speed import SpeedResult, decode_speed, weight_bytes

__all__ = ["PerplexityResult", "QualityResult", "SpeedResult", "decode_speed", "evaluate_quality",
           "perplexity", "weight_bytes"]
