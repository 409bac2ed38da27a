"""GPTQ on one layer: lower output error than RTN on correlated inputs, codes in the RTN form."""

import pytest
import torch

from llmaccel import formats, ops, quantizers
from llmaccel.quantization.gptq import gptq_quantize_int4


def correlated(n_samples, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=g) / k**0.5
    scale = torch.exp(torch.randn(k, generator=g))  # a few loud input channels, as in LLMs
    return (torch.randn(n_samples, k, generator=g) @ mix) * scale


def layer_error(w, wq, x):
    return ((w - wq) @ x.t()).pow(2).sum().item()


def dequant(codes, scales, zeros, group, k):
    p = formats.pack_int4(codes, scales, zeros, group)
    return ops.dequant_w4(p.qweight, p.scales, p.zeros, codes.shape[0], k)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("act_order", [False, True], ids=["natural", "act_order"])
@pytest.mark.parametrize("group", [32, -1])
def test_gptq_beats_rtn_on_correlated_inputs(symmetric, act_order, group):
    n, k = 48, 96
    x = correlated(512, k)
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(1))
    rtn = dequant(*quantizers.quantize_int4(w, group, symmetric), group, k)
    codes, scales, zeros = gptq_quantize_int4(w, x.t() @ x, group, symmetric, act_order=act_order)
    assert codes.dtype == torch.uint8 and int(codes.max()) <= 15
    assert (zeros is None) == symmetric
    gq = dequant(codes, scales, zeros, group, k)
    e_rtn, e_gptq = layer_error(w, rtn, x), layer_error(w, gq, x)
    assert e_gptq < 0.8 * e_rtn, (e_gptq, e_rtn)


def test_dead_inputs_and_tail_group():
    n, k = 16, 70  # K not a multiple of the group: the last group is short
    x = correlated(256, k)
    x[:, 5] = 0  # an input that never fires
    w = torch.randn(n, k)
    codes, scales, zeros = gptq_quantize_int4(w, x.t() @ x, 32, True)
    assert codes.shape == (n, k) and scales.shape == (n, 3)
    wq = dequant(codes, scales, zeros, 32, k)
    assert torch.all(wq[:, 5] == 0)
    assert torch.isfinite(wq).all()


def rtn_at_bits(w, group, symmetric, bits):
    """Round-to-nearest codes of ``bits`` bits in the int4 container, dequantized (N, K)."""
    n, k = w.shape
    groups = w.view(n, k // group, group)
    s, z = quantizers.int4_group_params(groups, symmetric, bits)
    lo, hi = quantizers.int4_code_range(bits, symmetric)
    codes = quantizers.int4_encode(groups, s[..., None], z[..., None], lo, hi)
    return ((codes - z[..., None]) * s[..., None]).view(n, k)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("bits", [2, 3])
def test_gptq_low_bits_on_the_int4_grid(bits, symmetric):
    """3- and 2-bit GPTQ: codes stay on the narrower grid inside the int4 container (the int4
    kernels dequantize them exactly), and beat round-to-nearest at the same width."""
    n, k, group = 48, 96, 32
    x = correlated(512, k, seed=5)
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(6))
    codes, scales, zeros = gptq_quantize_int4(w, x.t() @ x, group, symmetric, act_order=True,
                                              bits=bits)
    lo, hi = quantizers.int4_code_range(bits, symmetric)
    assert lo <= int(codes.min()) and int(codes.max()) <= hi
    if zeros is not None:
        assert lo <= int(zeros.min()) and int(zeros.max()) <= hi
    gq = dequant(codes, scales, zeros, group, k)
    e_gptq, e_rtn = layer_error(w, gq, x), layer_error(w, rtn_at_bits(w, group, symmetric, bits), x)
    assert e_gptq < 0.8 * e_rtn, (e_gptq, e_rtn)


def test_int4_code_range():
    assert quantizers.int4_code_range(4, True) == (0, 15) == quantizers.int4_code_range(4, False)
    assert quantizers.int4_code_range(3, True) == (4, 11)
    assert quantizers.int4_code_range(3, False) == (0, 7)
    assert quantizers.int4_code_range(2, True) == (6, 9)
    for bad in (1, 5, 8, 3.0, True):
        with pytest.raises(ValueError, match="bits must be 2, 3 or 4"):
            quantizers.int4_code_range(bad, True)
    with pytest.raises(ValueError, match="bits must be 2, 3 or 4"):
        gptq_quantize_int4(torch.randn(4, 32), torch.eye(32), 32, bits=5)


def test_bad_shapes():
    with pytest.raises(ValueError, match="hessian"):
        gptq_quantize_int4(torch.randn(4, 8), torch.eye(9))


@pytest.mark.parametrize("act_order", [False, True], ids=["natural", "act_order"])
def test_gptq_int8_beats_rtn(act_order):
    from llmaccel.quantization.gptq import gptq_quantize_int8

    n, k = 40, 72
    x = correlated(512, k, seed=3)
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(4))
    codes, scales = gptq_quantize_int8(w, x.t() @ x, act_order=act_order)
    rc, rs = quantizers.quantize_int8(w)
    assert codes.dtype == torch.int8 and codes.abs().max() <= 127
    assert torch.equal(scales, rs)  # per-channel scales from the original rows, as RTN's
    err = layer_error(w, codes.float() * scales[:, None], x)
    assert err < 0.7 * layer_error(w, rc.float() * rs[:, None], x)
