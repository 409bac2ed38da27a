"""The benchmark ceilings (ops.memory_read_bandwidth, ops.int8_peak_gmacs) on every CPU path:
each path's own loop runs and returns a plausible figure (no timing is asserted beyond being a
positive, finite number), and bad arguments raise clear errors."""

import math

import pytest

from llmaccel import ops

AVX2_KERNELS = True  # both probes have AVX2 loops: the isa fixture covers avx2 here


def test_memory_read_bandwidth(isa):
    gbs = ops.memory_read_bandwidth(1 << 24, 2)
    assert math.isfinite(gbs) and gbs > 0


def test_int8_peak_gmacs(isa):
    peak = ops.int8_peak_gmacs(1)
    if isa == "scalar":  # no int8 instruction to probe on the portable path
        assert peak == 0.0
    else:
        assert math.isfinite(peak) and peak > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="1 MiB"):
        ops.memory_read_bandwidth(1 << 10)
    with pytest.raises(ValueError, match="reps"):
        ops.memory_read_bandwidth(1 << 24, 0)
    with pytest.raises(ValueError):
        ops.int8_peak_gmacs(0)
