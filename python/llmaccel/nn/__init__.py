"""Modules that hold packed weights and call llmaccel ops."""

from .quant_linear import QuantLinear
from .sparse_linear import SparseLinear

__all__ = ["QuantLinear", "SparseLinear"]
