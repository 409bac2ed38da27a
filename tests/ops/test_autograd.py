"""Backward through the GEMM ops (python/llmaccel/ops/autograd.py): dx = dy·W with W the float
weight the packed tensors represent, db = Σ dy, straight through the activation rounding; packed
weights are frozen.

Tolerance: the backward computes dy (float32) @ W (float32) with torch's matmul, and the
expected value is the same product with W from the pure-PyTorch unpackers (reference.dequant_w4
and dequant_w8 round (q − zero)·scale once, as the native dequant does; the 2:4 unpackers are
the formats' own). So the two agree to float32 matmul rounding: rtol 1e-6 on a float32 dx; a
bfloat16 dx is that value rounded once to bfloat16 (one bf16 ulp). The bias gradient is a sum
of the same float32 terms.
"""

import pytest
import torch
import torch.nn.functional as F

from llmaccel import ops, reference

from ..helpers import make_bias, make_w4, make_w8, make_x
from .test_gemm_sp24 import weight_args

DTYPES = [torch.float32, torch.bfloat16]
DTYPE_IDS = ["f32", "bf16"]
N, K = 17, 100  # N not a multiple of 16, K not a multiple of 4 or 32
OPS = ["gemm_w4a16", "gemm_w4a8", "gemm_w8a16", "gemm_w8a8", "gemm_w4a16_sp24",
       "gemm_w4a8_sp24", "gemm_sp24", "gemm_f32"]


def packed_args(op_name: str, n: int = N, k: int = K):
    """(the op's weight arguments between x and bias, their float32 weight (n, k), trailing
    arguments after bias)."""
    if op_name in ("gemm_w4a16", "gemm_w4a8"):
        p = make_w4(n, k, 32, symmetric=False, source="codes")
        return (p.qweight, p.scales, p.zeros), reference.dequant_w4(
            p.qweight, p.scales, p.zeros, n, k), (n,)
    if op_name in ("gemm_w8a16", "gemm_w8a8"):
        p = make_w8(n, k, source="codes")
        extra = (n, 32) if op_name == "gemm_w8a8" else (n,)
        return (p.qweight, p.scales), reference.dequant_w8(p.qweight, p.scales, n, k), extra
    if op_name == "gemm_f32":
        w = torch.randn(n, k)
        return (w,), w, ()
    wargs, w = weight_args(op_name, n, k, 64)
    return wargs, w.float(), (n,)


def check_grad(got: torch.Tensor, want: torch.Tensor) -> None:
    """want: float32; got in its own dtype (float32, or one rounding to bfloat16)."""
    if got.dtype == torch.bfloat16:
        torch.testing.assert_close(got, want.bfloat16(), rtol=2**-7, atol=1e-6)
    else:
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("m", [1, 16], ids=["m1", "m16"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op_name", OPS)
def test_grad_x_and_bias(op_name, dtype, m):
    wargs, w, extra = packed_args(op_name)
    x = make_x((2, m, K), dtype).requires_grad_()
    bias = make_bias(N).requires_grad_()
    y = getattr(ops, op_name)(x, *wargs, bias, *extra)
    dy = make_x(y.shape, dtype, seed=3)
    dx, db = torch.autograd.grad(y, (x, bias), dy)
    assert dx.dtype == dtype and dx.shape == x.shape and db.shape == bias.shape
    check_grad(dx, (dy.float().reshape(-1, N) @ w).reshape(x.shape))
    check_grad(db, dy.float().reshape(-1, N).sum(0))


@pytest.mark.parametrize("op_name", ["gemm_w4a16", "gemm_sp24", "gemm_f32"])
def test_grad_x_only(op_name):
    """No bias, and a bias that does not require grad: only dx is asked for."""
    wargs, w, extra = packed_args(op_name)
    x = make_x((5, K)).requires_grad_()
    for bias in (None, make_bias(N)):
        y = getattr(ops, op_name)(x, *wargs, bias, *extra)
        (dx,) = torch.autograd.grad(y.sum(), (x,))
        check_grad(dx, torch.ones(5, N) @ w)


def test_gemm_f32_weight_grad():
    """gemm_f32's weight is a float matrix: it gets dW = dyᵀ·x, as F.linear's."""
    w = torch.randn(N, K, requires_grad=True)
    x = make_x((3, 4, K)).requires_grad_()
    dy = make_x((3, 4, N), seed=5)
    got = torch.autograd.grad(ops.gemm_f32(x, w, None), (x, w), dy)
    want = torch.autograd.grad(F.linear(x, w), (x, w), dy)
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def test_no_grad_mode_builds_no_graph():
    wargs, _, extra = packed_args("gemm_w4a16")
    x = make_x((2, K)).requires_grad_()
    with torch.no_grad():
        y = ops.gemm_w4a16(x, *wargs, None, *extra)
    assert y.grad_fn is None and not y.requires_grad


@pytest.mark.parametrize("op_name", ["gemm_w4a16", "gemm_w8a16", "gemm_w4a16_sp24"])
def test_scales_requiring_grad_raise(op_name):
    """Frozen means frozen: asking for a gradient of the scales raises at the forward, instead of
    training nothing."""
    wargs, _, extra = packed_args(op_name)
    scales = wargs[1].clone().requires_grad_()
    wargs = (wargs[0], scales, *wargs[2:])
    with pytest.raises(ValueError, match=rf"llmaccel.{op_name}: scales requires grad.*frozen"):
        getattr(ops, op_name)(make_x((2, K)), *wargs, None, *extra)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op_name", OPS)
def test_opcheck_with_grad(op_name, dtype):
    """opcheck with inputs that require grad: test_autograd_registration checks the formula is
    registered for the op's device, test_aot_dispatch_dynamic traces forward and backward with
    dynamic shapes and compares their gradients with eager ones."""
    wargs, _, extra = packed_args(op_name)
    if op_name == "gemm_f32":
        wargs = (wargs[0].clone().requires_grad_(),)
    args = (make_x((2, 3, K), dtype).requires_grad_(), *wargs, make_bias(N).requires_grad_(),
            *extra)
    result = torch.library.opcheck(getattr(ops, op_name), args)
    assert set(result.values()) == {"SUCCESS"}, result


@pytest.mark.parametrize("op_name", ["gemm_w4a8", "gemm_w4a8_sp24", "gemm_sp24"])
def test_compile_fullgraph_backward(op_name):
    """torch.compile(fullgraph=True) traces forward and backward through the fake kernels (the
    2:4 unpackers included) and gives eager's gradients."""
    wargs, _, extra = packed_args(op_name)
    op = getattr(ops, op_name)

    def loss(x, bias):
        return (op(x, *wargs, bias, *extra) ** 2).sum()

    x, bias = make_x((7, K)).requires_grad_(), make_bias(N).requires_grad_()
    want = torch.autograd.grad(loss(x, bias), (x, bias))
    got = torch.autograd.grad(torch.compile(loss, fullgraph=True)(x, bias), (x, bias))
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)

