"""dequant_w4, dequant_w8 and quantize_act_int8 on CUDA: bit-exact with their CPU reference twins.

* dequant: one float32 operation per element, (q - zero) * scale or q * scale, on the same
  integers and float32 scales as the reference: equal bits, no tolerance.
* quantize_act_int8: the same float32 operations in the same order as the reference (a true
  division 127 / absmax, x times it, round half to even, clamp), on x.float(): equal codes, scales
  and block sums, for float16, bfloat16 and float32 x.
Also the CUDA layout conversions (formats.to_cuda_int4 / to_cuda_int8) on a CUDA tensor.
"""

import pytest
import torch

from llmaccel import formats, ops, reference

from ..helpers import make_w4, make_w8, make_x, poison_cuda_cache

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

QUANT_DTYPES = [torch.float16, torch.bfloat16, torch.float32]
QUANT_DTYPE_IDS = ["fp16", "bf16", "f32"]


def cuda_w4(p):
    return (formats.to_cuda_int4(p.qweight).cuda(), p.scales.cuda(),
            None if p.zeros is None else p.zeros.cuda())


def cuda_w8(p):
    return formats.to_cuda_int8(p.qweight).cuda(), p.scales.cuda()


# ---- layout conversion on the device -----------------------------------------------------------

@pytest.mark.parametrize("n,k,group_size", [(17, 100, 64), (100, 1000, 128), (1, 33, -1)])
def test_cuda_layout_conversion_on_device(n, k, group_size):
    """to_cuda_* / from_cuda_* on CUDA tensors: the CPU conversion's bits, on the same device."""
    p4 = make_w4(n, k, group_size, symmetric=False, source="codes")
    w4 = formats.to_cuda_int4(p4.qweight.cuda())
    assert w4.is_cuda and torch.equal(w4.cpu(), formats.to_cuda_int4(p4.qweight))
    back4 = formats.from_cuda_int4(w4)
    assert back4.is_cuda and torch.equal(back4.cpu(), p4.qweight)
    p8 = make_w8(n, k, source="codes")
    w8 = formats.to_cuda_int8(p8.qweight.cuda())
    assert w8.is_cuda and torch.equal(w8.cpu(), formats.to_cuda_int8(p8.qweight))
    back8 = formats.from_cuda_int8(w8, p8.k_pad)
    assert back8.is_cuda and torch.equal(back8.cpu(), p8.qweight)


# ---- dequant -----------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["rtn", "codes"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("group_size", [32, 64, 128, -1])
@pytest.mark.parametrize("n,k", [(1, 33), (17, 100), (37, 200), (72, 264), (300, 128),
                                 (100, 1000), (5, 4096)])
def test_cuda_dequant_w4(n, k, group_size, symmetric, source):
    p = make_w4(n, k, group_size, symmetric, seed=n, source=source)
    qweight, scales, zeros = cuda_w4(p)
    poison_cuda_cache()
    w = ops.dequant_w4(qweight, scales, zeros, n, k)
    w_ref = reference.dequant_w4(p.qweight, p.scales, p.zeros, n, k)
    assert w.is_cuda and w.dtype == torch.float32 and w.shape == (n, k)
    assert torch.equal(w.cpu(), w_ref)


@pytest.mark.parametrize("source", ["rtn", "codes"])
@pytest.mark.parametrize("n,k", [(1, 33), (17, 101), (37, 199), (72, 264), (300, 128),
                                 (100, 1000), (5, 4096), (16, 4)])
def test_cuda_dequant_w8(n, k, source):
    p = make_w8(n, k, seed=n, source=source)
    qweight, scales = cuda_w8(p)
    poison_cuda_cache()
    w = ops.dequant_w8(qweight, scales, n, k)
    w_ref = reference.dequant_w8(p.qweight, p.scales, n, k)
    assert w.is_cuda and w.dtype == torch.float32 and w.shape == (n, k)
    assert torch.equal(w.cpu(), w_ref)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("group_size", [32, 64, 128, -1])
@pytest.mark.parametrize("n,k", [(1, 33), (17, 100), (37, 200)])
def test_cuda_dequant_w4_padding_and_prefix(n, k, group_size, symmetric):
    """The whole padded (n_pad, k_pad) tile dequantizes to exactly 0 outside (n, k), and any k in
    (k_pad - group, k_pad] gives a prefix of the same columns."""
    p = make_w4(n, k, group_size, symmetric, seed=k, source="codes")
    args = cuda_w4(p)
    full = ops.dequant_w4(*args, p.n_pad, p.k_pad)
    assert full.shape == (p.n_pad, p.k_pad)
    assert torch.equal(full.cpu(), reference.dequant_w4(p.qweight, p.scales, p.zeros, p.n_pad,
                                                        p.k_pad))
    assert torch.all(full[n:] == 0) and torch.all(full[:, k:] == 0)
    for kk in sorted({p.k_pad - p.group_size + 1, k, p.k_pad}):
        assert torch.equal(ops.dequant_w4(*args, n, kk), full[:n, :kk]), kk


@pytest.mark.parametrize("n,k", [(1, 33), (17, 101), (37, 200)])
def test_cuda_dequant_w8_padding(n, k):
    p = make_w8(n, k, seed=k, source="codes")
    full = ops.dequant_w8(*cuda_w8(p), p.n_pad, p.k_pad)
    assert full.shape == (p.n_pad, p.k_pad)
    assert torch.equal(full.cpu(), reference.dequant_w8(p.qweight, p.scales, p.n_pad, p.k_pad))
    assert torch.all(full[n:] == 0) and torch.all(full[:, k:] == 0)


# ---- quantize_act_int8 -------------------------------------------------------------------------

def assert_bit_exact(x, block):
    """quantize_act_int8(x on CUDA) against the reference on x.float() on the CPU."""
    poison_cuda_cache()
    q, s, qs = ops.quantize_act_int8(x, block)
    rq, rs, rqs = reference.quantize_act_int8(x.float().cpu(), block)
    m, k = x.shape
    nb = (k + block - 1) // block
    assert q.is_cuda and s.is_cuda and qs.is_cuda
    assert q.dtype == torch.int8 and q.shape == (m, nb * block)
    assert s.dtype == torch.float32 and s.shape == (m, nb)
    assert qs.dtype == torch.int32 and qs.shape == (m, nb)
    q, s, qs = q.cpu(), s.cpu(), qs.cpu()
    assert torch.equal(q, rq), "codes differ from the reference"
    assert torch.equal(s, rs), "scales differ from the reference"
    assert torch.equal(qs, rqs), "block sums differ from the reference"
    assert torch.all(q[:, k:] == 0)
    assert torch.equal(qs, q.view(m, nb, block).sum(2, dtype=torch.int32))
    return q, s, qs


@pytest.mark.parametrize("dtype", QUANT_DTYPES, ids=QUANT_DTYPE_IDS)
@pytest.mark.parametrize("block", [1, 7, 32, 64, 128, 4096])
@pytest.mark.parametrize("m,k", [(1, 33), (3, 100), (16, 200), (17, 128), (257, 96), (2, 4096),
                                 (300, 1000)])
def test_cuda_quantize_act_int8_matches_reference(m, k, block, dtype):
    for seed in (k, k + 1):  # twice, different x: every output element written by its call
        assert_bit_exact((make_x((m, k), seed=seed) * 3).to(dtype).cuda(), block)


@pytest.mark.parametrize("dtype", QUANT_DTYPES, ids=QUANT_DTYPE_IDS)
@pytest.mark.parametrize("layout", ["col_slice", "transposed", "misaligned"])
def test_cuda_quantize_act_int8_strided_x(layout, dtype):
    m, k = 17, 100
    if layout == "col_slice":
        x = make_x((m, k + 7), dtype).cuda()[:, 3:3 + k]
    elif layout == "transposed":
        x = make_x((k, m), dtype).cuda().t()
    else:
        x = make_x((m * k + 1,), dtype).cuda()[1:].view(m, k)
    q, s, qs = assert_bit_exact(x, 32)
    q2, s2, qs2 = ops.quantize_act_int8(x.contiguous(), 32)
    assert torch.equal(q, q2.cpu()) and torch.equal(s, s2.cpu()) and torch.equal(qs, qs2.cpu())


def test_cuda_quantize_act_int8_round_half_to_even():
    """amax = 127 makes the multiplier exactly 1, so x * inv lands on exact ties."""
    row = torch.tensor([127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.49, -3.51, 0.0])
    q, s, qs = assert_bit_exact(row[None, :].cuda(), 12)
    assert q[0].tolist() == [127, 0, 2, 2, 0, -2, -2, 126, -126, 3, -4, 0]
    assert s[0, 0] == 1.0 and qs[0, 0] == 127 + 2 + 2 - 2 - 2 + 126 - 126 + 3 - 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_cuda_quantize_act_int8_special_rows(dtype):
    """All-zero blocks (scale 0, codes 0), one non-zero, large magnitudes, mixed blocks."""
    x = torch.zeros(5, 96)
    x[1, 40] = -3.0
    x[2] = 1e30 * make_x((96,), seed=4)
    x[3, :32] = 1e-30 * make_x((32,), seed=5)
    x[4] = make_x((96,), seed=6)
    x[4, 32:64] = 0.0
    q, s, _ = assert_bit_exact(x.to(dtype).cuda(), 32)
    assert torch.all(q[0] == 0) and torch.all(s[0] == 0)
    assert q[1, 40] == -127 and int(q[1].abs().sum()) == 127
    assert torch.all(q[4, 32:64] == 0) and s[4, 1] == 0


def test_cuda_quantize_act_int8_tiny_absmax():
    """Below 2^-100 (where 127/absmax would overflow) a block is zero by contract."""
    x = torch.zeros(2, 32)
    x[0, 0], x[0, 1] = 1e-38, -5e-39
    x[1, 0], x[1, 1] = 2.0**-99, -(2.0**-100)
    q, s, _ = assert_bit_exact(x.cuda(), 32)
    assert torch.all(q[0] == 0) and s[0, 0] == 0
    assert q[1, 0] == 127 and q[1, 1] < 0 and s[1, 0] > 0


def test_cuda_quantize_act_int8_non_finite():
    """A block with a NaN or an inf: codes 0 and a NaN scale, as the reference; the other blocks
    of the row are unaffected."""
    x = make_x((3, 96), seed=7)
    x[0, 5] = float("nan")
    x[1, 70] = float("inf")
    q, s, qs = ops.quantize_act_int8(x.cuda(), 32)
    rq, rs, rqs = reference.quantize_act_int8(x, 32)
    assert torch.equal(q.cpu(), rq) and torch.equal(qs.cpu(), rqs)
    assert torch.equal(s.cpu().isnan(), rs.isnan())
    assert torch.isnan(s[0, 0]) and torch.isnan(s[1, 2]) and not torch.isnan(s[2]).any()
    finite = ~rs.isnan()
    assert torch.equal(s.cpu()[finite], rs[finite])


def test_cuda_quantize_act_int8_bad_inputs():
    with pytest.raises(ValueError):
        ops.quantize_act_int8(make_x((2, 3, 32)).cuda(), 32)
    with pytest.raises(ValueError):
        ops.quantize_act_int8(make_x((2, 32)).cuda(), 0)
    torch.cuda.synchronize()


# ---- bad inputs (last in the file: a check that is missing could fault the device) -------------

def test_cuda_dequant_canonical_qweight_raises():
    """The canonical (CPU) layout on CUDA is refused with a message naming the CUDA layout."""
    p4 = make_w4(17, 100, 64, symmetric=False, source="codes")
    with pytest.raises(ValueError, match="(?i)cuda"):
        ops.dequant_w4(p4.qweight.cuda(), p4.scales.cuda(), p4.zeros.cuda(), 17, 100)
    p8 = make_w8(17, 100, source="codes")
    with pytest.raises(ValueError, match="(?i)cuda"):
        ops.dequant_w8(p8.qweight.cuda(), p8.scales.cuda(), 17, 100)
    torch.cuda.synchronize()


def test_cuda_dequant_mixed_devices_raise():
    p4 = make_w4(17, 100, 64, symmetric=False, source="codes")
    qweight, scales, zeros = cuda_w4(p4)
    for args in ((qweight.cpu(), scales, zeros), (qweight, scales.cpu(), zeros),
                 (qweight, scales, zeros.cpu())):
        with pytest.raises((ValueError, RuntimeError)):
            ops.dequant_w4(*args, 17, 100)
    p8 = make_w8(17, 100, source="codes")
    qweight, scales = cuda_w8(p8)
    with pytest.raises((ValueError, RuntimeError)):
        ops.dequant_w8(qweight, scales.cpu(), 17, 100)
    torch.cuda.synchronize()
