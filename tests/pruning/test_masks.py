"""Keep-masks and pruning configs: exact counts, exact N:M groups, clear errors."""

import pytest
import torch

import llmaccel
from llmaccel.pruning import nm_mask, parse_pattern, unstructured_mask
from llmaccel.pruning.masks import lowest_mask


def scores(n=24, k=64, seed=0):
    return torch.rand(n, k, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_nm_mask_keeps_exactly_n_of_every_m(n, m):
    s = scores()
    keep = nm_mask(s, n, m)
    per_group = keep.view(s.shape[0], -1, m).sum(-1)
    assert torch.all(per_group == n)
    # The kept ones are the group's largest scores.
    g = s.view(s.shape[0], -1, m)
    kept_min = g.masked_fill(~keep.view_as(g), float("inf")).amin(-1)
    dropped_max = g.masked_fill(keep.view_as(g), -float("inf")).amax(-1)
    assert torch.all(kept_min > dropped_max)


def test_nm_mask_exact_with_ties():
    keep = nm_mask(torch.zeros(3, 16), 2, 4)  # all scores equal: still exactly 2 per group
    assert torch.all(keep.view(3, 4, 4).sum(-1) == 2)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_unstructured_counts_are_exact(sparsity):
    s = scores(n=10, k=37)
    per_row = unstructured_mask(s, sparsity, per_row=True)
    assert torch.all((~per_row).sum(1) == round(sparsity * 37))
    whole = unstructured_mask(s, sparsity, per_row=False)
    assert int((~whole).sum()) == round(sparsity * 370)
    # Per tensor: every pruned score is below every kept one.
    if 0 < sparsity:
        assert s[~whole].max() < s[whole].min()


def test_lowest_mask_with_ties_takes_the_exact_count():
    keep = lowest_mask(torch.ones(5, 5), 7)
    assert int((~keep).sum()) == 7


def test_nm_needs_divisible_columns():
    with pytest.raises(ValueError, match="divisible by 4"):
        nm_mask(scores(k=30), 2, 4)


def test_configs():
    assert llmaccel.Magnitude().sparsity == 0.5
    assert llmaccel.Wanda(pattern="2:4").sparsity == 0.5
    assert llmaccel.SparseGPT(pattern="1:4").sparsity == 0.75
    assert llmaccel.SparseGPT(0.5, "4:8").nm == (4, 8)
    assert llmaccel.Magnitude(0.7).nm is None
    assert llmaccel.Magnitude(pattern="2:4") == llmaccel.Magnitude(0.5, "2:4")
    assert llmaccel.Structured(0.25).attention_sparsity == 0.25
    assert parse_pattern("unstructured") is None and parse_pattern("2:4") == (2, 4)


def test_config_errors():
    with pytest.raises(ValueError, match="sparsity must be"):
        llmaccel.Magnitude(1.0)
    with pytest.raises(ValueError, match="sparsity must be"):
        llmaccel.Wanda(-0.1)
    with pytest.raises(ValueError, match="pattern must be"):
        llmaccel.Wanda(pattern="4:2")
    with pytest.raises(ValueError, match="pattern must be"):
        llmaccel.Magnitude(pattern="2-4")
    with pytest.raises(ValueError, match="contradicts"):
        llmaccel.SparseGPT(0.6, "2:4")
    with pytest.raises(ValueError, match="damp"):
        llmaccel.SparseGPT(damp=1.5)
    with pytest.raises(ValueError, match="block_size"):
        llmaccel.SparseGPT(block_size=0)
    with pytest.raises(TypeError, match="GPTQ"):
        llmaccel.SparseGPT(pattern="2:4", quantize=llmaccel.Int4WeightOnly())
    with pytest.raises(ValueError, match="attention_sparsity"):
        llmaccel.Structured(0.3, attention_sparsity=1.0)
    with pytest.raises(ValueError, match="multiple_of"):
        llmaccel.Structured(multiple_of=0)
