"""Quantization pipelines over whole models: round-to-nearest, and the calibrated methods
(GPTQ, AWQ, SmoothQuant) run one decoder layer at a time."""

from .layer_plan import DEFAULT_KEEP
from .quantize import plan, quantize_

__all__ = ["DEFAULT_KEEP", "plan", "quantize_"]
