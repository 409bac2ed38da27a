"""Quantization pipelines over whole models: round-to-nearest, and the calibrated methods
(GPTQ, AWQ, SmoothQuant) run one decoder layer at a time."""

from .quantize import DEFAULT_KEEP, plan, quantize_

__all__ = ["DEFAULT_KEEP", "plan", "quantize_"]
