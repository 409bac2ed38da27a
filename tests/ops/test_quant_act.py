"""quantize_act_int8 against its reference twin, every CPU path: bit-exact (an integer path whose
contract is the same float32 operations in the same order as the reference)."""

import pytest
import torch

from llmaccel import formats, ops, reference

from ..helpers import make_x, x_like

# Activation quantization has an AVX2 kernel: `isa` covers avx2 here (tests/conftest.py).
AVX2_KERNELS = True
DTYPES = [torch.float32, torch.bfloat16]
DTYPE_IDS = ["f32", "bf16"]


def assert_bit_exact(x, block):
    q, s, qs = ops.quantize_act_int8(x, block)
    rq, rs, rqs = reference.quantize_act_int8(x, block)
    m, k = x.shape
    nb = (k + block - 1) // block
    assert q.dtype == torch.int8 and q.shape == (m, nb * block)
    assert s.dtype == torch.float32 and s.shape == (m, nb)
    assert qs.dtype == torch.int32 and qs.shape == (m, nb)
    assert torch.equal(q, rq), "codes differ from the reference"
    assert torch.equal(s, rs), "scales differ from the reference"
    assert torch.equal(qs, rqs), "block sums differ from the reference"
    assert torch.all(q[:, k:] == 0)
    assert torch.equal(qs, q.view(m, nb, block).sum(2, dtype=torch.int32))
    return q, s, qs


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("block", [1, 7, 32, 64, 128, 4096])
@pytest.mark.parametrize("m,k", [(1, 33), (3, 100), (16, 200), (17, 128), (257, 96), (2, 4096)])
def test_matches_reference(isa, m, k, block, dtype):
    assert_bit_exact(make_x((m, k), dtype, seed=k) * 3, block)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("layout", ["col_slice", "transposed"])
def test_strided_x(isa, layout, dtype):
    x = x_like(layout, 17, 100, dtype)
    q, s, qs = assert_bit_exact(x, 32)
    q2, s2, qs2 = ops.quantize_act_int8(x.contiguous(), 32)
    assert torch.equal(q, q2) and torch.equal(s, s2) and torch.equal(qs, qs2)


def test_round_half_to_even(isa):
    """amax = 127 makes the multiplier exactly 1, so x * inv lands on exact ties."""
    row = torch.tensor([127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.49, -3.51, 0.0])
    q, s, qs = assert_bit_exact(row[None, :], 12)
    assert q[0].tolist() == [127, 0, 2, 2, 0, -2, -2, 126, -126, 3, -4, 0]
    assert s[0, 0] == 1.0 and qs[0, 0] == 127 + 2 + 2 - 2 - 2 + 126 - 126 + 3 - 4


def test_special_rows(isa):
    """All-zero blocks (scale 0, codes 0), one non-zero, large magnitudes, mixed blocks."""
    x = torch.zeros(5, 96)
    x[1, 40] = -3.0  # one value: maps to -127 exactly
    x[2] = 1e30 * make_x((96,), seed=4)
    x[3, :32] = 1e-30 * make_x((32,), seed=5)  # small but 127 / amax stays finite
    x[4] = make_x((96,), seed=6)
    x[4, 32:64] = 0.0
    q, s, _ = assert_bit_exact(x, 32)
    assert torch.all(q[0] == 0) and torch.all(s[0] == 0)
    assert q[1, 40] == -127 and int(q[1].abs().sum()) == 127
    assert torch.all(q[4, 32:64] == 0) and s[4, 1] == 0
    assert int(q.abs().max()) == 127


def test_tiny_absmax(isa):
    """Below 2^-100 (where 127/absmax would overflow) a block is zero by contract."""
    x = torch.zeros(2, 32)
    x[0, 0], x[0, 1] = 1e-38, -5e-39
    x[1, 0], x[1, 1] = 2.0**-99, -(2.0**-100)
    q, s, _ = assert_bit_exact(x, 32)
    assert torch.all(q[0] == 0) and s[0, 0] == 0
    assert q[1, 0] == 127 and q[1, 1] < 0 and s[1, 0] > 0


def test_nan_propagates(isa):
    x = make_x((2, 64))
    x[0, 5] = float("nan")
    _, s, _ = ops.quantize_act_int8(x, 32)
    assert torch.isnan(s[0, 0])
    p = formats.pack_int8(torch.ones(16, 64, dtype=torch.int8), torch.ones(16))
    assert torch.isnan(ops.gemm_w8a8(x, p.qweight, p.scales, None, 16)[0]).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_opcheck(dtype):
    """All of opcheck's default utils. Outputs are integer codes and scales, not differentiable,
    so no input requires grad (with one, test_aot_dispatch_dynamic would try to backpropagate into
    int8/int32 outputs, which autograd cannot do for any op)."""
    result = torch.library.opcheck(ops.quantize_act_int8, (make_x((5, 100), dtype), 32))
    assert set(result.values()) == {"SUCCESS"}, result


def test_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        ops.quantize_act_int8(make_x((2, 3, 32)), 32)
    with pytest.raises(ValueError, match="block"):
        ops.quantize_act_int8(make_x((2, 32)), 0)
    with pytest.raises(TypeError, match="float32 or bfloat16"):
        ops.quantize_act_int8(make_x((2, 32), torch.float16), 32)
    with pytest.raises(ValueError, match="non-empty last dimension"):
        ops.quantize_act_int8(torch.zeros(2, 0), 32)
