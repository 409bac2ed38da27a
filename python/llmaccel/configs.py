"""Quantization configs: plain, frozen descriptions of a scheme (the public contract).

Layer schemes (Int4WeightOnly, Int8WeightOnly, Int8Dynamic) say what a QuantLinear stores; given
to ``llmaccel.quantize_(model, config)`` they mean round-to-nearest. Calibrated methods (GPTQ,
AWQ, SmoothQuant) say how to get there from calibration text, and produce one of those schemes.
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


LayerScheme = Int4WeightOnly | Int8WeightOnly | Int8Dynamic
"""What one QuantLinear stores and runs. Given to quantize_ directly it means round-to-nearest."""


@dataclass(frozen=True)
class Sparse24:
    """What one SparseLinear stores: a 2:4 sparse weight (2 of every 4 consecutive input
    features kept per output row), as symmetric int4 codes with group scales (bits=4, format
    int4_sp24_tile16x32, 3 bits per weight + scales) or as bfloat16 values (bits=16, format
    bf16_sp24_tile16x32, 9 bits per weight). Produced by pruning (llmaccel.sparsify_), not by
    quantize_.

    act_int8_min_m: bits=4 only, as Int4WeightOnly's: M from which activations are quantized to
        int8 per token and group (gemm_w4a8_sp24; None: never); the CPU path may raise it, or
        keep float activations where its int8 kernel is not the faster one
        (ops.w4a8_sp24_min_m). bits=16 has no int8-activation kernel, and stores None whatever
        is given.
    """

    bits: int = 4
    group_size: int = 128
    act_int8_min_m: int | None = DEFAULT_ACT_INT8_MIN_M

    def __post_init__(self):
        if self.bits not in (4, 16):
            raise ValueError(f"bits must be 4 (int4 values) or 16 (bfloat16 values), got {self.bits!r}")
        if self.group_size != -1 and (self.group_size < 32 or self.group_size % 32):
            raise ValueError(f"group_size must be -1 or a positive multiple of 32, got {self.group_size}")
        _check_min_m(self.act_int8_min_m)
        if self.bits == 16:
            object.__setattr__(self, "act_int8_min_m", None)


def _weight_scheme(bits: int, group_size: int, symmetric: bool,
                   act_int8_min_m: int | None) -> Int4WeightOnly | Int8WeightOnly:
    if bits == 4:
        return Int4WeightOnly(group_size, symmetric, act_int8_min_m)
    if bits == 8:
        if not symmetric:
            raise ValueError("8-bit weights are symmetric per output channel (int8_tile16x4)")
        return Int8WeightOnly(act_int8_min_m)
    raise ValueError(f"bits must be 4 or 8, got {bits!r}")


@dataclass(frozen=True)
class GPTQ:
    """GPTQ (Frantar et al., 2022): weights rounded column by column, each rounding error
    compensated on the columns not yet rounded through the inverse Hessian of the layer's
    calibration inputs. Needs ``calibration``; runs one decoder layer at a time.

    bits 4 (group_size as Int4WeightOnly) or 8 (per output channel); 3 or 2: codes on a 3- or
        2-bit grid stored in the int4 format (quantizers.int4_code_range), which the int4
        kernels run unchanged; no smaller on disk or faster than 4 bits, a quality point (and
        the starting grid for a low-bit distilled student).
    act_order: columns in decreasing Hessian-diagonal order, with static groups (group
        parameters from the original weight), so the packed layout and kernels are unchanged.
    damp: fraction of the mean Hessian diagonal added to it (rank-deficient inputs).
    mse: int4 group ranges chosen to minimise the group's weight error (clipping rare extreme
        weights) rather than spanning the full range, as GPTQ's reference quantizer can.
    true_sequential: within a decoder layer, each projection's Hessian is taken from inputs
        that already pass through the quantized projections before it (q/k/v → o → gate/up →
        down), at the cost of re-running the layer once per stage.
    """

    bits: int = 4
    group_size: int = 128
    symmetric: bool = True
    act_order: bool = True
    damp: float = 0.01
    block_size: int = 128
    mse: bool = True
    true_sequential: bool = True
    act_int8_min_m: int | None = DEFAULT_ACT_INT8_MIN_M

    def __post_init__(self):
        self.scheme()  # validates bits / group_size / symmetric / act_int8_min_m
        if not 0 <= self.damp < 1:
            raise ValueError(f"damp must be in [0, 1), got {self.damp}")
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")

    def scheme(self) -> Int4WeightOnly | Int8WeightOnly:
        """What the quantized layers store (2- and 3-bit codes: the int4 format)."""
        if type(self.bits) is not int or self.bits not in (2, 3, 4, 8):
            raise ValueError(f"GPTQ bits must be 2, 3, 4 or 8, got {self.bits!r}")
        if self.bits in (2, 3):
            return Int4WeightOnly(self.group_size, self.symmetric, self.act_int8_min_m)
        return _weight_scheme(self.bits, self.group_size, self.symmetric, self.act_int8_min_m)


@dataclass(frozen=True)
class AWQ:
    """AWQ (Lin et al., 2023): per-input-channel scales s = mean|x|^r, r searched on a grid to
    minimise the quantized layers' output error on calibration inputs, folded into the op before
    (RMSNorm weight, or the previous projection's rows), so inference pays nothing; then each
    weight group's clipping range is searched the same way. Needs ``calibration``.

    grid: ratios r tried in [0, 1). clip: search the clipping range (clip_grid shrink steps,
    down to 1 − clip_max_shrink of the full range).
    sample_rows / clip_rows: calibration input rows (tokens, drawn evenly from the whole set)
        the scale / clipping searches score candidates on.
    """

    bits: int = 4
    group_size: int = 128
    symmetric: bool = False
    grid: int = 20
    clip: bool = True
    clip_grid: int = 20
    clip_max_shrink: float = 0.5
    sample_rows: int = 1024
    clip_rows: int = 512
    act_int8_min_m: int | None = DEFAULT_ACT_INT8_MIN_M

    def __post_init__(self):
        self.scheme()
        if min(self.grid, self.clip_grid, self.sample_rows, self.clip_rows) < 1:
            raise ValueError("grid, clip_grid, sample_rows and clip_rows must be >= 1")
        if not 0 <= self.clip_max_shrink < 1:
            raise ValueError(f"clip_max_shrink must be in [0, 1), got {self.clip_max_shrink}")

    def scheme(self) -> Int4WeightOnly | Int8WeightOnly:
        return _weight_scheme(self.bits, self.group_size, self.symmetric, self.act_int8_min_m)


@dataclass(frozen=True)
class SmoothQuant:
    """SmoothQuant (Xiao et al., 2022) for W8A8 (Int8Dynamic): activation outliers migrated into
    the weights by s_j = max|x_j|^α / max|w_j|^(1−α) per input channel, folded into the op
    before; then weights int8 per channel and activations int8 per token. Needs ``calibration``.
    alpha: migration strength (0: none; 0.5 balances the two ranges).
    """

    alpha: float = 0.5

    def __post_init__(self):
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")

    def scheme(self) -> Int8Dynamic:
        return Int8Dynamic()


CalibratedConfig = GPTQ | AWQ | SmoothQuant
QuantConfig = LayerScheme | CalibratedConfig


def _check_min_m(v: int | None) -> None:
    if v is not None and (not isinstance(v, int) or v < 1):
        raise ValueError(f"act_int8_min_m must be None or an int >= 1, got {v!r}")
