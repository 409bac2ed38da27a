"""gemm_w8a16 and gemm_w8a8 (int8_tile16x4 weights) against their reference twins, every CPU path.

Tolerance policy. Each result is compared with the exact value, computed in float64 from the same
integer codes and float32 scales, and with the reference twin:

* gemm_w8a16 (float activations): kernel and reference compute the same sum of products in float32
  and differ only in summation order (and a kernel may apply the row scale per term or at the end).
  Every product term passes through at most k_pad + 4 roundings in either (its product, at most
  k_pad additions, the scale, the bias), so each side lies within gamma(k_pad + 4) * A of the exact
  value, A = |x| |W|^T + |b|, and within twice that of the other.
* gemm_w8a8 (int8 activations, one block over all of K): quantize_act_int8 is bit-exact with the
  reference (checked here and in test_quant_act.py) and the int32 dot product is exact, so the two
  differ only in the float32 epilogue: int->float (rounds once K*127*127 >= 2**24), sx * s, the
  product, the bias, and one more for a kernel that associates (dot * sx) * s: 6 roundings
  (n_groups + 5 with one group).
* gemm_w8a8 with act_block = B (one activation scale per token and block of B columns): the
  int32 block dots are exact; each block's term sx_b * dot_b passes through int->float, the
  product and one addition, then the weight scale and the bias: n_blocks + 5 roundings.
* bfloat16 activations: both sides round their float32 result to nearest bfloat16 once more: the
  bound grows by half a bfloat16 ulp against the exact value and by one ulp against the reference.
"""

import pytest
import torch

from llmaccel import formats, ops, reference

from ..helpers import (assert_within, bf16_ulp, float_gemm_exact, gamma, make_bias, make_w8,
                       make_x, w8_exact, w8a8_exact, x_like)


def float_roundings(k_pad: int) -> int:
    return k_pad + 4


A8_ROUNDINGS = 1 + 5  # one group


# The dense GEMMs have AVX2 kernels: `isa` covers the avx2 path here (tests/conftest.py).
AVX2_KERNELS = True
OPS = ["gemm_w8a16", "gemm_w8a8"]
DTYPES = [torch.float32, torch.bfloat16]
DTYPE_IDS = ["f32", "bf16"]
# (M, K, N, weight source): M = 1, 3, 16, 17, 257; K a multiple of 4 or not (33, 101, 199);
# N = 1 and N not a multiple of 16; K = 4096 where the int8 dot exceeds 2**24.
CASES = [
    (1, 33, 1, "rtn"),
    (3, 101, 17, "codes"),
    (16, 199, 37, "rtn"),
    (17, 128, 300, "codes"),
    (257, 96, 37, "rtn"),
    (257, 128, 17, "codes"),
    (2, 4096, 17, "codes"),
]


def _case_id(c):
    m, k, n, src = c
    return f"M{m}-K{k}-N{n}-{src}"


def expected(op_name, x, p, bias):
    """(exact float64 result (M, N), float32 error bound) for op_name on x."""
    if op_name == "gemm_w8a16":
        y, a = float_gemm_exact(x, w8_exact(p), bias)
        return y, gamma(float_roundings(p.k_pad)) * a
    xq = reference.quantize_act_int8(x.reshape(-1, x.shape[-1]), p.k_pad)
    y, a = w8a8_exact(x, p, bias, xq)
    return y, gamma(A8_ROUNDINGS) * a


def check_output(y, y_ref, exact, bound, what):
    """y and y_ref (..., N) against each other and the exact (M, N) value under the policy above."""
    y2, r2 = y.reshape(exact.shape), y_ref.reshape(exact.shape)
    if y.dtype == torch.float32:
        assert_within(r2, exact, bound, f"{what}: reference vs exact (is the bound right?)")
        assert_within(y2, exact, bound, f"{what}: op vs exact")
        assert_within(y2, r2, 2 * bound, f"{what}: op vs reference")
    else:
        # y is the rounding to nearest of a float32 value v within `bound` of exact: half an ulp
        # at |v| <= |exact| + bound away from it (a truncating conversion fails this).
        half_ulp = bf16_ulp(torch.maximum(y2.double().abs(), exact.abs() + bound)) / 2
        assert_within(y2, exact, bound + half_ulp, f"{what}: op vs exact")
        ulp = bf16_ulp(torch.maximum(y2.double().abs(), r2.double().abs()) + 2 * bound)
        assert_within(y2, r2, 2 * bound + ulp, f"{what}: op vs reference")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("op_name", OPS)
def test_matches_reference(isa, op_name, case, with_bias, dtype):
    m, k, n, source = case
    p = make_w8(n, k, seed=m + k, source=source)
    x = make_x((m, k), dtype, seed=n)
    bias = make_bias(n) if with_bias else None
    args = (x, p.qweight, p.scales, bias, n)
    y = getattr(ops, op_name)(*args)
    y_ref = getattr(reference, op_name)(*args)
    assert y.dtype == dtype and y.shape == (m, n)
    exact, bound = expected(op_name, x, p, bias)
    check_output(y, y_ref, exact, bound, f"{op_name}[{isa}]")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("layout", ["1d", "3d", "3d_slice", "col_slice", "transposed"])
@pytest.mark.parametrize("op_name", OPS)
def test_layouts(isa, op_name, layout, dtype):
    """Leading batch dims and strided x: the same result, bit for bit, as contiguous (M, K) x;
    only addressing changes, never the arithmetic."""
    m, k, n = 5, 101, 37
    p = make_w8(n, k, source="codes")
    x = x_like(layout, m, k, dtype)
    bias = make_bias(n)
    op = getattr(ops, op_name)
    y = op(x, p.qweight, p.scales, bias, n)
    assert y.shape == (*x.shape[:-1], n) and y.dtype == dtype
    y_flat = op(x.reshape(-1, k).contiguous(), p.qweight, p.scales, bias, n)
    assert torch.equal(y.reshape(-1, n), y_flat)
    y_ref = getattr(reference, op_name)(x, p.qweight, p.scales, bias, n)
    exact, bound = expected(op_name, x, p, bias)
    check_output(y, y_ref, exact, bound, f"{op_name}[{isa}, {layout}]")


@pytest.mark.parametrize("op_name", OPS)
def test_thread_count_does_not_change_results(isa, op_name):
    """Threads split N into row blocks; each output element's arithmetic is the same."""
    m, k, n = 9, 128, 300
    p = make_w8(n, k)
    x, bias = make_x((m, k)), make_bias(n)
    op = getattr(ops, op_name)
    before = torch.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            results.append(op(x, p.qweight, p.scales, bias, n))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


@pytest.mark.parametrize("op_name", OPS)
def test_inputs_not_modified(isa, op_name):
    p = make_w8(17, 101, source="codes")
    x, bias = make_x((3, 101)), make_bias(17)
    saved = [t.clone() for t in (x, p.qweight, p.scales, bias)]
    getattr(ops, op_name)(x, p.qweight, p.scales, bias, 17)
    for before, after in zip(saved, (x, p.qweight, p.scales, bias)):
        assert torch.equal(before, after)


def test_w8a8_activation_quantization_bit_exact(isa):
    """The int8 activations gemm_w8a8 uses (per token, one block of k_pad) are the reference's."""
    for dtype in DTYPES:
        for k in (33, 101, 128, 4096):
            x = make_x((17, k), dtype, seed=k)
            k_pad = (k + 3) // 4 * 4
            q, s, qs = ops.quantize_act_int8(x, k_pad)
            rq, rs, rqs = reference.quantize_act_int8(x, k_pad)
            assert torch.equal(q, rq) and torch.equal(s, rs) and torch.equal(qs, rqs)


def test_all_zero_activations(isa):
    """Zero rows quantize with scale 0 and give exactly the bias on both paths."""
    p = make_w8(17, 64, source="codes")
    bias = make_bias(17)
    x = torch.zeros(4, 64)
    for op in (ops.gemm_w8a16, ops.gemm_w8a8):
        assert torch.equal(op(x, p.qweight, p.scales, bias, 17), bias.expand(4, 17))


def test_w8a8_max_k():
    """K up to 65536 is accepted (int32 sums cannot overflow), beyond it rejected. N = 1 keeps the
    65536-wide weight small."""
    p = make_w8(1, 65537, source="codes")
    x = make_x((1, 65537))
    with pytest.raises(ValueError, match="65536"):
        ops.gemm_w8a8(x, p.qweight, p.scales, None, 1)
    ops.gemm_w8a16(x, p.qweight, p.scales, None, 1)  # the float path has no such limit


@pytest.mark.parametrize("code", [-128, 127])
def test_w8a8_no_overflow_at_max_k(isa, code):
    """K = 65536 with every product at its extreme: exact int32 sums near 2**30 (and near 2**31
    for a kernel that offsets x by 128 to use unsigned-by-signed VNNI products)."""
    k = 65536
    p = formats.pack_int8(torch.full((2, k), code, dtype=torch.int8), torch.tensor([1.0, 0.5]))
    x = torch.ones(3, k)
    x[1] = -1.0
    x[2, ::2] = -1.0
    y = ops.gemm_w8a8(x, p.qweight, p.scales, None, 2)
    xq = reference.quantize_act_int8(x, k)
    exact, a = w8a8_exact(x, p, None, xq)
    assert_within(y, exact, gamma(A8_ROUNDINGS) * a, f"gemm_w8a8[{isa}] at K=65536")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("op_name", OPS)
def test_opcheck(op_name, with_bias, dtype):
    """All of torch.library.opcheck's default utils: test_schema, test_autograd_registration,
    test_faketensor, test_aot_dispatch_dynamic. The ops are inference-only (no autograd formula),
    so inputs do not require grad and test_autograd_registration checks only that no autograd
    kernel was registered wrongly; a backward through the op is not something it should support."""
    p = make_w8(17, 101, source="codes")
    bias = make_bias(17) if with_bias else None
    x = make_x((2, 3, 101), dtype)
    result = torch.library.opcheck(getattr(ops, op_name), (x, p.qweight, p.scales, bias, 17))
    assert set(result.values()) == {"SUCCESS"}, result


BLOCK_CASES = [(1, 200, 37, 32), (7, 576, 17, 128), (17, 100, 300, 4), (3, 64, 16, 128)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", BLOCK_CASES, ids=lambda c: "M{}-K{}-N{}-B{}".format(*c))
def test_w8a8_activation_blocks(isa, case, dtype):
    """act_block > 0: against the exact per-block formula and the reference twin. A block size
    that does not divide K (576 / 128) leaves a shorter, zero-padded last block."""
    m, k, n, block = case
    p = make_w8(n, k, seed=k, source="rtn")
    x = make_x((m, k), dtype, seed=n)
    bias = make_bias(n)
    y = ops.gemm_w8a8(x, p.qweight, p.scales, bias, n, block)
    y_ref = reference.gemm_w8a8(x, p.qweight, p.scales, bias, n, block)
    xq, sx, _ = reference.quantize_act_int8(x.reshape(-1, k), block)
    codes, s = formats.unpack_int8(p)
    nb = sx.shape[1]
    xl = torch.zeros(m, nb * block, dtype=torch.float64)
    xl[:, :k] = xq[:, :k].double()
    wl = torch.zeros(n, nb * block, dtype=torch.float64)
    wl[:, :k] = codes.double()
    dots = torch.einsum("mbk,nbk->mnb", xl.view(m, nb, block), wl.view(n, nb, block))
    terms = dots * sx.double().unsqueeze(1) * s.double().view(1, n, 1)
    exact = terms.sum(2) + bias.double()
    bound = gamma(nb + 5) * (terms.abs().sum(2) + bias.double().abs())
    check_output(y, y_ref, exact, bound, f"gemm_w8a8[{isa}, act_block={block}]")


def test_w8a8_bad_act_block():
    p = make_w8(16, 64)
    with pytest.raises(ValueError, match="act_block must be 0"):
        ops.gemm_w8a8(make_x((2, 64)), p.qweight, p.scales, None, 16, 6)
