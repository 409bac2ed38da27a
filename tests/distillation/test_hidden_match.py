"""HiddenMatch, per-layer hidden-state matching: its formula with a mask, a learned projection
between widths, the teacher side detached, and its errors."""

import pytest
import torch

from llmaccel.distillation import HiddenMatch

from .test_losses import TOL_F32, token_mask


def hiddens(n_layers, width, seed, shape=(2, 5)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, width, generator=g) for _ in range(n_layers)]


def test_hidden_match_zero_when_equal():
    h = hiddens(3, 8, seed=36)
    hm = HiddenMatch(8, 8, {0: 0, 2: 2})
    assert len(list(hm.parameters())) == 0
    assert float(hm(h, [x.clone() for x in h])) == 0.0
    assert float(hm(h, [x.clone() for x in h], mask=token_mask((2, 5)))) == 0.0


def test_hidden_match_formula_with_mask():
    hs, ht = hiddens(2, 8, seed=37), hiddens(3, 8, seed=38)
    mask = token_mask((2, 5))
    got = HiddenMatch(8, 8, {0: 1, 1: 2})(hs, ht, mask)
    want = torch.stack([((hs[s] - ht[t]) ** 2).mean(-1)[mask].mean()
                        for s, t in ((0, 1), (1, 2))]).mean()
    torch.testing.assert_close(got, want, **TOL_F32)


def test_hidden_match_projection_learns():
    hs, ht = hiddens(2, 6, seed=39), hiddens(3, 10, seed=40)
    hm = HiddenMatch(6, 10, {0: 1, 1: 2})
    for proj in hm.proj.values():
        assert proj.weight.shape == (10, 6) and proj.bias is None
        torch.testing.assert_close(proj.weight, torch.eye(10, 6), rtol=0, atol=0)
    # Teacher = a fixed linear map of the student: the projection can learn it.
    w = torch.randn(10, 6, generator=torch.Generator().manual_seed(41))
    ht = [ht[0], hs[0] @ w.T, hs[1] @ w.T]
    opt = torch.optim.Adam(hm.parameters(), lr=0.05)
    first = float(hm(hs, ht).detach())
    for _ in range(20):
        opt.zero_grad()
        loss = hm(hs, ht)
        loss.backward()
        opt.step()
    assert float(hm(hs, ht).detach()) < 0.5 * first


def test_hidden_match_teacher_detached():
    hs = [h.requires_grad_() for h in hiddens(1, 4, seed=42)]
    ht = [h.requires_grad_() for h in hiddens(1, 4, seed=43)]
    HiddenMatch(4, 4, {0: 0})(hs, ht).backward()
    assert hs[0].grad is not None and ht[0].grad is None


def test_hidden_match_errors():
    with pytest.raises(ValueError, match=r"missing layers: student \[3\].*teacher \[5\]"):
        HiddenMatch(4, 4, {0: 0, 3: 5})(hiddens(2, 4, 0), hiddens(2, 4, 1))
    with pytest.raises(ValueError, match="ints >= 0"):
        HiddenMatch(4, 4, {-1: 0})
    with pytest.raises(ValueError, match="non-empty"):
        HiddenMatch(4, 4, {})
    with pytest.raises(ValueError, match="student_width"):
        HiddenMatch(0, 4, {0: 0})
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\)"):
        HiddenMatch(4, 6, {0: 0})(hiddens(1, 4, 0), hiddens(1, 5, 1))
