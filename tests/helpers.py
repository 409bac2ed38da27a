"""Test helpers: factories for packed weights and activations, and float32 error bounds.

Weights come either from the RTN quantizers (realistic: each group's extreme weight on the grid)
or from uniformly random codes, scales and zero points (every code value, every zero point).
"""

from __future__ import annotations

import torch

from llmaccel import formats, quantizers


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_x(shape, dtype=torch.float32, seed=0) -> torch.Tensor:
    """Gaussian activations of the given shape and dtype."""
    return torch.randn(*shape, generator=_gen(seed)).to(dtype)


def make_w4(n: int, k: int, group_size: int, symmetric: bool, seed: int = 0,
            source: str = "rtn") -> formats.PackedInt4:
    """A packed int4_tile16x8 weight.

    source 'rtn': RTN-quantize a Gaussian (n, k) weight; 'codes': uniform random codes 0..15,
    scales in [0.5, 1.5) / 16 and (asymmetric) uniform zero points 0..15.
    """
    g = _gen(seed)
    if source == "rtn":
        w = torch.randn(n, k, generator=g)
        codes, scales, zeros = quantizers.quantize_int4(w, group_size, symmetric)
    elif source == "codes":
        _, k_pad, gs = formats.int4_padding(n, k, group_size)
        n_groups = k_pad // gs
        codes = torch.randint(0, 16, (n, k), generator=g, dtype=torch.uint8)
        scales = (torch.rand(n, n_groups, generator=g) + 0.5) / 16
        zeros = (None if symmetric
                 else torch.randint(0, 16, (n, n_groups), generator=g, dtype=torch.uint8))
    else:
        raise ValueError(source)
    return formats.pack_int4(codes, scales, zeros, group_size)


def make_w8(n: int, k: int, seed: int = 0, source: str = "rtn") -> formats.PackedInt8:
    """A packed int8_tile16x4 weight from RTN of a Gaussian weight or from random codes."""
    g = _gen(seed)
    if source == "rtn":
        codes, scales = quantizers.quantize_int8(torch.randn(n, k, generator=g))
    elif source == "codes":
        codes = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
        scales = (torch.rand(n, generator=g) + 0.5) / 128
    else:
        raise ValueError(source)
    return formats.pack_int8(codes, scales)


def make_bias(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=_gen(seed + 1000))


def x_like(layout: str, m: int, k: int, dtype=torch.float32, seed=0) -> torch.Tensor:
    """Activations with m rows in a given memory layout (values independent of the layout).

    '2d': contiguous (m, k); 'col_slice': x[:, 3:3+k] of a wider tensor (row stride > k);
    'transposed': a (k, m) tensor's .t() (column stride m); '3d': (2, m, k) contiguous, a
    leading batch dim; '3d_slice': a (2, m, k+5)[..., :k] slice; '1d': (k,), m ignored.
    """
    if layout == "2d":
        return make_x((m, k), dtype, seed)
    if layout == "col_slice":
        return make_x((m, k + 7), dtype, seed)[:, 3:3 + k]
    if layout == "transposed":
        return make_x((k, m), dtype, seed).t()
    if layout == "3d":
        return make_x((2, m, k), dtype, seed)
    if layout == "3d_slice":
        return make_x((2, m, k + 5), dtype, seed)[..., :k]
    if layout == "1d":
        return make_x((k,), dtype, seed)
    raise ValueError(layout)


# ---- float32 error bounds ----------------------------------------------------------------------

U32 = 2.0 ** -24  # unit roundoff of float32, round to nearest


def gamma(n: int) -> float:
    """Higham's gamma_n = n*u / (1 - n*u): if every term of a sum of products passes through at
    most n float32 roundings (products, additions in any order, scalings), the result differs from
    the exact value by at most gamma_n * sum(|terms|)."""
    return n * U32 / (1 - n * U32)


def bf16_ulp(v: torch.Tensor) -> torch.Tensor:
    """Spacing of bfloat16 numbers at |v| (8 significant bits): one rounding step of the output."""
    v = v.double().abs()
    _, e = torch.frexp(v)  # |v| = mant * 2**e, mant in [0.5, 1)
    ulp = torch.ldexp(torch.ones_like(v), e - 8)
    return torch.where(v > 0, ulp, torch.full_like(v, 2.0 ** -133))


def assert_within(actual: torch.Tensor, expected: torch.Tensor, bound, what: str = "") -> None:
    """Elementwise |actual - expected| <= bound (a tensor broadcastable to them, or a float)."""
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err = (actual.double() - expected.double()).abs()
    bound = torch.as_tensor(bound, dtype=torch.float64).expand_as(err)
    bad = ~(err <= bound)  # NaN counts as bad
    if bad.any():
        ratio = torch.where(bad, (err / bound.clamp_min(1e-300)).nan_to_num(float("inf")), 0)
        i = int(ratio.flatten().argmax())
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.numel()} elements outside the bound; worst at flat "
            f"index {i}: actual {actual.flatten()[i].item()!r}, expected "
            f"{expected.flatten()[i].item()!r}, |err| {err.flatten()[i].item():.3g} > bound "
            f"{bound.flatten()[i].item():.3g}")


# ---- exact (float64) values of what the ops compute ---------------------------------------------

def w4_exact(p: formats.PackedInt4) -> torch.Tensor:
    """(q - zero) * scale in float64, (N, K): exact (a 5-bit integer times a float32)."""
    codes, s, z = formats.unpack_int4(p)
    zero = torch.full_like(s, 8.0) if z is None else z.float()
    g = p.group_size
    return ((codes.double() - zero.double().repeat_interleave(g, 1)[:, :p.k])
            * s.double().repeat_interleave(g, 1)[:, :p.k])


def w8_exact(p: formats.PackedInt8) -> torch.Tensor:
    q, s = formats.unpack_int8(p)
    return q.double() * s.double()[:, None]


def float_gemm_exact(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None):
    """(y, A) in float64 for x (..., K) and an exact weight w (N, K): y = x w^T + b and the
    magnitude A = |x| |w|^T + |b| that float32 rounding errors scale with. Shapes (M, N)."""
    x2 = x.reshape(-1, x.shape[-1]).double()
    y, a = x2 @ w.t(), x2.abs() @ w.abs().t()
    if bias is not None:
        y, a = y + bias.double(), a + bias.double().abs()
    return y, a


def w4a8_exact(x: torch.Tensor, p: formats.PackedInt4, bias: torch.Tensor | None, xq):
    """(y, A) for gemm_w4a8 given the int8 activations xq = (q, scale, qsum) of x: exact int64
    group dot products, and per group the float32 product sx * s as both sides compute it."""
    q, sx, _ = xq
    codes, s, z = formats.unpack_int4(p)
    n, k, g = p.n, p.k, p.group_size
    n_groups = s.shape[1]
    zero = torch.full((n, n_groups), 8, dtype=torch.int64) if z is None else z.long()
    wc = torch.zeros(n, p.k_pad, dtype=torch.int64)
    wc[:, :k] = codes.long() - zero.repeat_interleave(g, 1)[:, :k]
    m = q.shape[0]
    centered = torch.einsum("mgk,ngk->mng", q.long().view(m, n_groups, g),
                            wc.view(n, n_groups, g)).double()
    prod = (sx[:, None, :] * s[None, :, :]).double()  # float32 product, then widened exactly
    y, a = (centered * prod).sum(2), (centered.abs() * prod.abs()).sum(2)
    if bias is not None:
        y, a = y + bias.double(), a + bias.double().abs()
    return y, a


def w8a8_exact(x: torch.Tensor, p: formats.PackedInt8, bias: torch.Tensor | None, xq):
    """(y, A) for gemm_w8a8 given xq = (q, scale, qsum) of x quantized in one block of k_pad."""
    q, sx, _ = xq
    wq, s = formats.unpack_int8(p)
    dots = (q[:, :p.k].long() @ wq.long().t()).double()
    prod = (sx * s[None, :]).double()  # sx (M, 1)
    y, a = dots * prod, dots.abs() * prod.abs()
    if bias is not None:
        y, a = y + bias.double(), a + bias.double().abs()
    return y, a


def poison_cuda_cache():
    """Refills the caching allocator's free memory with 0xFF bytes (NaN in float16, bfloat16 and
    float32, -1 in the integer types) on the current stream: the cached segments are released,
    then blocks of every size class are allocated, filled and freed, so that the allocations that
    follow (outputs, workspaces) read as NaN wherever a kernel does not write them."""
    torch.cuda.empty_cache()
    blocks = []
    for size, count in ((1 << 24, 2), (1 << 20, 8), (1 << 18, 8), (1 << 16, 16), (1 << 14, 16),
                        (1 << 12, 16), (1 << 9, 16)):
        blocks += [torch.full((size,), 255, dtype=torch.uint8, device="cuda")
                   for _ in range(count)]
    del blocks
