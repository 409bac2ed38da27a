"""Modules that hold packed weights and call llmaccel ops."""

from .act_threshold import set_act_int8_min_m
from .quant_linear import QuantLinear
from .sparse_linear import SparseLinear

__all__ = ["QuantLinear", "SparseLinear", "set_act_int8_min_m"]
