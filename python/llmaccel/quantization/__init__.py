"""Quantization pipelines over whole models (round-to-nearest now; calibrated methods later)."""

from .quantize import quantize_

__all__ = ["quantize_"]
