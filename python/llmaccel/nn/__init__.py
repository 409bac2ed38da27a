"""Modules that hold packed weights and call llmaccel ops."""

from .quant_linear import QuantLinear

__all__ = ["QuantLinear"]
