"""The fused trainer loss against ``distill_loss(kind="forward")``: value, parts and gradient,
through the native kernel (float32/bf16 on the CPU) and through its float64 twin."""

from __future__ import annotations

import pytest
import torch

from llmaccel.distillation.losses import distill_loss
from llmaccel.distillation.losses_fused import distill_loss_fused

# float64 inputs run the float64 twin: the gradient differs only in summation order (the
# per-row KL and NLL come back as float32, as the kernel's do).
TOL = dict(rtol=1e-10, atol=1e-12)
# float32 inputs run the kernel: float32 exps and 16-lane sums against float64.
TOL_KERNEL = dict(rtol=1e-5, atol=1e-7)


def inputs(shape, vocab, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(*shape, vocab, generator=g, dtype=torch.float64) * 3).to(dtype)
    t = (torch.randn(*shape, vocab, generator=g, dtype=torch.float64) * 3).to(dtype)
    y = torch.randint(0, vocab, shape, generator=g)
    return s, t, y


def both(s, t, y, alpha, temperature):
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    ref, ref_parts = distill_loss(s1, t, y, kind="forward", temperature=temperature, alpha=alpha)
    got, got_parts = distill_loss_fused(s2, t if alpha > 0 else None, y,
                                        temperature=temperature, alpha=alpha)
    ref.backward()
    got.backward()
    return ref, ref_parts, s1.grad, got, got_parts, s2.grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["twin", "kernel"])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 2.0])
@pytest.mark.parametrize("shape,vocab", [((3, 7), 11), ((5,), 13), ((2, 3, 5), 9), ((1, 1), 2)])
def test_matches_distill_loss(alpha, temperature, shape, vocab, dtype):
    s, t, y = inputs(shape, vocab, seed=len(shape) + vocab, dtype=dtype)
    ref, ref_parts, ref_grad, got, got_parts, got_grad = both(
        s.double(), t.double(), y, alpha, temperature)
    _, _, _, got, got_parts, got_grad = both(s, t, y, alpha, temperature)
    tol = TOL if dtype == torch.float64 else TOL_KERNEL
    assert got.dtype == torch.promote_types(torch.float32, dtype)
    assert got_grad.dtype == dtype
    torch.testing.assert_close(got.double(), ref, **TOL_KERNEL)
    torch.testing.assert_close(got_grad.double(), ref_grad, **tol)
    assert set(got_parts) == set(ref_parts) - ({"soft"} if alpha == 0 else set())
    for k in got_parts:
        assert got_parts[k] == pytest.approx(ref_parts[k], rel=1e-5, abs=1e-7)


def test_strided_slice_as_the_trainer_passes_it():
    s, t, _ = inputs((2, 9), 17, seed=4)
    y = torch.randint(0, 17, (2, 8))
    grads = []
    for fn in (distill_loss, distill_loss_fused):
        x = s.clone().requires_grad_()
        loss, _ = fn(x[:, :-1], t[:, :-1], y, temperature=1.0, alpha=0.5)
        grads.append(torch.autograd.grad(loss, x)[0])
    torch.testing.assert_close(grads[1], grads[0], **TOL)
    x = s.float().requires_grad_()  # the kernel's path, one call per leading index
    loss, _ = distill_loss_fused(x[:, :-1], t.float()[:, :-1], y, alpha=0.5)
    torch.testing.assert_close(torch.autograd.grad(loss, x)[0].double(), grads[0], **TOL_KERNEL)
    assert bool((grads[1][:, -1] == 0).all())


def test_bfloat16_logits_compute_in_float32_and_return_a_bf16_gradient():
    s, t, y = inputs((4, 6), 50, seed=7, dtype=torch.float32)
    ref, _, ref_grad, *_ = both(s, t, y, 0.5, 1.0)
    x = s.bfloat16().requires_grad_()
    loss, _ = distill_loss_fused(x, t.bfloat16(), y, alpha=0.5)
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.bfloat16
    # Only the inputs' bf16 rounding (~0.4 % relative per logit) separates the two.
    torch.testing.assert_close(loss, ref.float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(x.grad.float(), ref_grad.float(), rtol=5e-2, atol=2e-3)


def test_backward_scales_with_the_upstream_gradient():
    s, t, y = inputs((3, 4), 7, seed=2)
    x = s.clone().requires_grad_()
    loss, _ = distill_loss_fused(x, t, y, alpha=0.5)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g3,) = torch.autograd.grad(3 * loss, x)
    torch.testing.assert_close(g3, 3 * g1, **TOL)


def test_bad_inputs():
    s, t, y = inputs((2, 3), 5)
    with pytest.raises(ValueError, match="alpha must be in"):
        distill_loss_fused(s, t, y, alpha=1.5)
    with pytest.raises(ValueError, match="teacher_logits is required"):
        distill_loss_fused(s, None, y, alpha=0.5)
    with pytest.raises(ValueError, match="temperature"):
        distill_loss_fused(s, t, y, temperature=0.0)
    with pytest.raises(ValueError, match="same shape"):
        distill_loss_fused(s, t[:1], y)
    with pytest.raises(ValueError, match="vocabularies differ"):
        distill_loss_fused(s, t[..., :4], y)
    with pytest.raises(ValueError, match="must match student_logits"):
        distill_loss_fused(s, t, y[:, :2])
    with pytest.raises(ValueError, match="integer tensor"):
        distill_loss_fused(s, t, y.double())
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        distill_loss_fused(s, t, y + 5)
    with pytest.raises(ValueError, match="floating-point"):
        distill_loss_fused(y, None, y, alpha=0.0)
    # alpha = 1: labels are not read, so any placeholder does.
    loss, parts = distill_loss_fused(s, t, None, alpha=1.0)
    assert set(parts) == {"soft", "total"} and torch.isfinite(loss)
