"""Round-to-nearest quantizers: the properties that define them (see quantizers.py).

Dequantization here is the float64 value (q - zero) * scale, so the checks measure the
quantizer alone; the float32 rounding of that product is dequant_w4's business (bit-exact tests).
"""

import pytest
import torch

from llmaccel import formats, quantizers

# Half a quantization step is the RTN error; the slack covers the float32 rounding of w / scale
# (a relative error of a few units of 2**-24 in a value of at most ~16 steps).
STEP_SLACK = 1e-5

GROUPS = [32, 64, 128, -1]
SHAPES = [(1, 33), (17, 100), (37, 200), (8, 4096)]


def _weight(n, k, seed=0):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


def _per_column(t, n, k, group_size):
    """(N, G) per-group values → (N, K), one per weight."""
    _, _, g = formats.int4_padding(n, k, group_size)
    return t.repeat_interleave(g, dim=1)[:, :k]


def _dequant_int4(codes, scales, zeros, n, k, group_size):
    zero = 8.0 if zeros is None else _per_column(zeros.double(), n, k, group_size)
    return (codes.double() - zero) * _per_column(scales.double(), n, k, group_size)


@pytest.mark.parametrize("group_size", GROUPS)
@pytest.mark.parametrize("n,k", SHAPES)
def test_int4_symmetric(n, k, group_size):
    w = _weight(n, k)
    codes, scales, zeros = quantizers.quantize_int4(w, group_size, symmetric=True)
    _, k_pad, g = formats.int4_padding(n, k, group_size)
    assert codes.dtype == torch.uint8 and codes.shape == (n, k)
    assert scales.dtype == torch.float32 and scales.shape == (n, k_pad // g)
    assert zeros is None
    assert int(codes.max()) <= 15

    deq = _dequant_int4(codes, scales, None, n, k, group_size)
    # Each group's weight of largest magnitude maps to code 0 (-8 steps) and dequantizes exactly.
    wp = torch.zeros(n, k_pad)
    wp[:, :k] = w
    idx = wp.view(n, -1, g).abs().argmax(dim=2)
    col = idx + torch.arange(k_pad // g) * g
    assert torch.all(codes.gather(1, col) == 0)
    assert torch.equal(deq.gather(1, col), w.double().gather(1, col))

    # Weights within 7.5 steps of zero are rounded to the nearest step; those on the other side
    # of the extreme, beyond 7.5 steps, can only reach +7 steps (Q4_0 uses -8..7), within 1 step.
    step = _per_column(scales.double().abs(), n, k, group_size)
    err = (deq - w.double()).abs()
    in_range = (w.double() / _per_column(scales.double(), n, k, group_size)) <= 7.5
    assert torch.all(err[in_range] <= step[in_range] * (0.5 + STEP_SLACK))
    assert torch.all(err <= step * (1 + STEP_SLACK))


@pytest.mark.parametrize("group_size", GROUPS)
@pytest.mark.parametrize("n,k", SHAPES)
def test_int4_asymmetric(n, k, group_size):
    w = _weight(n, k, seed=1) + 0.3  # off-centre groups, where a zero point matters
    codes, scales, zeros = quantizers.quantize_int4(w, group_size, symmetric=False)
    _, k_pad, g = formats.int4_padding(n, k, group_size)
    assert scales.shape == (n, k_pad // g) and zeros.shape == (n, k_pad // g)
    assert zeros.dtype == torch.uint8 and int(zeros.max()) <= 15 and int(codes.max()) <= 15
    assert torch.all(scales >= 0)

    deq = _dequant_int4(codes, scales, zeros, n, k, group_size)
    step = _per_column(scales.double(), n, k, group_size)
    assert torch.all((deq - w.double()).abs() <= step * (0.5 + STEP_SLACK))


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_int4_zero_weight_is_exact(symmetric):
    """0 is on both grids (integer zero point), and an all-zero group gets scale 0."""
    w = _weight(4, 64, seed=2)
    w[0, 5] = 0.0
    w[1, 32:] = 0.0  # one whole group of zeros
    codes, scales, zeros = quantizers.quantize_int4(w, 32, symmetric)
    deq = _dequant_int4(codes, scales, zeros, 4, 64, 32)
    assert deq[0, 5] == 0 and torch.all(deq[1, 32:] == 0)
    assert scales[1, 1] == 0


def test_int8_per_row():
    n, k = 37, 200
    w = _weight(n, k, seed=3)
    w[3] = 0.0  # an all-zero row
    codes, scales = quantizers.quantize_int8(w)
    assert codes.dtype == torch.int8 and codes.shape == (n, k)
    assert scales.dtype == torch.float32 and scales.shape == (n,)
    assert int(codes.abs().max()) <= 127 and int(codes.min()) >= -127
    assert scales[3] == 0 and torch.all(codes[3] == 0)
    # Each row's largest magnitude maps to +-127.
    idx = w.abs().argmax(dim=1)
    rows = torch.arange(n) != 3
    assert torch.all(codes.gather(1, idx[:, None]).abs()[rows] == 127)
    deq = codes.double() * scales.double()[:, None]
    step = scales.double()[:, None]
    assert torch.all((deq - w.double()).abs() <= step * (0.5 + STEP_SLACK))


def test_quantizers_accept_bf16_and_reject_bad_input():
    w = _weight(16, 64).bfloat16()
    c, s, _ = quantizers.quantize_int4(w, 32, True)
    assert s.dtype == torch.float32 and c.shape == (16, 64)
    c8, s8 = quantizers.quantize_int8(w)
    assert s8.dtype == torch.float32
    with pytest.raises(ValueError, match="2-D"):
        quantizers.quantize_int4(torch.randn(64), 32, True)
    with pytest.raises(ValueError, match="2-D"):
        quantizers.quantize_int8(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="group_size"):
        quantizers.quantize_int4(torch.randn(4, 64), 48, True)


def _group_err64(groups, scales, zeros, bits, symmetric, norm=2.4):
    """Σ|w − q(w)|^norm per group, in float64: the search's objective, measured exactly."""
    lo, hi = quantizers.int4_code_range(bits, symmetric)
    g, s, z = groups.double(), scales.double()[..., None], zeros.double()[..., None]
    inv = torch.where(s != 0, 1.0 / s, torch.zeros_like(s))
    q = (torch.round(g * inv) + z).clamp(lo, hi)
    return ((q - z) * s - g).abs().pow(norm).sum(dim=-1)


@pytest.mark.parametrize("bits", [4, 3])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_int4_group_params_mse_finds_the_best_shrink(symmetric, bits, dtype):
    """GPTQ's range search (int4_group_params_mse, run in float32 whatever the input): its
    choice is the best of the candidates (the full range shrunk by 0, 1/40, .. 16/40) up to the
    float32 rounding of the objective, never worse than the full range, and it clips where a
    rare extreme weight dominates a group."""
    g = torch.randn(300, 128, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    g[::5, 3] *= 12  # an outlier in every fifth group
    g[7] = 0.0  # an all-zero group keeps scale 0
    g = g.to(dtype)
    s, z = quantizers.int4_group_params_mse(g, symmetric, bits=bits)
    assert s.dtype == dtype and z.dtype == dtype and s.shape == z.shape == (300,)
    assert s[7] == 0
    err = _group_err64(g, s, z, bits, symmetric)
    cands = []
    for i in range(17):
        cs, cz = quantizers.int4_group_params(g.double() * (1 - i / 40), symmetric, bits)
        cands.append(_group_err64(g, cs, cz, bits, symmetric))
    cands = torch.stack(cands, dim=-1)
    best = cands.min(dim=-1).values
    assert torch.all(err <= best * (1 + 1e-4) + 1e-30), (err / best).max()
    assert torch.all(err <= cands[:, 0] * (1 + 1e-4) + 1e-30)  # never worse than no clipping
    full, _ = quantizers.int4_group_params(g, symmetric, bits)
    assert bool((s[::5].abs() < full[::5].abs()).float().mean() > 0.9)  # outliers get clipped
