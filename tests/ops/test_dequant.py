"""dequant_w4, dequant_w8, dequant_w4_sp24 and dequant_sp24 against their reference twins:
bit-exact (one float32 product per element, (q - zero) * scale, q * scale or (q - 8) * scale, the
same operation on both sides; the bf16 values of dequant_sp24 widen exactly)."""

import pytest
import torch

from llmaccel import ops, reference

from ..helpers import make_w4, make_w8, w4_exact, w8_exact
from .test_gemm_sp24 import weight_args


@pytest.mark.parametrize("source", ["rtn", "codes"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("group_size", [32, 64, 128, -1])
@pytest.mark.parametrize("n,k", [(1, 33), (17, 100), (37, 200), (300, 128), (5, 4096)])
def test_dequant_w4(isa, n, k, group_size, symmetric, source):
    p = make_w4(n, k, group_size, symmetric, seed=n, source=source)
    w = ops.dequant_w4(p.qweight, p.scales, p.zeros, n, k)
    w_ref = reference.dequant_w4(p.qweight, p.scales, p.zeros, n, k)
    assert w.dtype == torch.float32 and w.shape == (n, k)
    assert torch.equal(w, w_ref)
    assert torch.equal(w.double(), w4_exact(p).float().double())


@pytest.mark.parametrize("source", ["rtn", "codes"])
@pytest.mark.parametrize("n,k", [(1, 33), (17, 101), (37, 199), (300, 128), (5, 4096)])
def test_dequant_w8(isa, n, k, source):
    p = make_w8(n, k, seed=n, source=source)
    w = ops.dequant_w8(p.qweight, p.scales, n, k)
    w_ref = reference.dequant_w8(p.qweight, p.scales, n, k)
    assert w.dtype == torch.float32 and w.shape == (n, k)
    assert torch.equal(w, w_ref)
    assert torch.equal(w.double(), w8_exact(p).float().double())


def test_dequant_w4_any_k_within_padding():
    """k may be any value in (k_pad - group, k_pad]: a prefix of the same columns."""
    p = make_w4(17, 100, 64, symmetric=False, source="codes")
    full = ops.dequant_w4(p.qweight, p.scales, p.zeros, 17, 128)
    for k in (65, 100, 128):
        assert torch.equal(ops.dequant_w4(p.qweight, p.scales, p.zeros, 17, k), full[:, :k])
    for k in (64, 129):
        with pytest.raises(ValueError, match="does not match the packed k_pad"):
            ops.dequant_w4(p.qweight, p.scales, p.zeros, 17, k)


def test_dequant_w8_bad_k_and_n():
    p = make_w8(17, 101)
    for k in (100, 105):
        with pytest.raises(ValueError, match="does not match the packed k_pad"):
            ops.dequant_w8(p.qweight, p.scales, 17, k)
    for n in (16, 33):
        with pytest.raises(ValueError, match="does not match"):
            ops.dequant_w8(p.qweight, p.scales, n, 101)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_opcheck_dequant_w4(symmetric):
    """All of opcheck's default utils; the op has no tensor input that could require grad in a
    meaningful way (integer codes), so test_autograd_registration is checked without grad."""
    p = make_w4(17, 100, 64, symmetric, source="codes")
    result = torch.library.opcheck(ops.dequant_w4, (p.qweight, p.scales, p.zeros, 17, 100))
    assert set(result.values()) == {"SUCCESS"}, result


def test_opcheck_dequant_w8():
    """As for dequant_w4: all default utils, without grad."""
    p = make_w8(17, 101, source="codes")
    result = torch.library.opcheck(ops.dequant_w8, (p.qweight, p.scales, 17, 101))
    assert set(result.values()) == {"SUCCESS"}, result


# (n, k, group size): one row; N and K not multiples of 16 or 32; per-channel groups; groups of 96;
# several row blocks and chunks.
SP24_CASES = [(1, 33, -1), (17, 100, 64), (37, 200, 32), (300, 128, 128), (5, 4096, 128),
              (13, 300, 96)]


@pytest.mark.parametrize("n,k,group_size", SP24_CASES)
def test_dequant_w4_sp24(n, k, group_size):
    """Every kind of 2:4 group (two, one or no weights kept; see make_w4_sp24)."""
    (qweight, scales), w_exact = weight_args("gemm_w4a16_sp24", n, k, group_size, seed=n)
    w = ops.dequant_w4_sp24(qweight, scales, n, k)
    assert w.dtype == torch.float32 and w.shape == (n, k)
    assert torch.equal(w, reference.dequant_w4_sp24(qweight, scales, n, k))
    assert torch.equal(w.double(), w_exact.float().double())


@pytest.mark.parametrize("n,k", [(n, k) for n, k, _ in SP24_CASES])
def test_dequant_sp24(n, k):
    (packed,), w_exact = weight_args("gemm_sp24", n, k, 32, seed=n)
    w = ops.dequant_sp24(packed, n, k)
    assert w.dtype == torch.float32 and w.shape == (n, k)
    assert torch.equal(w, reference.dequant_sp24(packed, n, k))
    assert torch.equal(w.double(), w_exact)


def test_dequant_sp24_ops_bad_inputs():
    (qweight, scales), _ = weight_args("gemm_w4a16_sp24", 17, 100, 64)
    (packed,), _ = weight_args("gemm_sp24", 17, 100, 64)
    for k in (64, 129):  # k_pad 128, groups of 64
        with pytest.raises(ValueError, match="does not match the packed k_pad"):
            ops.dequant_w4_sp24(qweight, scales, 17, k)
    for k in (96, 129):  # k_pad 128, chunks of 32
        with pytest.raises(ValueError, match="does not match the packed k_pad"):
            ops.dequant_sp24(packed, 17, k)
    for n in (16, 33):
        with pytest.raises(ValueError, match="does not match the weight's 2 blocks"):
            ops.dequant_w4_sp24(qweight, scales, n, 100)
        with pytest.raises(ValueError, match="does not match the weight's 2 blocks"):
            ops.dequant_sp24(packed, n, 100)
    with pytest.raises(TypeError, match="qweight must be uint8"):
        ops.dequant_w4_sp24(qweight.view(torch.int8), scales, 17, 100)
    with pytest.raises(ValueError, match="scales must be"):
        ops.dequant_w4_sp24(qweight, scales[:, :1], 17, 100)
    with pytest.raises(ValueError, match="packed must be"):
        ops.dequant_sp24(packed[:, :100], 17, 100)


def test_opcheck_dequant_sp24_ops():
    """All default utils, without grad (integer codes; float scales are frozen)."""
    (qweight, scales), _ = weight_args("gemm_w4a16_sp24", 17, 100, 64)
    (packed,), _ = weight_args("gemm_sp24", 17, 100, 64)
    for op, args in ((ops.dequant_w4_sp24, (qweight, scales, 17, 100)),
                     (ops.dequant_sp24, (packed, 17, 100))):
        result = torch.library.opcheck(op, args)
        assert set(result.values()) == {"SUCCESS"}, result
