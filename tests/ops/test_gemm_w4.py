"""gemm_w4a16 and gemm_w4a8 (int4_tile16x8 weights) against their reference twins, every CPU path.

Tolerance policy. Each result is compared with the exact value, computed in float64 from the same
integer codes and float32 scales, and with the reference twin:

* gemm_w4a16 (float activations): kernel and reference compute the same sum of products in float32
  and differ only in summation order and in where the group scale is applied. Every product term
  passes through at most k_pad + 4 roundings in either (its product, at most k_pad additions,
  the group scale, the bias), so each side lies within gamma(k_pad + 4) * A of the exact value,
  A = |x| |W|^T + |b|, and within twice that of the other.
* gemm_w4a8 (int8 activations): quantize_act_int8 is bit-exact with the reference (checked here
  and in test_quant_act.py) and the int32 group sums are exact, so the two differ only in the
  float32 epilogue: per group int->float (exact below 2**24), sx * s, the product, one addition
  per group, the bias, and one more for a kernel that associates (c * sx) * s: n_groups + 5
  roundings.
* gemm_w4a16 on the avx512_bf16 path with one float32 row: x is carried as a bfloat16 hi + lo
  pair (|x - hi - lo| <= 2**-18 |x|) and vdpbf16ps adds the 2 k_pad exact bf16 products one
  rounding each, so the op lies within (gamma(2 k_pad + 4) + 2**-18) * A of the exact value.
  bfloat16 x is used exactly (k_pad products: the float bound holds).
* bfloat16 activations: both sides round their float32 result to nearest bfloat16 once more: the
  bound grows by half a bfloat16 ulp against the exact value and by one ulp against the reference.
"""

import pytest
import torch

from llmaccel import ops, reference

from ..helpers import (assert_within, bf16_ulp, float_gemm_exact, gamma, make_bias, make_w4,
                       make_x, w4_exact, w4a8_exact, x_like)


def float_roundings(k_pad: int) -> int:
    return k_pad + 4


def a8_roundings(n_groups: int) -> int:
    return n_groups + 5


# The dense GEMMs have AVX2 kernels: `isa` covers the avx2 path here (tests/conftest.py).
AVX2_KERNELS = True
OPS = ["gemm_w4a16", "gemm_w4a8"]
DTYPES = [torch.float32, torch.bfloat16]
DTYPE_IDS = ["f32", "bf16"]
# (M, K, N, group_size, weight source): M = 1, 3, 16, 17, 257; K padded to the group (33, 100,
# 200) or not (96, 128, 4096); N = 1 and N not a multiple of 16; per-channel groups (-1).
CASES = [
    (1, 33, 1, -1, "rtn"),
    (3, 100, 17, 64, "codes"),
    (16, 200, 37, 128, "rtn"),
    (17, 128, 300, 32, "codes"),
    (257, 96, 37, 32, "rtn"),
    (257, 128, 17, -1, "codes"),
    (2, 4096, 17, 128, "rtn"),
]


def _case_id(c):
    m, k, n, g, src = c
    return f"M{m}-K{k}-N{n}-g{g}-{src}"


def expected(op_name, x, p, bias, isa=None):
    """(exact float64 result (M, N), float32 error bound) for op_name on x; with `isa`, the bound
    of the op on that path (without it, the reference's)."""
    if op_name == "gemm_w4a16":
        y, a = float_gemm_exact(x, w4_exact(p), bias)
        m = x.numel() // x.shape[-1]
        if isa == "avx512_bf16" and x.dtype == torch.float32 and m == 1:
            return y, (gamma(2 * p.k_pad + 4) + 2.0**-18) * a
        return y, gamma(float_roundings(p.k_pad)) * a
    xq = reference.quantize_act_int8(x.reshape(-1, x.shape[-1]), p.group_size)
    y, a = w4a8_exact(x, p, bias, xq)
    return y, gamma(a8_roundings(p.k_pad // p.group_size)) * a


def check_output(y, y_ref, exact, bound, what, op_bound=None):
    """y and y_ref (..., N) against each other and the exact (M, N) value under the policy above.
    `bound` is the reference's; `op_bound` the op's on its path (default: the same)."""
    op_bound = bound if op_bound is None else op_bound
    y2, r2 = y.reshape(exact.shape), y_ref.reshape(exact.shape)
    if y.dtype == torch.float32:
        assert_within(r2, exact, bound, f"{what}: reference vs exact (is the bound right?)")
        assert_within(y2, exact, op_bound, f"{what}: op vs exact")
        assert_within(y2, r2, bound + op_bound, f"{what}: op vs reference")
    else:
        # y is the rounding to nearest of a float32 value v within `bound` of exact: half an ulp
        # at |v| <= |exact| + bound away from it (a truncating conversion fails this).
        half_ulp = bf16_ulp(torch.maximum(y2.double().abs(), exact.abs() + op_bound)) / 2
        assert_within(y2, exact, op_bound + half_ulp, f"{what}: op vs exact")
        ulp = bf16_ulp(torch.maximum(y2.double().abs(), r2.double().abs()) + bound + op_bound)
        assert_within(y2, r2, bound + op_bound + ulp, f"{what}: op vs reference")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("op_name", OPS)
def test_matches_reference(isa, op_name, case, symmetric, with_bias, dtype):
    m, k, n, group_size, source = case
    p = make_w4(n, k, group_size, symmetric, seed=m + k, source=source)
    x = make_x((m, k), dtype, seed=n)
    bias = make_bias(n) if with_bias else None
    args = (x, p.qweight, p.scales, p.zeros, bias, n)
    y = getattr(ops, op_name)(*args)
    y_ref = getattr(reference, op_name)(*args)
    assert y.dtype == dtype and y.shape == (m, n)
    exact, bound = expected(op_name, x, p, bias)
    _, op_bound = expected(op_name, x, p, bias, isa)
    check_output(y, y_ref, exact, bound, f"{op_name}[{isa}]", op_bound)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("layout", ["1d", "3d", "3d_slice", "col_slice", "transposed"])
@pytest.mark.parametrize("op_name", OPS)
def test_layouts(isa, op_name, layout, dtype):
    """Leading batch dims and strided x: the same result, bit for bit, as contiguous (M, K) x;
    only addressing changes, never the arithmetic."""
    m, k, n = 5, 100, 37
    p = make_w4(n, k, 64, symmetric=False, source="codes")
    x = x_like(layout, m, k, dtype)
    bias = make_bias(n)
    op = getattr(ops, op_name)
    y = op(x, p.qweight, p.scales, p.zeros, bias, n)
    assert y.shape == (*x.shape[:-1], n) and y.dtype == dtype
    y_flat = op(x.reshape(-1, k).contiguous(), p.qweight, p.scales, p.zeros, bias, n)
    assert torch.equal(y.reshape(-1, n), y_flat)
    y_ref = getattr(reference, op_name)(x, p.qweight, p.scales, p.zeros, bias, n)
    exact, bound = expected(op_name, x, p, bias)
    _, op_bound = expected(op_name, x, p, bias, isa)
    check_output(y, y_ref, exact, bound, f"{op_name}[{isa}, {layout}]", op_bound)


@pytest.mark.parametrize("op_name", OPS)
def test_thread_count_does_not_change_results(isa, op_name):
    """Threads split N into row blocks; each output element's arithmetic is the same."""
    m, k, n = 9, 128, 300
    p = make_w4(n, k, 32, symmetric=True)
    x, bias = make_x((m, k)), make_bias(n)
    op = getattr(ops, op_name)
    before = torch.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            results.append(op(x, p.qweight, p.scales, p.zeros, bias, n))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


@pytest.mark.parametrize("op_name", OPS)
def test_inputs_not_modified(isa, op_name):
    p = make_w4(17, 100, 64, symmetric=False, source="codes")
    x, bias = make_x((3, 100)), make_bias(17)
    saved = [t.clone() for t in (x, p.qweight, p.scales, p.zeros, bias)]
    getattr(ops, op_name)(x, p.qweight, p.scales, p.zeros, bias, 17)
    for before, after in zip(saved, (x, p.qweight, p.scales, p.zeros, bias)):
        assert torch.equal(before, after)


def test_w4a8_activation_quantization_bit_exact(isa):
    """The int8 activations gemm_w4a8 uses (per token, per weight group) are the reference's."""
    for dtype in DTYPES:
        x = make_x((17, 200), dtype, seed=3)
        for g in (32, 64, 128, 256):
            q, s, qs = ops.quantize_act_int8(x, g)
            rq, rs, rqs = reference.quantize_act_int8(x, g)
            assert torch.equal(q, rq) and torch.equal(s, rs) and torch.equal(qs, rqs)


def test_all_zero_activations(isa):
    """Zero rows quantize with scale 0 and give exactly the bias on both paths."""
    p = make_w4(17, 64, 32, symmetric=False, source="codes")
    bias = make_bias(17)
    x = torch.zeros(4, 64)
    for op in (ops.gemm_w4a16, ops.gemm_w4a8):
        assert torch.equal(op(x, p.qweight, p.scales, p.zeros, bias, 17), bias.expand(4, 17))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_zeros_and_bias", [False, True], ids=["sym-nobias", "asym-bias"])
@pytest.mark.parametrize("op_name", OPS)
def test_opcheck(op_name, with_zeros_and_bias, dtype):
    """All of torch.library.opcheck's default utils: test_schema, test_autograd_registration,
    test_faketensor, test_aot_dispatch_dynamic, with inputs that do not require grad (the
    backward is tested with inputs that do in tests/ops/test_autograd.py)."""
    p = make_w4(17, 100, 64, symmetric=not with_zeros_and_bias, source="codes")
    bias = make_bias(17) if with_zeros_and_bias else None
    x = make_x((2, 3, 100), dtype)
    result = torch.library.opcheck(getattr(ops, op_name),
                                   (x, p.qweight, p.scales, p.zeros, bias, 17))
    assert set(result.values()) == {"SUCCESS"}, result
