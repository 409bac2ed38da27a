"""distill_loss_rows against its float64 reference twin on every CPU path: gradient, KL and NLL
within float32 rounding (the kernel's exp is a polynomial, its sums run in 8 or 16 lanes), odd
vocabularies (masked tails), strided rows, extreme logits, and clear errors for bad inputs."""

import pytest
import torch

from llmaccel import ops, reference

DTYPES = [torch.float32, torch.bfloat16]
DTYPE_IDS = ["f32", "bf16"]
AVX2_KERNELS = True  # distill_loss_rows has an AVX2 kernel: the isa fixture covers avx2 here
# Relative to the largest gradient entry / the row's KL or NLL: float32 exp (2e-7) and 16-lane
# sums over V terms stay well inside 1e-5.
REL = 1e-5


def logits(rows, vocab, dtype, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, vocab, generator=g) * scale).to(dtype)


def check(student, teacher, labels, alpha, temperature, scale=0.25):
    got = ops.distill_loss_rows(student, teacher, labels, alpha, temperature, scale)
    want = reference.distill_loss_rows(student, teacher, labels, alpha, temperature, scale)
    g, kl, nll = got
    assert g.dtype == student.dtype and g.shape == student.shape and g.is_contiguous()
    assert kl.dtype == nll.dtype == torch.float32 and kl.shape == nll.shape == (student.shape[0],)
    # bf16 gradients: the reference rounds the same float64 value once, the kernel its float32
    # value; they may land one bf16 step apart.
    g_tol = REL if g.dtype == torch.float32 else 2 ** -7
    bound = float(want[0].float().abs().max()) * g_tol + 1e-12
    assert float((g.float() - want[0].float()).abs().max()) <= bound
    for name, a, b in (("kl", kl, want[1]), ("nll", nll, want[2])):
        assert float((a - b).abs().max()) <= REL * (1 + float(b.abs().max())), name
    if alpha == 0:
        assert bool((kl == 0).all())
    if alpha == 1:
        assert bool((nll == 0).all())
    return got


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.7])
@pytest.mark.parametrize("rows,vocab", [(1, 1), (3, 15), (5, 16), (7, 33), (2, 1000), (9, 4099)])
def test_matches_reference(isa, rows, vocab, temperature, alpha, dtype):
    s, t = logits(rows, vocab, dtype, vocab), logits(rows, vocab, dtype, vocab + 1)
    y = torch.randint(0, vocab, (rows,), generator=torch.Generator().manual_seed(rows))
    check(s, t, y if alpha < 1 else None, alpha, temperature)


def test_mixed_dtypes_and_strided_rows(isa):
    big_s = logits(6, 80, torch.float32, 1)
    big_t = logits(6, 80, torch.bfloat16, 2)
    s, t = big_s[::2, 5:70], big_t[1::2, :65]  # row strides 160 and 160, offsets 5 and 80
    y = torch.tensor([0, 64, 31])
    g, *_ = check(s, t, y, 0.4, 1.0)
    g2, *_ = ops.distill_loss_rows(s.contiguous(), t.contiguous(), y, 0.4, 1.0, 0.25)
    assert torch.equal(g, g2)


def test_gradient_of_the_row_loss():
    """The gradient is d/dz of scale · (α T² kl + (1 − α) nll), checked by autograd on the
    reference's own formula."""
    s, t = logits(4, 50, torch.float64, 3), logits(4, 50, torch.float64, 4)
    y = torch.tensor([1, 7, 49, 0])
    z = s.clone().requires_grad_()
    log_q = torch.log_softmax(z / 2.0, -1)
    log_p = torch.log_softmax(t / 2.0, -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    nll = -torch.log_softmax(z, -1).gather(-1, y[:, None]).squeeze(-1)
    (0.1 * (0.3 * 4.0 * kl + 0.7 * nll)).sum().backward()
    g, *_ = ops.distill_loss_rows(s.float(), t.float(), y, 0.3, 2.0, 0.1)
    torch.testing.assert_close(g.double(), z.grad, rtol=1e-5, atol=1e-7)


def test_extreme_logits_stay_finite(isa):
    s = torch.tensor([[1e4, -1e4, 0.0, 30.0] * 5, [-80.0, 90.0, 5.0, -300.0] * 5])
    t = torch.tensor([[0.0, 200.0, -200.0, 1.0] * 5, [50.0] * 20])
    g, kl, nll = check(s, t, torch.tensor([1, 3]), 0.5, 1.0)
    assert bool(torch.isfinite(g).all() and torch.isfinite(kl).all() and torch.isfinite(nll).all())


def test_empty_rows():
    g, kl, nll = ops.distill_loss_rows(torch.empty(0, 8), torch.empty(0, 8),
                                       torch.empty(0, dtype=torch.long), 0.5, 1.0, 1.0)
    assert g.shape == (0, 8) and kl.shape == nll.shape == (0,)


def test_bad_inputs():
    s, t, y = logits(3, 8, torch.float32, 0), logits(3, 8, torch.float32, 1), torch.tensor([0, 1, 2])
    op = ops.distill_loss_rows
    with pytest.raises(ValueError, match="alpha must be in"):
        op(s, t, y, 1.5, 1.0, 1.0)
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        op(s, t, y, 0.5, 0.0, 1.0)
    with pytest.raises(ValueError, match="needs teacher logits"):
        op(s, None, y, 0.5, 1.0, 1.0)
    with pytest.raises(ValueError, match="needs labels"):
        op(s, t, None, 0.5, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"teacher must be 2-D \(3, 8\)"):
        op(s, t[:2], y, 0.5, 1.0, 1.0)
    with pytest.raises(ValueError, match="student must be 2-D"):
        op(s[0], t, y, 0.5, 1.0, 1.0)
    with pytest.raises(TypeError, match="student must be float32 or bfloat16"):
        op(s.double(), t, y, 0.5, 1.0, 1.0)
    with pytest.raises(TypeError, match="labels must be int64"):
        op(s, t, y.int(), 0.5, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        op(s, t, y[:2], 0.5, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 8\)"):
        op(s, t, y + 6, 0.5, 1.0, 1.0)
    # What alpha does not use is not checked: no teacher at 0, no labels at 1.
    assert op(s, None, y, 0.0, 1.0, 1.0)[0].shape == (3, 8)
    assert op(s, t, None, 1.0, 1.0, 1.0)[0].shape == (3, 8)


def test_torch_compile_traces_through_the_fake():
    s, t, y = logits(4, 20, torch.float32, 5), logits(4, 20, torch.float32, 6), torch.arange(4)

    def f(s, t, y):
        return ops.distill_loss_rows(s, t, y, 0.5, 1.0, 0.25)[0] * 2

    compiled = torch.compile(f, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(s, t, y), f(s, t, y))
