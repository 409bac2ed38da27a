"""Quantization configs: plain, frozen descriptions of a scheme (the public contract).

Pass one to ``llmaccel.quantize_(model, config)`` or ``QuantLinear.from_linear(linear, config)``.
"""

from __future__ import annotations

from dataclasses import dataclass

# The batch size (rows of x) from which weight-only layers quantize activations to int8 on the
# fly and use VNNI dot products. At M = 1 and 2 the float kernels keep up with DRAM (measured:
# within 10 % of the int8 path on Llama and SmolLM2 shapes, 2 threads); from M = 3 they become
# compute-bound and the int8 path is 1.4-1.7x faster (bench/bench_gemm.py, see README).
DEFAULT_ACT_INT8_MIN_M = 3


@dataclass(frozen=True)
class Int4WeightOnly:
    """int4 group-wise weights (format int4_tile16x8), round-to-nearest.

    group_size: 32, 64, 128, or -1 for one scale per output channel.
    symmetric: zero point fixed at 8 (scale chosen so the largest-magnitude weight maps to -8,
        as llama.cpp's Q4_0); False stores a uint8 zero point per group.
    act_int8_min_m: M from which activations are quantized to int8 per token and group
        (None: never, always exact float activations).
    """

    group_size: int = 128
    symmetric: bool = True
    act_int8_min_m: int | None = DEFAULT_ACT_INT8_MIN_M

    def __post_init__(self):
        if self.group_size != -1 and (self.group_size < 32 or self.group_size % 32):
            raise ValueError(f"group_size must be -1 or a positive multiple of 32, got {self.group_size}")
        _check_min_m(self.act_int8_min_m)


@dataclass(frozen=True)
class Int8WeightOnly:
    """int8 per-output-channel weights (format int8_tile16x4), symmetric round-to-nearest.

    act_int8_min_m: M from which activations are quantized to int8 per token and 128-column
        block (None: never).
    """

    act_int8_min_m: int | None = DEFAULT_ACT_INT8_MIN_M

    def __post_init__(self):
        _check_min_m(self.act_int8_min_m)


@dataclass(frozen=True)
class Int8Dynamic:
    """W8A8: int8 per-channel weights and dynamic per-token int8 activations at every M."""


QuantConfig = Int4WeightOnly | Int8WeightOnly | Int8Dynamic


def _check_min_m(v: int | None) -> None:
    if v is not None and (not isinstance(v, int) or v < 1):
        raise ValueError(f"act_int8_min_m must be None or an int >= 1, got {v!r}")
