"""gemm_w4a16_sp24, gemm_w4a8_sp24 and gemm_sp24 (2:4 sparse weights) against their reference
twins, every CPU path.

Tolerance policy (as tests/ops/test_gemm_w4.py). The exact value is computed in float64 from the
same codes/values and scales; A = |x| |W|^T + |b|.
* Reference: one float32 matmul over all k_pad columns: within gamma(k_pad + 4) * A.
* Portable path: x exactly, the 2 kept products per group of 4 summed in float32, a scale per
  group, the bias: fewer roundings per term than the reference, so the same bound holds.
* gemm_w4a16_sp24 consumes x rounded to bfloat16 on every path (its contract): the exact value
  is computed from x.bfloat16(), and every path lies within gamma(k_pad + 4) * A of it.
* AVX2 path: as the portable one (x exactly, one fp32 FMA per kept weight, a scale per group).
* gemm_sp24 on the AVX-512 paths: bfloat16 x exactly; float32 x as a bfloat16 hi + lo pair
  (|x - hi - lo| <= 2**-18 |x|) with every bf16 product exact and 2 per kept weight accumulated
  (k_pad additions per term at most): within (gamma(k_pad + 4) + 2**-18) * A.
* gemm_w4a8_sp24 (int8 activations, quantized bit-exactly as the reference's): exact integer
  sums over the kept weights; the kernels convert them to float per group (portable) or per
  slice of at most 256 columns of a group (AVX2), then sx * s, the product and one addition per
  group or slice, and the bias: within gamma(k_pad / 32 + n_groups + 5) * A of the exact value,
  A = sum over products of |xq| |q - 8| |sx * s| + |b| (a bound on every partial sum).
* bfloat16 outputs: one more rounding to bfloat16 on either side (see check_output).
"""

import pytest
import torch

from llmaccel import formats, ops, reference

from ..helpers import (_gen, float_gemm_exact, gamma, make_bias, make_x, x_like)
from .test_gemm_w4 import check_output

DTYPES = [torch.float32, torch.bfloat16]
DTYPE_IDS = ["f32", "bf16"]
OPS = ["gemm_w4a16_sp24", "gemm_w4a8_sp24", "gemm_sp24"]
W4_OPS = ("gemm_w4a16_sp24", "gemm_w4a8_sp24")
AVX2_KERNELS = True  # every op here has an AVX2 kernel: the isa fixture covers avx2
# (M, K, N, group_size): M = 1, 3, 7, 16, 17, 257; K not a multiple of 4 or 32 (33, 100, 200,
# 1000) or a multiple (96, 128, 4096); N = 1 and N not a multiple of 16; per-channel groups (-1),
# one of them wider than the w4a8 kernels' 256-column slices; groups of 96 (3 chunks: every
# other group starts in the second chunk of the AVX-512 w4a8 kernel's 64-byte windows).
CASES = [(1, 33, 1, -1), (3, 100, 17, 64), (16, 200, 37, 128), (17, 128, 300, 32),
         (257, 96, 37, 32), (2, 4096, 17, 128), (1, 576, 576, 128), (7, 1000, 40, -1),
         (13, 300, 33, 96)]


def sparse_mask(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """A 2:4 mask with every kind of group: two kept (most), one kept, none kept."""
    g = _gen(seed)
    kp = (k + 3) // 4 * 4
    order = torch.rand(n, kp // 4, 4, generator=g).argsort(dim=2)
    keep_count = torch.multinomial(torch.tensor([0.1, 0.15, 0.75]), n * kp // 4, True,
                                   generator=g).view(n, kp // 4, 1)
    mask = torch.zeros(n, kp // 4, 4, dtype=torch.bool)
    mask.scatter_(2, order, (torch.arange(4).view(1, 1, 4) < keep_count).expand_as(order))
    return mask.view(n, kp)[:, :k]


def make_w4_sp24(n: int, k: int, group_size: int, seed: int = 0) -> formats.PackedInt4Sp24:
    g = _gen(seed)
    _, k_pad, gs = formats.int4_padding(n, k, group_size)
    codes = torch.randint(0, 16, (n, k), generator=g)
    codes = torch.where(sparse_mask(n, k, seed), codes, 8)
    scales = torch.rand(n, k_pad // gs, generator=g) * 0.1 + 0.01
    return formats.pack_int4_sp24(codes, scales, group_size)


def make_sp24(n: int, k: int, seed: int = 0) -> formats.PackedSp24:
    w = torch.randn(n, k, generator=_gen(seed)) * sparse_mask(n, k, seed)
    return formats.pack_sp24(w)


def weight_args(op_name, n, k, group_size, seed=0):
    if op_name in W4_OPS:
        p = make_w4_sp24(n, k, group_size, seed)
        codes, s = formats.unpack_int4_sp24(p)
        w = (codes.double() - 8) * s.double().repeat_interleave(p.group_size, 1)[:, :k]
        return (p.qweight, p.scales), w
    p = make_sp24(n, k, seed)
    return (p.packed,), formats.unpack_sp24(p).double()


def w4a8_exact(x, qweight, scales, bias, n):
    """(exact float64 result, its bound) for gemm_w4a8_sp24 under the policy above."""
    k = x.shape[-1]
    k_pad = qweight.shape[1] // 192 * 32
    g = k_pad // scales.shape[1]
    codes, s = formats.unpack_int4_sp24(formats.PackedInt4Sp24(qweight, scales, n, k, g))
    q, sx, _ = reference.quantize_act_int8(x.reshape(-1, k), g)
    wc = torch.zeros(n, k_pad, dtype=torch.int64)
    wc[:, :k] = codes.long() - 8
    m, n_groups = q.shape[0], k_pad // g
    prod = (sx[:, None, :] * s[None, :, :]).double()  # the float32 product, widened exactly
    dots = torch.einsum("mgk,ngk->mng", q.long().view(m, n_groups, g), wc.view(n, n_groups, g))
    mags = torch.einsum("mgk,ngk->mng", q.long().abs().view(m, n_groups, g),
                        wc.abs().view(n, n_groups, g))
    y, a = (dots.double() * prod).sum(2), (mags.double() * prod.abs()).sum(2)
    if bias is not None:
        y, a = y + bias.double(), a + bias.double().abs()
    return y, gamma(k_pad // 32 + n_groups + 5) * a


def bounds(op_name, x, w, bias, k_pad, isa):
    if op_name == "gemm_w4a16_sp24":  # defined on x rounded to bfloat16
        exact, a = float_gemm_exact(x.bfloat16(), w, bias)
        return exact, gamma(k_pad + 4) * a, gamma(k_pad + 4) * a
    exact, a = float_gemm_exact(x, w, bias)
    bound = gamma(k_pad + 4) * a
    hi_lo = isa.startswith("avx512") and x.dtype == torch.float32  # fp32 x as bf16 hi + lo
    op_bound = bound + 2.0**-18 * a if hi_lo else bound
    return exact, bound, op_bound


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "M{}-K{}-N{}-g{}".format(*c))
@pytest.mark.parametrize("op_name", OPS)
def test_matches_reference(isa, op_name, case, with_bias, dtype):
    m, k, n, group_size = case
    wargs, w = weight_args(op_name, n, k, group_size, seed=m + k)
    x = make_x((m, k), dtype, seed=n)
    bias = make_bias(n) if with_bias else None
    y = getattr(ops, op_name)(x, *wargs, bias, n)
    y_ref = getattr(reference, op_name)(x, *wargs, bias, n)
    assert y.dtype == dtype and y.shape == (m, n)
    k_pad = (k + 31) // 32 * 32 if group_size == -1 or op_name == "gemm_sp24" else \
        formats.int4_padding(n, k, group_size)[1]
    if op_name == "gemm_w4a8_sp24":
        exact, bound = w4a8_exact(x, *wargs, bias, n)
        op_bound = bound
    else:
        exact, bound, op_bound = bounds(op_name, x, w, bias, k_pad, isa)
    check_output(y, y_ref, exact, bound, f"{op_name}[{isa}]", op_bound)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "M{}-K{}-N{}-g{}".format(*c))
def test_w4a8_without_vbmi(isa, case, no_vbmi):
    """An AVX-512 path on a CPU without VBMI runs gemm_w4a8_sp24's AVX2 kernel on the AVX-512
    path's staging; the same contract (on avx2 and scalar this repeats their own cases)."""
    test_matches_reference(isa, "gemm_w4a8_sp24", case, True, torch.bfloat16)
    test_matches_reference(isa, "gemm_w4a8_sp24", case, False, torch.float32)


@pytest.mark.parametrize("layout", ["1d", "3d", "3d_slice", "col_slice", "transposed"])
@pytest.mark.parametrize("op_name", OPS)
def test_layouts(isa, op_name, layout):
    """Leading dims and strided x give the result of contiguous (M, K) x, bit for bit."""
    m, k, n = 5, 100, 37
    wargs, _ = weight_args(op_name, n, k, 64)
    x, bias = x_like(layout, m, k), make_bias(n)
    op = getattr(ops, op_name)
    y = op(x, *wargs, bias, n)
    assert y.shape == (*x.shape[:-1], n)
    assert torch.equal(y.reshape(-1, n), op(x.reshape(-1, k).contiguous(), *wargs, bias, n))


@pytest.mark.parametrize("op_name", OPS)
def test_threads_and_inputs_untouched(isa, op_name):
    m, k, n = 9, 128, 300
    wargs, _ = weight_args(op_name, n, k, 32)
    x, bias = make_x((m, k)), make_bias(n)
    saved = [t.clone() for t in (x, *wargs, bias)]
    before = torch.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            results.append(getattr(ops, op_name)(x, *wargs, bias, n))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(results[0], r) for r in results[1:])
    assert all(torch.equal(a, b) for a, b in zip(saved, (x, *wargs, bias)))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op_name", OPS)
def test_opcheck(op_name, dtype):
    wargs, _ = weight_args(op_name, 17, 100, 64)
    result = torch.library.opcheck(getattr(ops, op_name),
                                   (make_x((2, 3, 100), dtype), *wargs, make_bias(17), 17))
    assert set(result.values()) == {"SUCCESS"}, result


@pytest.mark.parametrize("op_name", W4_OPS)
def test_compile_fullgraph(op_name):
    wargs, _ = weight_args(op_name, 17, 100, 64)
    op = getattr(ops, op_name)
    f = torch.compile(lambda x: op(x, *wargs, None, 17), fullgraph=True)
    x = make_x((3, 100))
    assert torch.equal(f(x), op(x, *wargs, None, 17))


def test_bad_inputs():
    (qw, sc), _ = weight_args("gemm_w4a16_sp24", 17, 100, 64)
    (packed,), _ = weight_args("gemm_sp24", 17, 100, 64)
    x = make_x((3, 100))
    with pytest.raises(TypeError, match="qweight must be uint8"):
        ops.gemm_w4a16_sp24(x, qw.view(torch.int8), sc, None, 17)
    with pytest.raises(ValueError, match="qweight must be"):
        ops.gemm_w4a16_sp24(x, qw[:, :100], sc, None, 17)
    with pytest.raises(ValueError, match="scales must be"):
        ops.gemm_w4a16_sp24(x, qw, sc[:, :, :8], None, 17)
    with pytest.raises(ValueError, match="n=40 does not match"):
        ops.gemm_w4a16_sp24(x, qw, sc, None, 40)
    with pytest.raises(ValueError, match="K=60 columns"):
        ops.gemm_w4a16_sp24(make_x((3, 60)), qw, sc, None, 17)
    with pytest.raises(ValueError, match="gemm_w4a8_sp24.*n=40 does not match"):
        ops.gemm_w4a8_sp24(x, qw, sc, None, 40)
    with pytest.raises(ValueError, match="gemm_w4a8_sp24.*K=60 columns"):
        ops.gemm_w4a8_sp24(make_x((3, 60)), qw, sc, None, 17)
    with pytest.raises(TypeError, match="gemm_w4a8_sp24.*scales must be float32"):
        ops.gemm_w4a8_sp24(x, qw, sc.double(), None, 17)
    with pytest.raises(ValueError, match="bias must be"):
        ops.gemm_sp24(x, packed, torch.zeros(5), 17)
    with pytest.raises(ValueError, match="packed must be"):
        ops.gemm_sp24(x, packed[:, :500], None, 17)
    with pytest.raises(ValueError, match="K=200 columns"):
        ops.gemm_sp24(make_x((3, 200)), packed, None, 17)
    with pytest.raises(TypeError, match="x must be"):
        ops.gemm_sp24(x.double(), packed, None, 17)
    with pytest.raises(ValueError, match="contiguous"):
        ops.gemm_sp24(x, packed.t().contiguous().t(), None, 17)
