"""gemm_f32 (float32 weights, kept unquantized) against the exact product and its reference twin,
every CPU path.

Tolerance: kernel and reference sum the same K products in float32 in different orders; each
side passes every term through at most K + 2 roundings (product, additions, bias), so each lies
within gamma(K + 2) * A of the exact value (A = |x| |W|^T + |b|) and within twice that of the
other. bfloat16 activations: the float32 result is rounded once more, half a bfloat16 ulp.
"""

import pytest
import torch

from llmaccel import ops, reference

from ..helpers import assert_within, bf16_ulp, float_gemm_exact, gamma, make_bias, x_like

# gemm_f32 has an AVX2 kernel: `isa` covers avx2 here (tests/conftest.py).
AVX2_KERNELS = True
CASES = [(1, 576, 49), (3, 29, 37), (17, 100, 300), (257, 64, 16), (2, 1000, 5)]
LAYOUTS = ["2d", "col_slice", "transposed", "3d", "3d_slice"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "M{}-K{}-N{}".format(*c))
def test_matches_exact_and_reference(isa, case, with_bias, dtype):
    m, k, n = case
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(k + n))
    bias = make_bias(n) if with_bias else None
    for layout in LAYOUTS:
        x = x_like(layout, m, k, dtype)
        y = ops.gemm_f32(x, w, bias)
        assert y.dtype == dtype and y.shape == (*x.shape[:-1], n)
        exact, a = float_gemm_exact(x, w.double(), bias)
        bound = gamma(k + 2) * a
        if dtype == torch.bfloat16:
            bound = bound + 0.5 * bf16_ulp(exact) + bf16_ulp(exact + bound) * 0.5
        y2 = y.reshape(-1, n)
        assert_within(y2, exact, bound, f"{layout} vs exact")
        ref = reference.gemm_f32(x, w, bias).reshape(-1, n)
        assert_within(y2, ref, 2 * bound + (bf16_ulp(exact) if dtype == torch.bfloat16 else 0),
                      f"{layout} vs reference")


def test_opcheck():
    w, bias = torch.randn(17, 101), make_bias(17)
    x = torch.randn(2, 3, 101)
    result = torch.library.opcheck(ops.gemm_f32, (x, w, bias))
    assert set(result.values()) == {"SUCCESS"}, result


def test_bad_inputs():
    w = torch.randn(8, 16)
    x = torch.randn(2, 16)
    with pytest.raises(TypeError, match="weight must be float32"):
        ops.gemm_f32(x, w.double(), None)
    with pytest.raises(ValueError, match="K=15 columns"):
        ops.gemm_f32(torch.randn(2, 15), w, None)
    with pytest.raises(ValueError, match="contiguous"):
        ops.gemm_f32(x, torch.randn(16, 8).t(), None)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        ops.gemm_f32(x, torch.randn(16), None)
    with pytest.raises(ValueError, match="bias"):
        ops.gemm_f32(x, w, torch.randn(7))
    with pytest.raises(TypeError, match="x must be"):
        ops.gemm_f32(x.half(), w, None)
    assert ops.gemm_f32(torch.randn(0, 16), w, None).shape == (0, 8)
