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
