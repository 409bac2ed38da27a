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


# ---- CUDA device layouts int4_cuda_mma16x32 / int8_cuda_mma16x32 ------------------------------
# Pure permutations of the canonical codes (CPU-testable). The expected words below are derived
# from the layout as documented in llmaccel/formats/cuda.py, independently of its code.

CUDA_SHAPES = [(1, 33), (17, 100), (37, 200), (72, 264), (100, 1000), (16, 32), (5, 4096)]
# int4_cuda_mma16x32 word: nibble i holds (row r + 8*h, column k0 + kk) for i -> (h, kk)
INT4_CUDA_NIBBLE = {0: (0, 0), 4: (0, 1), 1: (1, 0), 5: (1, 1),
                    2: (0, 2), 6: (0, 3), 3: (1, 2), 7: (1, 3)}


def _tile16x8_grid(qweight):
    """All (n_pad, k_pad) codes of an int4_tile16x8 qweight, padding included, read by its
    documented byte layout: byte (b, s, l, j) = q[16b+l, 8s+j] | q[16b+l, 8s+4+j] << 4."""
    nb, k_pad = qweight.shape[0], qweight.shape[1] // 8
    byte = qweight.view(nb, k_pad // 8, 16, 4).long()
    grid = torch.empty(nb, 16, k_pad // 8, 8, dtype=torch.long)
    grid[..., :4] = (byte & 15).permute(0, 2, 1, 3)
    grid[..., 4:] = (byte >> 4).permute(0, 2, 1, 3)
    return grid.reshape(nb * 16, k_pad)


def _tile16x4_grid(qweight):
    """All (n_pad, k_pad) codes of an int8_tile16x4 qweight: byte (b, s, l, j) = q[16b+l, 4s+j]."""
    nb, k_pad = qweight.shape[0], qweight.shape[1] // 16
    return qweight.view(nb, k_pad // 4, 16, 4).permute(0, 2, 1, 3).reshape(nb * 16, k_pad).long()


def _u32(words):
    return words.long() & 0xFFFFFFFF


def _packed_int8(n, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(-128, 128, (n, k), generator=g, dtype=torch.int8)
    return formats.pack_int8(codes, torch.rand(n, generator=g) + 0.5)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("group_size", GROUPS)
@pytest.mark.parametrize("n,k", CUDA_SHAPES)
def test_cuda_int4_layout_round_trip(n, k, group_size, symmetric):
    p = formats.pack_int4(*_random_int4(n, k, group_size, symmetric, seed=n + k), group_size)
    words = formats.to_cuda_int4(p.qweight)
    assert words.dtype == torch.int32 and words.is_contiguous()
    assert words.shape == (p.n_pad // 16, p.k_pad // 32, 32, 2)
    back = formats.from_cuda_int4(words)
    assert back.dtype == torch.uint8 and back.shape == p.qweight.shape and back.is_contiguous()
    assert torch.equal(back, p.qweight)  # padding nibbles included


@pytest.mark.parametrize("n,k", CUDA_SHAPES + [(3, 1), (16, 128)])
def test_cuda_int8_layout_round_trip(n, k):
    p = _packed_int8(n, k, seed=n + k)
    words = formats.to_cuda_int8(p.qweight)
    nc = (p.k_pad + 31) // 32
    assert words.dtype == torch.int32 and words.is_contiguous()
    assert words.shape == (p.n_pad // 16, nc, 32, 4)
    back = formats.from_cuda_int8(words, p.k_pad)
    assert back.dtype == torch.int8 and back.shape == p.qweight.shape and back.is_contiguous()
    assert torch.equal(back, p.qweight)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("n,k,group_size", [(37, 200, 64), (100, 1000, 128), (16, 32, -1)])
def test_cuda_int4_layout_every_nibble(n, k, group_size, symmetric):
    """Every nibble of every word against the documented table: word (t, c, l = 4r + j, s),
    k0 = 32c + 8j + 4s, nibble i holds code (16t + r + 8h, k0 + kk), (h, kk) = table[i]."""
    p = formats.pack_int4(*_random_int4(n, k, group_size, symmetric, seed=3), group_size)
    grid = _tile16x8_grid(p.qweight)
    words = _u32(formats.to_cuda_int4(p.qweight))
    nb, nc = words.shape[:2]
    t, c, lane, s = torch.meshgrid(torch.arange(nb), torch.arange(nc), torch.arange(32),
                                   torch.arange(2), indexing="ij")
    r, j = lane // 4, lane % 4
    k0 = 32 * c + 8 * j + 4 * s
    for i, (h, kk) in INT4_CUDA_NIBBLE.items():
        got = (words >> (4 * i)) & 15
        assert torch.equal(got, grid[16 * t + r + 8 * h, k0 + kk]), f"nibble {i}"


def test_cuda_int4_layout_is_mma_a_fragment():
    """(word >> 4p) & 0x000F000F is mma.m16n8k16's A register p (elements a[2p], a[2p+1]) of lane
    l = 4g + j for the k16 step s of chunk c: element a sits at row g + 8 * ((a // 2) % 2) and
    k-slot 2j + a % 2 + 8 * (a // 4), and lane l's k-slots 2j, 2j+1, 2j+8, 2j+9 stand for
    columns k0 .. k0 + 3, k0 = 32c + 8j + 4s."""
    n, k = 48, 96
    idx = torch.arange(n * k)
    codes = ((idx * 7 + idx // 11) % 16).to(torch.uint8).view(n, k)
    p = formats.pack_int4(codes, torch.ones(n, 1), None, -1)
    words = _u32(formats.to_cuda_int4(p.qweight))
    for t, c, lane, s in [(0, 0, 0, 0), (0, 0, 31, 1), (1, 2, 13, 1), (2, 1, 6, 0), (2, 2, 27, 1)]:
        g, j = lane // 4, lane % 4
        slot_to_col = {2 * j: 0, 2 * j + 1: 1, 2 * j + 8: 2, 2 * j + 9: 3}
        word = int(words[t, c, lane, s])
        for p_reg in range(4):
            pair = (word >> (4 * p_reg)) & 0x000F000F
            for half in range(2):
                a = 2 * p_reg + half
                row = 16 * t + g + 8 * ((a // 2) % 2)
                col = 32 * c + 8 * j + 4 * s + slot_to_col[2 * j + a % 2 + 8 * (a // 4)]
                assert (pair >> (16 * half)) & 15 == int(codes[row, col]), (t, c, lane, s, a)


def test_cuda_int4_layout_explicit_positions():
    """A few hand-computed positions: word (t=1, c=2, lane 13 = 4*3 + 1, s=1) has k0 = 64 + 8 + 4
    = 76; nibble 0 is (16+3, 76), 5 is (16+3+8, 77), 6 is (16+3, 79), 3 is (16+3+8, 78).
    Word (0, 0, 0, 0): nibble 0 is (0, 0), 1 is (8, 0), 2 is (0, 2), 7 is (8, 3)."""
    n, k = 32, 96
    idx = torch.arange(n * k)
    codes = ((idx * 5 + idx // 7) % 16).to(torch.uint8).view(n, k)
    p = formats.pack_int4(codes, torch.ones(n, 1), None, -1)
    words = _u32(formats.to_cuda_int4(p.qweight))

    def nib(w, i):
        return (int(w) >> (4 * i)) & 15

    w = words[1, 2, 13, 1]
    assert nib(w, 0) == codes[19, 76] and nib(w, 5) == codes[27, 77]
    assert nib(w, 6) == codes[19, 79] and nib(w, 3) == codes[27, 78]
    w = words[0, 0, 0, 0]
    assert nib(w, 0) == codes[0, 0] and nib(w, 1) == codes[8, 0]
    assert nib(w, 2) == codes[0, 2] and nib(w, 7) == codes[8, 3]


@pytest.mark.parametrize("n,k", [(17, 33), (37, 200), (100, 1000), (16, 128)])
def test_cuda_int8_layout_every_byte(n, k):
    """Every byte against the documented layout: lane l = 4r + j of chunk c holds, little-endian
    and signed, word 0: row r, columns 32c + 8j + 0..3; word 1: row r + 8, the same columns;
    word 2: row r, 32c + 8j + 4..7; word 3: row r + 8, the same. Columns past k_pad are 0."""
    p = _packed_int8(n, k, seed=k)
    grid = _tile16x4_grid(p.qweight)
    words = _u32(formats.to_cuda_int8(p.qweight))
    nb, nc = words.shape[:2]
    full = torch.zeros(nb * 16, nc * 32, dtype=torch.long)
    full[:, :p.k_pad] = grid
    t, c, lane = torch.meshgrid(torch.arange(nb), torch.arange(nc), torch.arange(32),
                                indexing="ij")
    r, j = lane // 4, lane % 4
    for w in range(4):
        for b in range(4):
            byte = (words[..., w] >> (8 * b)) & 255
            signed = torch.where(byte >= 128, byte - 256, byte)
            expect = full[16 * t + r + 8 * (w % 2), 32 * c + 8 * j + 4 * (w // 2) + b]
            assert torch.equal(signed, expect), f"word {w} byte {b}"


def test_cuda_int8_layout_explicit_positions():
    """Lane 13 = 4*3 + 1 of chunk 1 in row tile 1: word 0 byte 2 is (16+3, 32+8+2), word 3 byte 1
    is (16+3+8, 32+8+4+1); lane 0 of chunk 0: word 1 byte 0 is (8, 0), word 2 byte 3 is (0, 7)."""
    n, k = 32, 64
    codes = (torch.arange(n * k) % 251 - 125).to(torch.int8).view(n, k)
    p = formats.pack_int8(codes, torch.ones(n))
    words = _u32(formats.to_cuda_int8(p.qweight))

    def byte(w, b):
        v = (int(w) >> (8 * b)) & 255
        return v - 256 if v >= 128 else v

    assert byte(words[1, 1, 13, 0], 2) == codes[19, 42]
    assert byte(words[1, 1, 13, 3], 1) == codes[27, 45]
    assert byte(words[0, 0, 0, 1], 0) == codes[8, 0]
    assert byte(words[0, 0, 0, 2], 3) == codes[0, 7]


@pytest.mark.parametrize("n,k,group", [(1, 33, 32), (17, 100, 64), (37, 256, 128), (300, 96, -1),
                                       (40, 1000, 96)])
def test_cuda_int4_sp24_layout(n, k, group):
    """A 2:4 int4 weight goes to the GPU as the dense int4 layout of the same codes (8 where
    pruned), read with the same scales tensor, and comes back to the same 2:4 bytes."""
    from .ops.test_gemm_sp24 import sparse_mask

    mask = sparse_mask(n, k, seed=n + k)
    codes = torch.where(mask, torch.randint(0, 16, (n, k)), 8).to(torch.uint8)
    _, k_pad, g = formats.int4_padding(n, k, group)
    scales = torch.rand(n, k_pad // g) - 0.5
    p = formats.pack_int4_sp24(codes, scales, group)
    words = formats.to_cuda_int4_sp24(p)
    dense = formats.pack_int4(codes, scales, None, group)
    assert torch.equal(words, formats.to_cuda_int4(dense.qweight))
    assert torch.equal(p.scales, dense.scales)  # one scales tensor serves both layouts
    back = formats.from_cuda_int4_sp24(words, p.scales, n, k)
    assert back.dtype == torch.uint8 and torch.equal(back, p.qweight)
    assert torch.equal(ops.dequant_w4(formats.from_cuda_int4(words), p.scales, None, n, k),
                       ops.dequant_w4_sp24(p.qweight, p.scales, n, k))


def test_cuda_int4_sp24_layout_rejects_dense_codes():
    codes = torch.full((16, 64), 8, dtype=torch.uint8)
    codes[3, 4:7] = 1  # three of four kept
    words = formats.to_cuda_int4(formats.pack_int4(codes, torch.ones(16, 1), None, 64).qweight)
    with pytest.raises(ValueError, match="not 2:4 sparse"):
        formats.from_cuda_int4_sp24(words, torch.ones(1, 1, 16), 16, 64)


def test_cuda_layout_bad_inputs():
    p4 = formats.pack_int4(*_random_int4(17, 100, 64, False), 64)
    p8 = _packed_int8(17, 100)
    w4, w8 = formats.to_cuda_int4(p4.qweight), formats.to_cuda_int8(p8.qweight)
    for bad in (p4.qweight.view(torch.int8), p4.qweight.flatten(), p4.qweight[:, :200],
                p4.qweight.view(2, 1, -1), w4, p8.qweight):
        with pytest.raises(ValueError, match="int4_tile16x8"):
            formats.to_cuda_int4(bad)
    for bad in (p4.qweight, w4.to(torch.int64), w4.view(torch.float32), w4.view(2, -1, 32, 4),
                w4.view(2, -1, 16, 4), w4.view(2, -1, 64), w8):
        with pytest.raises(ValueError, match="int4_cuda_mma16x32"):
            formats.from_cuda_int4(bad)
    for bad in (p8.qweight.view(torch.uint8), p8.qweight.flatten(), p8.qweight[:, :100],
                p8.qweight.view(2, 1, -1), w8, p4.qweight):
        with pytest.raises(ValueError, match="int8_tile16x4"):
            formats.to_cuda_int8(bad)
    for bad in (p8.qweight, w8.to(torch.int64), w8.view(torch.float32), w8.view(2, -1, 32, 2),
                w8.view(2, -1, 128), w4):
        with pytest.raises(ValueError, match="int8_cuda_mma16x32"):
            formats.from_cuda_int8(bad, p8.k_pad)
    # k_pad must be a multiple of 4 that the words' ceil(k_pad/32) chunks hold: 4 chunks here.
    assert w8.shape[1] == 4 and p8.k_pad == 100
    formats.from_cuda_int8(w8, 128)
    for k_pad in (96, 101, 132, 0):
        with pytest.raises(ValueError, match="int8_cuda_mma16x32"):
            formats.from_cuda_int8(w8, k_pad)
