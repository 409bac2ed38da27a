"""Packed formats int4_tile16x8 and int8_tile16x4: byte layout, round trips, padding, bad input.

Everything here is integer or exact float bookkeeping, so every comparison is bit-exact.
"""

import pytest
import torch

from llmaccel import formats, ops, reference

GROUPS = [32, 64, 128, -1]
# (N, K): N = 1 and N not a multiple of 16; K below, at and not a multiple of the group size.
SHAPES = [(1, 33), (17, 100), (37, 200), (16, 128), (5, 4096)]


def _random_int4(n, k, group_size, symmetric, seed=0):
    g = torch.Generator().manual_seed(seed)
    _, k_pad, gs = formats.int4_padding(n, k, group_size)
    n_groups = k_pad // gs
    codes = torch.randint(0, 16, (n, k), generator=g, dtype=torch.uint8)
    scales = torch.randn(n, n_groups, generator=g)
    zeros = None if symmetric else torch.randint(0, 16, (n, n_groups), generator=g,
                                                 dtype=torch.uint8)
    return codes, scales, zeros


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("group_size", GROUPS)
@pytest.mark.parametrize("n,k", SHAPES)
def test_int4_round_trip(n, k, group_size, symmetric):
    codes, scales, zeros = _random_int4(n, k, group_size, symmetric)
    p = formats.pack_int4(codes, scales, zeros, group_size)
    n_pad, k_pad, g = formats.int4_padding(n, k, group_size)
    assert (p.n, p.k, p.group_size, p.n_pad, p.k_pad) == (n, k, g, n_pad, k_pad)
    assert p.qweight.dtype == torch.uint8 and p.qweight.shape == (n_pad // 16, k_pad * 8)
    assert p.scales.dtype == torch.float32 and p.scales.shape == (n_pad // 16, k_pad // g, 16)
    assert p.qweight.is_contiguous() and p.scales.is_contiguous()
    if symmetric:
        assert p.zeros is None
    else:
        assert p.zeros.dtype == torch.uint8 and p.zeros.shape == p.scales.shape
    c2, s2, z2 = formats.unpack_int4(p)
    assert torch.equal(c2, codes)
    assert torch.equal(s2, scales)
    assert (z2 is None) if symmetric else torch.equal(z2, zeros)


@pytest.mark.parametrize("n,k", SHAPES)
def test_int8_round_trip(n, k):
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(-128, 128, (n, k), generator=g, dtype=torch.int8)
    scales = torch.rand(n, generator=g)
    p = formats.pack_int8(codes, scales)
    n_pad, k_pad = (n + 15) // 16 * 16, (k + 3) // 4 * 4
    assert (p.n, p.k, p.n_pad, p.k_pad) == (n, k, n_pad, k_pad)
    assert p.qweight.dtype == torch.int8 and p.qweight.shape == (n_pad // 16, k_pad * 16)
    assert p.scales.dtype == torch.float32 and p.scales.shape == (n_pad,)
    c2, s2 = formats.unpack_int8(p)
    assert torch.equal(c2, codes) and torch.equal(s2, scales)


def test_int4_byte_layout():
    """Pins the documented v1 layout: byte (b, s, l, j) = q[16b+l, 8s+j] | q[16b+l, 8s+4+j] << 4."""
    n, k = 32, 64
    idx = torch.arange(n * k)
    codes = ((idx * 7 + idx // 13) % 16).to(torch.uint8).view(n, k)
    p = formats.pack_int4(codes, torch.ones(n, 1), None, -1)
    qw = p.qweight.view(n // 16, k // 8, 16, 4)
    for b, s, l, j in [(0, 0, 0, 0), (0, 0, 15, 3), (1, 3, 5, 2), (1, 7, 9, 1)]:
        row, col = 16 * b + l, 8 * s + j
        expect = int(codes[row, col]) | int(codes[row, col + 4]) << 4
        assert int(qw[b, s, l, j]) == expect, (b, s, l, j)


def test_int8_byte_layout():
    """Pins the documented v1 layout: byte (b, s, l, j) = q[16b+l, 4s+j]."""
    n, k = 32, 16
    codes = (torch.arange(n * k) % 255 - 127).to(torch.int8).view(n, k)
    p = formats.pack_int8(codes, torch.ones(n))
    qw = p.qweight.view(n // 16, k // 4, 16, 4)
    for b, s, l, j in [(0, 0, 0, 0), (0, 1, 15, 3), (1, 3, 7, 2)]:
        assert int(qw[b, s, l, j]) == int(codes[16 * b + l, 4 * s + j])


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("group_size", GROUPS)
@pytest.mark.parametrize("n,k", [(1, 33), (17, 100), (37, 200)])
def test_int4_padding_dequantizes_to_zero(n, k, group_size, symmetric):
    """Dequantizing the whole padded (n_pad, k_pad) tile gives exactly 0 outside (n, k)."""
    codes, scales, zeros = _random_int4(n, k, group_size, symmetric)
    scales = scales.abs() + 0.5  # no accidental zero scale inside the logical weight
    p = formats.pack_int4(codes, scales, zeros, group_size)
    for dequant in (reference.dequant_w4, ops.dequant_w4):
        full = dequant(p.qweight, p.scales, p.zeros, p.n_pad, p.k_pad)
        assert torch.all(full[n:] == 0) and torch.all(full[:, k:] == 0)
        assert torch.all(full[:n, :k] == dequant(p.qweight, p.scales, p.zeros, n, k))


@pytest.mark.parametrize("n,k", [(1, 33), (17, 101), (37, 200)])
def test_int8_padding_dequantizes_to_zero(n, k):
    g = torch.Generator().manual_seed(2)
    codes = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
    p = formats.pack_int8(codes, torch.rand(n, generator=g) + 0.5)
    for dequant in (reference.dequant_w8, ops.dequant_w8):
        full = dequant(p.qweight, p.scales, p.n_pad, p.k_pad)
        assert torch.all(full[n:] == 0) and torch.all(full[:, k:] == 0)


def test_formats_registry():
    assert formats.FORMATS["int4_tile16x8"] is formats.INT4_TILE16X8
    assert formats.FORMATS["int8_tile16x4"] is formats.INT8_TILE16X4
    assert str(formats.INT4_TILE16X8) == "int4_tile16x8/v1"
    assert str(formats.INT8_TILE16X4) == "int8_tile16x4/v1"


def test_int4_padding_values():
    assert formats.int4_padding(1, 33, -1) == (16, 64, 64)
    assert formats.int4_padding(17, 100, 64) == (32, 128, 64)
    assert formats.int4_padding(37, 200, 128) == (48, 256, 128)
    assert formats.int4_padding(16, 4096, 32) == (16, 4096, 32)


# ---- bad inputs -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [16, -1, 255])
def test_int4_codes_out_of_range(bad):
    codes = torch.zeros(4, 32, dtype=torch.int32)
    codes[1, 3] = bad
    with pytest.raises(ValueError, match="0..15"):
        formats.pack_int4(codes, torch.ones(4, 1), None, 32)


@pytest.mark.parametrize("group_size", [0, 16, 48, 100, -2])
def test_int4_bad_group_size(group_size):
    with pytest.raises(ValueError, match="group_size"):
        formats.pack_int4(torch.zeros(4, 64, dtype=torch.uint8), torch.ones(4, 1), None, group_size)
    with pytest.raises(ValueError, match="group_size"):
        formats.int4_padding(4, 64, group_size)


@pytest.mark.parametrize("shape", [(4, 3), (3, 2), (4, 1), (8,), (4, 2, 1)])
def test_int4_wrong_scales_shape(shape):
    """N=4, K=64 with group 32 needs scales of shape (4, 2)."""
    with pytest.raises(ValueError, match="scales must have shape"):
        formats.pack_int4(torch.zeros(4, 64, dtype=torch.uint8), torch.ones(shape), None, 32)


def test_int4_wrong_zeros_shape():
    with pytest.raises(ValueError, match="zeros must have shape"):
        formats.pack_int4(torch.zeros(4, 64, dtype=torch.uint8), torch.ones(4, 2),
                          torch.zeros(4, 1, dtype=torch.uint8), 32)


@pytest.mark.parametrize("q", [torch.zeros(64, dtype=torch.uint8), torch.zeros(2, 4, 64)])
def test_pack_not_2d(q):
    with pytest.raises(ValueError, match="2-D"):
        formats.pack_int4(q, torch.ones(4, 2), None, 32)
    with pytest.raises(ValueError, match="2-D"):
        formats.pack_int8(q.to(torch.int8), torch.ones(4))


def test_int4_empty_weight():
    with pytest.raises(ValueError, match="positive"):
        formats.pack_int4(torch.zeros(0, 32, dtype=torch.uint8), torch.ones(0, 1), None, 32)


@pytest.mark.parametrize("shape", [(3,), (5,), (4, 1)])
def test_int8_wrong_scales_shape(shape):
    with pytest.raises(ValueError, match="scales must have shape"):
        formats.pack_int8(torch.zeros(4, 8, dtype=torch.int8), torch.ones(shape))


def test_int4_zero_points_out_of_range():
    with pytest.raises(ValueError):
        formats.pack_int4(torch.zeros(1, 32, dtype=torch.uint8), torch.ones(1, 1),
                          torch.full((1, 1), 20, dtype=torch.uint8), 32)


def test_int4_non_integer_codes():
    with pytest.raises((ValueError, TypeError)):
        formats.pack_int4(torch.full((1, 32), 3.7), torch.ones(1, 1), None, 32)


def test_int8_codes_out_of_range():
    with pytest.raises(ValueError):
        formats.pack_int8(torch.tensor([[200, 0, 0, 0]], dtype=torch.int16), torch.ones(1))


# ---- 2:4 sparse formats ----------------------------------------------------------------------

@pytest.mark.parametrize("n,k,group", [(1, 33, 32), (17, 100, 64), (37, 256, 128), (300, 96, -1)])
def test_sp24_round_trips(n, k, group):
    from .ops.test_gemm_sp24 import sparse_mask

    mask = sparse_mask(n, k, seed=n)
    codes = torch.where(mask, torch.randint(0, 16, (n, k)), 8)
    _, k_pad, g = formats.int4_padding(n, k, group)
    scales = torch.rand(n, k_pad // g)
    p = formats.pack_int4_sp24(codes, scales, group)
    assert p.qweight.shape == (p.n_pad // 16, k_pad // 32 * 192) and p.k_pad == k_pad
    back, s = formats.unpack_int4_sp24(p)
    assert torch.equal(back.long(), codes.long()) and torch.equal(s, scales)
    w = torch.randn(n, k) * mask
    ps = formats.pack_sp24(w)
    assert ps.packed.shape == (ps.n_pad // 16, (k + 31) // 32 * 18 * 32)
    assert torch.equal(formats.unpack_sp24(ps), w.bfloat16().float())


def test_sp24_mask_tops_up_to_two_slots():
    nz = torch.tensor([[1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0]], dtype=torch.bool)
    keep = formats.sp24_mask(nz)
    assert keep.tolist() == [[1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0]]
    assert bool((keep | ~nz).all())  # every nonzero is kept


def test_sp24_rejects_dense_groups():
    w = torch.zeros(3, 8)
    w[2, 4:7] = 1.0
    with pytest.raises(ValueError, match="row 2, columns 4..7 keep more than 2 of 4"):
        formats.pack_sp24(w)
    with pytest.raises(ValueError, match="not 2:4 sparse"):
        formats.pack_int4_sp24(torch.where(w > 0, 3, 8), torch.ones(3, 1), 32)
