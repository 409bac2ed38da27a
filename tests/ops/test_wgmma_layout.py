"""The operand layouts of the opt-in wgmma GEMMs (csrc/gemm/gemm_wgmma.cuh, gemm_w8a8_wgmma.cuh,
gemm_w4a16_wgmma.cu and gemm_wgmma_xtiles.h), checked on the CPU: these run without a GPU.

The kernels rest on facts no GPU test can isolate: which weight and which x column each MMA k
index pairs, where each accumulator lands, and what the shared-memory descriptor reads. Each is
derived here from a source independent of the kernels' own index arithmetic:

* the register layouts of wgmma from CUTLASS's published CuTe layouts
  (cute/atom/mma_traits_sm90_gmma.hpp: ALayout_64x32 for 8-bit A, ALayout_64x16 for 16-bit A,
  CLayout_64xN for the accumulators), transcribed as shapes and strides and evaluated by
  ``_cute_eval``;
* the weight bytes from ``formats.to_cuda_int8`` / ``to_cuda_int4`` (the layouts the kernels
  read), and for int4 the nibble → register order of the swapped kernel's dequant_w4_step
  (gemm_swapab.cuh: register p takes nibbles p and p + 4 of its word);
* the shared-memory read from the PTX rule for a K-major, 128-byte-swizzled operand (address bits
  4-6 XOR bits 7-9, 8-row groups 1024 bytes apart, the start advanced 32 bytes per k step);

and an emulated kernel then multiplies through them to the exact integer product.
``x_tile_image`` / ``x_tile_image_16`` are the Python twins of quant_act_int8_tiles and
x_tiles_16bit (the GPU tests compare against them).
"""

import itertools

import torch

from llmaccel import formats

from ..helpers import make_w8

X_ROWS, X_K = 256, 128  # gemm_wgmma_xtiles.h: kWgXRows, kWgRowBytes


def _cute_eval(shape, stride, coord):
    """CuTe layout (flat tuples) at a flat coordinate, first mode fastest."""
    idx = 0
    for extent, step in zip(shape, stride):
        idx += (coord % extent) * step
        coord //= extent
    return idx


def a_fragment_mk(warp, lane, reg, byte):
    """ALayout_64x32 (8-bit A of m64nNk32): (thread, value) → (m, k) of the 64×32 A tile."""
    thread = warp * 32 + lane
    t_part = _cute_eval((4, 8, 4), (256, 1, 16), thread)
    v_part = _cute_eval((4, 2, 2), (64, 8, 1024), reg * 4 + byte)
    idx = t_part + v_part
    return idx % 64, idx // 64


def a16_fragment_mk(warp, lane, reg, half):
    """ALayout_64x16 (16-bit A of m64nNk16, = CLayout_64x16): (thread, value) → (m, k)."""
    thread = warp * 32 + lane
    idx = (_cute_eval((4, 8, 4), (128, 1, 16), thread)
           + _cute_eval((2, 2, 2), (64, 8, 512), reg * 2 + half))
    return idx % 64, idx // 64


def c_fragment_mn(warp, lane, value, n):
    """CLayout_64xN: (thread, accumulator index) → (m, n) of the 64×N accumulator tile."""
    thread = warp * 32 + lane
    idx = (_cute_eval((4, 8, 4), (128, 1, 16), thread)
           + _cute_eval((2, 2, n // 8), (64, 8, 512), value))
    return idx % 64, idx // 64


def x_tile_image(q: torch.Tensor, kt_count: int) -> torch.Tensor:
    """Quantized x (m, k) int8 → the kernel's image: (ceil(m/256) · kt_count) blocks of 256
    rows × 128 bytes, columns permuted within each 32-column chunk (8t + 4s + b → 4t + 16s + b),
    16-byte pieces of row r XOR-swizzled by r % 8, zero padding (rows included: the kernels'
    own writers may leave the padding rows, which meet only outputs never stored)."""
    m, k = q.shape
    xb = -(-m // X_ROWS)
    full = torch.zeros(xb * X_ROWS, kt_count * X_K, dtype=torch.int8)
    full[:m, :k] = q
    c = torch.arange(X_K)
    pos = (c & ~31) | ((c >> 3 & 3) << 2) | ((c >> 2 & 1) << 4) | (c & 3)
    blocks = full.view(xb, X_ROWS, kt_count, X_K).permute(0, 2, 1, 3)  # (xb, kt, row, col)
    permuted = torch.empty(blocks.shape, dtype=torch.int8)
    permuted[..., pos] = blocks
    r = torch.arange(X_ROWS).view(-1, 1)
    piece = torch.arange(X_K).view(1, -1) >> 4
    phys = ((piece ^ (r & 7)) << 4) | (torch.arange(X_K).view(1, -1) & 15)  # (row, col)
    out = torch.empty(xb, kt_count, X_ROWS * X_K, dtype=torch.int8)
    out[..., (r * X_K + phys).flatten()] = permuted.reshape(xb, kt_count, X_ROWS * X_K)
    return out.reshape(-1)


def x_tile_image_16(x: torch.Tensor, kt_count: int) -> torch.Tensor:
    """16-bit x (m, k) (as int16) → x_tiles_16bit's image, as int16 elements: blocks of 256 rows
    × 64 columns, column 8t + 4s + 2h + e of each 32-column chunk at element 16s + 8h + 2t + e,
    16-byte pieces (8 elements) of row r XOR-swizzled by r % 8, zero padding (x_tiles_16bit
    leaves the padding rows unwritten: they meet only outputs never stored)."""
    m, k = x.shape
    xb = -(-m // X_ROWS)
    full = torch.zeros(xb * X_ROWS, kt_count * 64, dtype=torch.int16)
    full[:m, :k] = x
    c = torch.arange(64)
    pos = (c & ~31) | ((c >> 2 & 1) << 4) | ((c >> 1 & 1) << 3) | ((c >> 3 & 3) << 1) | (c & 1)
    blocks = full.view(xb, X_ROWS, kt_count, 64).permute(0, 2, 1, 3)
    permuted = torch.empty(blocks.shape, dtype=torch.int16)
    permuted[..., pos] = blocks
    r = torch.arange(X_ROWS).view(-1, 1)
    e = torch.arange(64).view(1, -1)
    phys = (((e >> 3) ^ (r & 7)) << 3) | (e & 7)
    out = torch.empty(xb, kt_count, X_ROWS * 64, dtype=torch.int16)
    out[..., (r * 64 + phys).flatten()] = permuted.reshape(xb, kt_count, X_ROWS * 64)
    return out.reshape(-1)


def smem_b_read(stage: torch.Tensor, j: int) -> torch.Tensor:
    """What wgmma reads as B (256 rows × 32 k) from a 1024-byte-aligned 32 KB stage with the
    descriptor start advanced 32·j bytes: row n, k byte kk at logical address 32j + (n // 8)·1024
    + (n % 8)·128 + kk, physical address = logical with bits 4-6 XOR bits 7-9."""
    n = torch.arange(X_ROWS).view(-1, 1)
    kk = torch.arange(32).view(1, -1)
    logical = 32 * j + (n // 8) * 1024 + (n % 8) * 128 + kk
    physical = logical ^ (((logical >> 7) & 7) << 4)
    return stage[physical]


def test_weight_bytes_are_the_wgmma_a_fragment():
    """Lane (g, t)'s 16 bytes of an int8_cuda_mma16x32 chunk, read as ALayout_64x32's registers,
    hold weight row (tile·16 + m) at the column the x image pairs with MMA k index kk."""
    n, k = 64, 96
    p = make_w8(n, k, seed=3, source="codes")
    codes, _ = formats.unpack_int8(p)
    words = formats.to_cuda_int8(p.qweight).view(torch.int8).view(n // 16, -1, 32, 16)
    for tile, chunk, lane, reg, byte in itertools.product(range(4), range(3), range(32),
                                                          range(4), range(4)):
        m, kk = a_fragment_mk(tile, lane, reg, byte)
        assert m // 16 == tile  # warp w of the warpgroup holds A rows 16w .. 16w+15
        col = chunk * 32 + (kk >> 2 & 3) * 8 + (kk >> 4) * 4 + (kk & 3)  # MMA k → x column
        assert words[tile, chunk, lane, reg * 4 + byte] == codes[m, col], (tile, lane, reg)


def test_image_swizzle_is_what_the_descriptor_reads():
    """B as the descriptor reads it, per k32 step, is x's 32 columns in MMA-k order."""
    g = torch.Generator().manual_seed(0)
    m, k = 300, 200
    q = torch.randint(-127, 128, (m, k), generator=g, dtype=torch.int8)
    kt_count = -(-k // X_K)
    image = x_tile_image(q, kt_count)
    padded = torch.zeros(2 * X_ROWS, kt_count * X_K, dtype=torch.int8)
    padded[:m, :k] = q
    kk = torch.arange(32)
    cols = (kk >> 2 & 3) * 8 + (kk >> 4) * 4 + (kk & 3)
    for xb, kt, j in itertools.product(range(2), range(kt_count), range(4)):
        stage = image[(xb * kt_count + kt) * X_ROWS * X_K:][:X_ROWS * X_K]
        want = padded[xb * X_ROWS:(xb + 1) * X_ROWS, kt * X_K + 32 * j + cols]
        assert torch.equal(smem_b_read(stage, j), want), (xb, kt, j)


def test_emulated_kernel_gives_the_exact_product():
    """The kernel's loop (k tiles, four k32 steps, A from the weight bytes, B through the
    descriptor) and its epilogue's accumulator → (output, x row) mapping give Q · xqᵀ exactly."""
    g = torch.Generator().manual_seed(1)
    n, k, m = 128, 160, 256 + 40  # 2 warpgroups × 64 outputs; a partial k tile; 2 x blocks
    p = make_w8(n, k, seed=5, source="codes")
    codes, _ = formats.unpack_int8(p)
    q = torch.randint(-127, 128, (m, k), generator=g, dtype=torch.int8)
    nk = -(-k // 32)
    kt_count = -(-nk // 4)
    words = formats.to_cuda_int8(p.qweight).view(torch.int8).view(n // 16, nk, 32, 16)
    image = x_tile_image(q, kt_count)
    want = codes[:n, :k].long() @ q.long().T  # (n, m)
    got = torch.full((n, m), -(1 << 40), dtype=torch.long)
    for wg, xb in itertools.product(range(2), range(2)):
        acc = torch.zeros(64, X_ROWS, dtype=torch.long)  # the warpgroup's 64 × 256 (rows, x rows)
        for kt, j in itertools.product(range(kt_count), range(4)):
            chunk = kt * 4 + j
            a = torch.zeros(64, 32, dtype=torch.long)
            if chunk < nk:  # chunks past nk: stale bytes in the kernel, times x's zero columns
                for w, lane, reg, byte in itertools.product(range(4), range(32), range(4),
                                                            range(4)):
                    mm, kk = a_fragment_mk(w, lane, reg, byte)
                    a[mm, kk] = int(words[wg * 4 + w, chunk, lane, reg * 4 + byte])
            stage = image[(xb * kt_count + kt) * X_ROWS * X_K:][:X_ROWS * X_K]
            acc += a @ smem_b_read(stage, j).long().T
        for w, lane, value in itertools.product(range(4), range(32), range(128)):
            mm, nn = c_fragment_mn(w, lane, value, X_ROWS)
            gq, t, i, e = lane >> 2, lane & 3, value // 4, value % 4
            # the epilogue's reading of acc[value]: output row 16w + g (+8 for e ≥ 2), x row
            # 8i + 2t + (e & 1)
            assert (mm, nn) == (16 * w + gq + 8 * (e >> 1), 8 * i + 2 * t + (e & 1))
            x_row = xb * X_ROWS + nn
            if x_row < m:
                got[wg * 64 + mm, x_row] = acc[mm, nn]
    assert torch.equal(got, want)


# ---- gemm_w4a16: int4 weights dequantized into 16-bit A fragments, 16-bit x ----------------------

def _int4_nibble(word: int, reg: int, half: int) -> int:
    """dequant_w4_step's input of register `reg`, element `half`: nibble reg + 4·half."""
    return (word >> (4 * (reg + 4 * half))) & 15


def _col16(chunk: int, step: int, kk: int) -> int:
    """The x column that MMA k index kk of k16 step `step` of a chunk pairs with."""
    t, e, h = (kk >> 1) & 3, kk & 1, kk >> 3
    return chunk * 32 + 8 * t + 4 * step + 2 * h + e


def test_int4_words_are_the_wgmma_a16_fragment():
    """Lane (g, t)'s word for k16 step s of an int4_cuda_mma16x32 chunk, dequantized register by
    register, holds ALayout_64x16's (m, k) weights at the columns x's image pairs them with."""
    n, k = 64, 96
    p = formats.pack_int4(torch.randint(0, 16, (n, k), generator=torch.Generator().manual_seed(2),
                                        dtype=torch.uint8), torch.ones(n, 3), None, 32)
    codes, _, _ = formats.unpack_int4(p)
    words = formats.to_cuda_int4(p.qweight).view(n // 16, 3, 32, 2)
    for tile, chunk, lane, step, reg, half in itertools.product(
            range(4), range(3), range(32), range(2), range(4), range(2)):
        m, kk = a16_fragment_mk(tile, lane, reg, half)
        assert m // 16 == tile
        word = int(words[tile, chunk, lane, step]) & 0xFFFFFFFF
        assert _int4_nibble(word, reg, half) == codes[m, _col16(chunk, step, kk)], (tile, lane)


def test_image_16_is_what_the_descriptor_reads():
    """B as the descriptor reads it per k16 step j (chunk j // 2, step j % 2) of a 64-column
    block: 16 elements (32 bytes) per row, x's columns in MMA-k order."""
    g = torch.Generator().manual_seed(4)
    m, k = 300, 104
    x = torch.randint(-30000, 30000, (m, k), generator=g, dtype=torch.int16)
    kt_count = -(-k // 64)
    image = x_tile_image_16(x, kt_count).view(torch.uint8)
    padded = torch.zeros(2 * X_ROWS, kt_count * 64, dtype=torch.int16)
    padded[:m, :k] = x
    for xb, kt, j in itertools.product(range(2), range(kt_count), range(4)):
        stage = image[(xb * kt_count + kt) * X_ROWS * X_K:][:X_ROWS * X_K]
        got = smem_b_read(stage, j).contiguous().view(torch.int16)  # (256, 16)
        cols = [kt * 64 + _col16(j // 2, j % 2, kk) for kk in range(16)]
        assert torch.equal(got, padded[xb * X_ROWS:(xb + 1) * X_ROWS, cols]), (xb, kt, j)


def test_emulated_w4a16_kernel_gives_the_exact_product():
    """gemm_w4a16_wgmma's loop (64-column stages, two chunks of two k16 steps, A from the
    dequantized words) with codes as weights gives codes · xᵀ exactly."""
    g = torch.Generator().manual_seed(6)
    n, k, m = 128, 96, 260  # a partial last stage (3 chunks in 2 stages); 2 x blocks
    codes = torch.randint(0, 16, (n, k), generator=g, dtype=torch.uint8)
    p = formats.pack_int4(codes, torch.ones(n, 3), None, 32)
    x = torch.randint(-50, 50, (m, k), generator=g, dtype=torch.int16)
    nk = 3
    kt_count = -(-nk // 2)
    words = formats.to_cuda_int4(p.qweight).view(n // 16, nk, 32, 2)
    image = x_tile_image_16(x, kt_count).view(torch.uint8)
    want = codes.long() @ x.long().T
    got = torch.full((n, m), -(1 << 40), dtype=torch.long)
    for wg, xb in itertools.product(range(2), range(2)):
        acc = torch.zeros(64, X_ROWS, dtype=torch.long)
        for kt, j in itertools.product(range(kt_count), range(4)):
            chunk, step = kt * 2 + j // 2, j % 2
            a = torch.zeros(64, 16, dtype=torch.long)
            if chunk < nk:
                for w, lane, reg, half in itertools.product(range(4), range(32), range(4),
                                                            range(2)):
                    mm, kk = a16_fragment_mk(w, lane, reg, half)
                    word = int(words[wg * 4 + w, chunk, lane, step]) & 0xFFFFFFFF
                    a[mm, kk] = _int4_nibble(word, reg, half)
            stage = image[(xb * kt_count + kt) * X_ROWS * X_K:][:X_ROWS * X_K]
            b = smem_b_read(stage, j).contiguous().view(torch.int16).long()  # (256, 16)
            acc += a @ b.T
        rows = min(X_ROWS, m - xb * X_ROWS)
        got[wg * 64:(wg + 1) * 64, xb * X_ROWS:xb * X_ROWS + rows] = acc[:, :rows]
    assert torch.equal(got, want)
