"""Magnitude, Wanda and SparseGPT on one layer: each does better where it should on the output
error ‖(W − W') Xᵀ‖², masks are exact, and 2:4 + GPTQ keeps the pruned weights at zero."""

import pytest
import torch

import llmaccel
from llmaccel.pruning import magnitude_mask, sparsegpt_prune, wanda_mask

from ..quantization.test_gptq import correlated, dequant, layer_error

PATTERNS = [("unstructured", None), ("2:4", (2, 4)), ("4:8", (4, 8))]


def weight(n=48, k=96, seed=1):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


def errors(w, x, pattern):
    """Output error of each method at 50 % under ``pattern``."""
    nm = llmaccel.Magnitude(pattern=pattern).nm
    mag = w * magnitude_mask(w, llmaccel.Magnitude(pattern=pattern))
    wan = w * wanda_mask(w, (x * x).sum(0), llmaccel.Wanda(pattern=pattern))
    sgpt, _ = sparsegpt_prune(w, x.t() @ x, 0.5, nm, block_size=32)
    return {name: layer_error(w, wp.float(), x)
            for name, wp in (("magnitude", mag), ("wanda", wan), ("sparsegpt", sgpt))}


@pytest.mark.parametrize("pattern,nm", PATTERNS)
def test_sparsegpt_beats_magnitude_and_wanda_on_correlated_inputs(pattern, nm):
    x = correlated(512, 96)
    e = errors(weight(), x, pattern)
    assert e["sparsegpt"] < 0.8 * e["wanda"] and e["sparsegpt"] < 0.8 * e["magnitude"], e


@pytest.mark.parametrize("pattern,nm", PATTERNS)
def test_wanda_beats_magnitude_on_outlier_channels(pattern, nm):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(512, 96, generator=g)
    x[:, torch.randperm(96, generator=g)[:6]] *= 20  # a few loud input channels, as in LLMs
    e = errors(weight(), x, pattern)
    assert e["wanda"] < 0.8 * e["magnitude"], e


@pytest.mark.parametrize("pattern,nm", PATTERNS)
def test_sparsegpt_masks_are_exact(pattern, nm):
    n, k = 40, 96
    w = weight(n, k)
    x = correlated(256, k, seed=3)
    pruned, keep = sparsegpt_prune(w, x.t() @ x, 0.5, nm, block_size=32)
    assert pruned.shape == (n, k) and keep.dtype == torch.bool
    assert torch.all(pruned[~keep] == 0) and torch.all(pruned[keep] != 0)
    if nm is None:
        assert int((~keep).sum()) == n * k // 2
    else:
        assert torch.all(keep.view(n, -1, nm[1]).sum(-1) == nm[0])


def test_sparsegpt_unstructured_ratio_exact_over_uneven_blocks():
    n, k = 7, 50  # blocks of 16 do not divide K, and 0.3 · 7 · 16 is not an integer
    x = correlated(128, k, seed=4)
    _, keep = sparsegpt_prune(weight(n, k), x.t() @ x, 0.3, block_size=16)
    assert int((~keep).sum()) == round(0.3 * n * k)


@pytest.mark.parametrize("bits", [4, 8])
def test_gptq_after_2_4_keeps_zeros_exactly(bits):
    from llmaccel.quantization.gptq import gptq_quantize_int4, gptq_quantize_int8

    n, k = 32, 128
    x = correlated(512, k, seed=5)
    h = x.t() @ x
    pruned, keep = sparsegpt_prune(weight(n, k), h, 0.5, (2, 4))
    if bits == 4:
        codes, scales, zeros = gptq_quantize_int4(pruned, h, 32, True, act_order=True, keep=keep)
        wq = dequant(codes, scales, zeros, 32, k)
        assert torch.all(codes[~keep] == 8)  # symmetric int4: code 8 is 0.0
        rtn = dequant(*llmaccel.quantizers.quantize_int4(pruned.float(), 32, True), 32, k)
        # Rounding the pruned weight on its own would not keep the pattern error-compensated;
        # GPTQ with the mask does better than it while zeros stay zeros.
        assert layer_error(pruned.float(), wq, x) < layer_error(pruned.float(), rtn, x)
    else:
        codes, scales = gptq_quantize_int8(pruned, h, keep=keep)
        wq = codes.float() * scales[:, None]
        assert torch.all(codes[~keep] == 0)
    assert torch.all(wq[~keep] == 0)
    assert torch.all(wq.view(n, -1, 4).eq(0).sum(-1) >= 2)


def test_gptq_keep_mask_is_checked():
    from llmaccel.quantization.gptq import gptq_quantize_int4

    with pytest.raises(ValueError, match="keep must be a bool mask"):
        gptq_quantize_int4(torch.randn(4, 32), torch.eye(32), 32, keep=torch.ones(4, 32))


def test_wanda_needs_one_norm_per_input():
    with pytest.raises(ValueError, match="one input norm per input feature"):
        wanda_mask(weight(), torch.ones(5), llmaccel.Wanda())
