"""Distillation losses against their formulas in float64, their invariants, gradients, the
alpha mix, vocabulary checks and every error (hidden-state matching: test_hidden_match.py)."""

import math

import pytest
import torch

from llmaccel.distillation import (check_same_tokenizer, check_same_vocab_size, distill_loss,
                                   hard_ce, jsd, kl_forward, kl_forward_topk,
                                   kl_forward_topk_tail, kl_reverse)

# float32 log-space losses against a float64 reference on O(1) values: a few ulps per term.
TOL_F32 = dict(rtol=1e-5, atol=1e-6)
# bf16 inputs are upcast before any arithmetic, so against the float32 path on the same
# (bf16-rounded) values the results agree to float32 rounding.
TOL_BF16_SAME_VALUES = dict(rtol=1e-6, atol=1e-7)
# Against unrounded float32 logits, bf16's 2^-8 relative rounding of the logits moves the loss.
TOL_BF16_ROUNDING = dict(rtol=5e-2, atol=5e-3)
# Rounding slack on exact identities: KL(p‖p) = 0, JSD ≤ ln 2.
TOL_ZERO = 1e-6
TEMPERATURES = [1.0, 2.5]
SHAPE = (2, 3, 11)


def logits(shape=SHAPE, seed=0, scale=3.0, dtype=torch.float32):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64) * scale).to(dtype)


def token_mask(shape=SHAPE[:-1]):
    m = torch.ones(shape, dtype=torch.bool)
    m[0, -1] = m[1, 0] = False  # padding at a sequence end and a masked prompt token
    return m


# ---- float64 references, written from the definitions -----------------------------------

def ref_probs(x, temperature):
    z = x.double() / temperature
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def ref_kl(p, q):
    return (p * (torch.log(p) - torch.log(q))).sum(-1)


def ref_mean(per_token, mask):
    if mask is None:
        return per_token.mean()
    return torch.stack([v for v, keep in zip(per_token.flatten(), mask.flatten()) if keep]).mean()


def ref_soft(kind, s, t, temperature, mask, beta=0.5):
    ps, pt = ref_probs(s, temperature), ref_probs(t, temperature)
    if kind == "forward":
        per = ref_kl(pt, ps)
    elif kind == "reverse":
        per = ref_kl(ps, pt)
    else:
        m = beta * pt + (1 - beta) * ps
        per = beta * ref_kl(pt, m) + (1 - beta) * ref_kl(ps, m)
    return ref_mean(per, mask) * temperature ** 2


def ref_topk(s, values, indices, temperature, mask):
    pt = ref_probs(values, temperature)
    log_ps = torch.log(ref_probs(s, temperature)).gather(-1, indices)
    return ref_mean((pt * (torch.log(pt) - log_ps)).sum(-1), mask) * temperature ** 2


def ref_topk_tail(s, t, k, temperature, mask):
    """KL between the (k + 1)-outcome coarsenings: the teacher's top k tokens and the rest."""
    pt, ps = ref_probs(t, temperature), ref_probs(s, temperature)
    idx = pt.topk(k, dim=-1).indices
    pt_k, ps_k = pt.gather(-1, idx), ps.gather(-1, idx)
    pt_c = torch.cat([pt_k, 1 - pt_k.sum(-1, keepdim=True)], -1)
    ps_c = torch.cat([ps_k, 1 - ps_k.sum(-1, keepdim=True)], -1)
    return ref_mean((pt_c * (torch.log(pt_c) - torch.log(ps_c))).sum(-1), mask) * temperature ** 2


def teacher_topk_logprobs(t, k, temperature):
    return torch.log_softmax(t / temperature, -1).topk(k, dim=-1)


def ref_ce(s, labels, ignore_index=-100):
    log_p = torch.log(ref_probs(s, 1.0)).reshape(-1, s.shape[-1])
    nll = [-log_p[i, y] for i, y in enumerate(labels.flatten().tolist()) if y != ignore_index]
    return torch.stack(nll).mean()


LOSSES = {"forward": kl_forward, "reverse": kl_reverse, "jsd": jsd}


# ---- the soft losses against their formulas ---------------------------------------------

@pytest.mark.parametrize("kind", list(LOSSES))
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
def test_soft_losses_match_formula(kind, temperature, masked):
    s, t = logits(seed=1), logits(seed=2)
    mask = token_mask() if masked else None
    got = LOSSES[kind](s, t, temperature, mask)
    assert got.dtype == torch.float32 and got.dim() == 0
    torch.testing.assert_close(got.double(), ref_soft(kind, s, t, temperature, mask), **TOL_F32)


@pytest.mark.parametrize("beta", [0.1, 0.9])
def test_jsd_generalised_beta_matches_formula(beta):
    s, t = logits(seed=3), logits(seed=4)
    torch.testing.assert_close(jsd(s, t, 2.5, token_mask(), beta=beta).double(),
                               ref_soft("jsd", s, t, 2.5, token_mask(), beta), **TOL_F32)


def test_mask_as_zero_one_integers_equals_bool_mask():
    s, t = logits(seed=5), logits(seed=6)
    torch.testing.assert_close(kl_forward(s, t, mask=token_mask().int()),
                               kl_forward(s, t, mask=token_mask()), rtol=0, atol=0)


def test_confident_distributions_do_not_underflow():
    # Gaps of 200 put the tails near e^-200, far below float32's smallest normal.
    s, t = logits(seed=7, scale=200.0), logits(seed=8, scale=200.0)
    for kind, fn in LOSSES.items():
        got = fn(s, t)
        assert torch.isfinite(got), kind


# ---- invariants --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(LOSSES))
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_divergence_of_a_distribution_from_itself_is_zero(kind, temperature):
    x = logits(seed=9)
    assert abs(float(LOSSES[kind](x, x.clone(), temperature))) < TOL_ZERO


def test_jsd_symmetric_at_half():
    s, t = logits(seed=10), logits(seed=11)
    torch.testing.assert_close(jsd(s, t, 2.5), jsd(t, s, 2.5), **TOL_F32)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_jsd_bounded_by_ln2_per_token(temperature):
    # Near-disjoint supports push each token's JSD towards its ln 2 maximum.
    s = torch.full((4, 11), -50.0)
    t = torch.full((4, 11), -50.0)
    for i in range(4):
        s[i, i], t[i, 10 - i] = 50.0, 50.0
    s, t = s * temperature, t * temperature  # stay near-disjoint after dividing by T
    for i in range(4):  # a (V,) input is a single token, so its mean is that token's JSD
        val = float(jsd(s[i], t[i], temperature))
        assert val <= math.log(2) * temperature ** 2 + TOL_ZERO
        assert val > 0.99 * math.log(2) * temperature ** 2
    x, y = logits(seed=12, scale=10.0), logits(seed=13, scale=10.0)
    for idx in range(6):
        val = float(jsd(x.view(6, 11)[idx], y.view(6, 11)[idx], temperature))
        assert 0 <= val <= math.log(2) * temperature ** 2 + TOL_ZERO


def test_reverse_differs_from_forward_on_asymmetric_inputs():
    s, t = logits(seed=14), logits(seed=15)
    fwd, rev = float(kl_forward(s, t)), float(kl_reverse(s, t))
    assert abs(fwd - rev) > 1e-2
    torch.testing.assert_close(kl_reverse(s, t), kl_forward(t, s), **TOL_F32)


def test_teacher_gets_no_gradient():
    s = logits(seed=16).requires_grad_()
    t = logits(seed=17).requires_grad_()
    kl_forward(s, t).backward()
    assert s.grad is not None and t.grad is None


# ---- top-k teacher -----------------------------------------------------------------------

@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_topk_with_full_vocab_is_forward_kl(temperature):
    s, t = logits(seed=18), logits(seed=19)
    vals, idx = t.topk(SHAPE[-1], dim=-1)
    torch.testing.assert_close(kl_forward_topk(s, vals, idx, temperature, token_mask()),
                               kl_forward(s, t, temperature, token_mask()), **TOL_F32)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
def test_topk_matches_formula(temperature, masked):
    s, t = logits(seed=20), logits(seed=21)
    vals, idx = t.topk(4, dim=-1)
    mask = token_mask() if masked else None
    got = kl_forward_topk(s, vals, idx, temperature, mask)
    torch.testing.assert_close(got.double(), ref_topk(s, vals, idx, temperature, mask),
                               **TOL_F32)
    assert float(got) >= 0
    # Log-probs instead of logits: the per-token shift cancels in the renormalisation.
    log_probs = torch.log_softmax(t, -1).gather(-1, idx)
    torch.testing.assert_close(kl_forward_topk(s, log_probs, idx, 1.0, mask),
                               kl_forward_topk(s, vals, idx, 1.0, mask), **TOL_F32)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
def test_topk_tail_matches_formula(temperature, masked):
    s, t = logits(seed=30), logits(seed=31)
    mask = token_mask() if masked else None
    vals, idx = teacher_topk_logprobs(t, 4, temperature)
    got = kl_forward_topk_tail(s, vals, idx, temperature, mask)
    torch.testing.assert_close(got.double(), ref_topk_tail(s, t, 4, temperature, mask),
                               **TOL_F32)
    assert float(got) >= 0
    # The student that matches the teacher pays nothing; a full-vocabulary k is kl_forward.
    assert abs(float(kl_forward_topk_tail(t, vals, idx, temperature, mask))) < TOL_ZERO
    full = teacher_topk_logprobs(t, SHAPE[-1], temperature)
    torch.testing.assert_close(kl_forward_topk_tail(s, *full, temperature, mask),
                               kl_forward(s, t, temperature, mask), **TOL_F32)


def test_topk_tail_keeps_the_tail_mass():
    """Renormalising over the top k rewards a student that drops the teacher's tail; the tail
    bucket does not: from the teacher's own logits, the tail loss is 0 and the renormalised
    loss prefers the sharpened student."""
    t = logits(seed=32)
    vals, idx = teacher_topk_logprobs(t, 3, 1.0)
    sharp = t.scatter(-1, idx, t.gather(-1, idx) + 5.0)  # mass moved into the top 3
    assert kl_forward_topk_tail(t, vals, idx) < kl_forward_topk_tail(sharp, vals, idx)
    assert kl_forward_topk(sharp, vals, idx) < kl_forward_topk(t, vals, idx)


def test_topk_tail_gradient_and_errors():
    s = logits(seed=33, dtype=torch.float64).requires_grad_()
    vals, idx = teacher_topk_logprobs(logits(seed=34, dtype=torch.float64), 3, 2.5)
    assert torch.autograd.gradcheck(lambda x: kl_forward_topk_tail(x, vals, idx, 2.5), (s,))
    t = logits(seed=35)
    raw = t.topk(3, dim=-1)
    with pytest.raises(ValueError, match="must be log-probabilities"):
        kl_forward_topk_tail(t, raw.values.abs() + 1, raw.indices)
    with pytest.raises(ValueError, match="distinct"):
        kl_forward_topk_tail(t, vals.float(), idx[..., :1].expand(2, 3, 3))


# ---- precision and gradients -------------------------------------------------------------

@pytest.mark.parametrize("kind", list(LOSSES) + ["topk"])
def test_bf16_inputs_give_float32_results(kind):
    s, t = logits(seed=22), logits(seed=23)
    sb, tb = s.bfloat16(), t.bfloat16()

    def run(a, b):
        if kind == "topk":
            vals, idx = b.topk(5, dim=-1)
            return kl_forward_topk(a, vals, idx, 2.5, token_mask())
        return LOSSES[kind](a, b, 2.5, token_mask())

    got = run(sb, tb)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, run(sb.float(), tb.float()), **TOL_BF16_SAME_VALUES)
    torch.testing.assert_close(got, run(s, t), **TOL_BF16_ROUNDING)


@pytest.mark.parametrize("kind", ["forward", "jsd", "reverse"])
def test_gradcheck_wrt_student(kind):
    s = logits((2, 2, 5), seed=24, scale=1.0, dtype=torch.float64).requires_grad_()
    t = logits((2, 2, 5), seed=25, scale=1.0, dtype=torch.float64)
    mask = torch.tensor([[True, False], [True, True]])
    fn = LOSSES[kind]
    assert torch.autograd.gradcheck(lambda x: fn(x, t, 2.5, mask), (s,))


def test_gradcheck_topk_wrt_student():
    s = logits((2, 2, 5), seed=26, scale=1.0, dtype=torch.float64).requires_grad_()
    vals, idx = logits((2, 2, 5), seed=27, scale=1.0, dtype=torch.float64).topk(3, dim=-1)
    assert torch.autograd.gradcheck(lambda x: kl_forward_topk(x, vals, idx, 2.5), (s,))


# ---- hard loss and the mix ---------------------------------------------------------------

def labels_with_ignored(seed=28):
    y = torch.randint(0, SHAPE[-1], SHAPE[:-1], generator=torch.Generator().manual_seed(seed))
    y[0, 0] = y[1, 2] = -100
    return y


def test_hard_ce_matches_formula_and_skips_ignored():
    s, y = logits(seed=29), labels_with_ignored()
    torch.testing.assert_close(hard_ce(s, y).double(), ref_ce(s, y), **TOL_F32)
    y1 = y.masked_fill(y == -100, -1)  # the same tokens ignored under another ignore_index
    torch.testing.assert_close(hard_ce(s, y1, ignore_index=-1), hard_ce(s, y), **TOL_F32)


@pytest.mark.parametrize("kind", list(LOSSES))
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_distill_loss_is_the_weighted_sum_of_its_parts(kind, alpha):
    s, t, y = logits(seed=30), logits(seed=31), labels_with_ignored()
    loss, parts = distill_loss(s, t, y if alpha < 1 else None, kind=kind, temperature=2.5,
                               alpha=alpha)
    soft = LOSSES[kind](s, t, 2.5)
    assert parts["soft"] == pytest.approx(float(soft), rel=1e-6)
    expected = alpha * float(soft)
    if alpha < 1:
        hard = hard_ce(s, y)
        assert parts["hard"] == pytest.approx(float(hard), rel=1e-6)
        expected += (1 - alpha) * float(hard)
    else:
        assert "hard" not in parts
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert parts["total"] == pytest.approx(expected, rel=1e-6)
    assert all(isinstance(v, float) for v in parts.values())


def test_distill_loss_mask_also_drops_hard_tokens():
    s, t, y = logits(seed=32), logits(seed=33), labels_with_ignored()
    mask = token_mask()
    _, parts = distill_loss(s, t, y, kind="jsd", alpha=0.3, mask=mask)
    assert parts["soft"] == pytest.approx(float(jsd(s, t, mask=mask)), rel=1e-6)
    assert parts["hard"] == pytest.approx(float(hard_ce(s, y.masked_fill(~mask, -100))),
                                          rel=1e-6)


def test_distill_loss_backpropagates_to_student():
    s = logits(seed=34).requires_grad_()
    loss, _ = distill_loss(s, logits(seed=35), labels_with_ignored(), alpha=0.5)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


# ---- vocabulary checks -------------------------------------------------------------------

class FakeTokenizer:
    def __init__(self, vocab):
        self.vocab = dict(vocab)

    def get_vocab(self):
        return dict(self.vocab)


class EncodeOnlyTokenizer:
    def __init__(self, size, ids):
        self.size, self.ids = size, ids

    def __len__(self):
        return self.size

    def encode(self, text):
        return list(self.ids)


VOCAB = {"<s>": 0, "the": 1, "fox": 2, "dog": 3, "!": 4}


def test_same_tokenizer_passes():
    check_same_tokenizer(FakeTokenizer(VOCAB), FakeTokenizer(VOCAB))
    check_same_tokenizer(EncodeOnlyTokenizer(5, [1, 2]), EncodeOnlyTokenizer(5, [1, 2]))


def test_swapped_id_fails():
    swapped = dict(VOCAB, fox=3, dog=2)
    with pytest.raises(ValueError, match=r"2 token\(s\) to different ids.*'dog'"):
        check_same_tokenizer(FakeTokenizer(VOCAB), FakeTokenizer(swapped))


def test_tokenizer_size_mismatch_fails():
    with pytest.raises(ValueError, match="vocab sizes differ: student 5, teacher 6"):
        check_same_tokenizer(FakeTokenizer(VOCAB), FakeTokenizer(dict(VOCAB, cat=5)))
    with pytest.raises(ValueError, match="vocab sizes differ"):
        check_same_tokenizer(EncodeOnlyTokenizer(5, [1]), EncodeOnlyTokenizer(6, [1]))
    with pytest.raises(ValueError, match="encode .* differently"):
        check_same_tokenizer(EncodeOnlyTokenizer(5, [1, 2]), EncodeOnlyTokenizer(5, [2, 1]))
    with pytest.raises(TypeError, match="get_vocab"):
        check_same_tokenizer(object(), FakeTokenizer(VOCAB))


def test_vocab_size_configs():
    class Cfg:
        vocab_size = 49152
    check_same_vocab_size(Cfg(), {"vocab_size": 49152})
    with pytest.raises(ValueError, match="vocab_size differs: student 49152, teacher 32000"):
        check_same_vocab_size(Cfg(), {"vocab_size": 32000})
    with pytest.raises(ValueError, match="teacher config has no vocab_size"):
        check_same_vocab_size(Cfg(), {})


# ---- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(LOSSES))
def test_soft_loss_errors(kind):
    fn, s, t = LOSSES[kind], logits(), logits(seed=1)
    with pytest.raises(ValueError, match=r"vocabularies differ: student_logits \(2, 3, 11\) "
                                         r"vs teacher_logits \(2, 3, 12\)"):
        fn(s, logits((2, 3, 12)))
    with pytest.raises(ValueError, match=r"\(2, 3, 11\) and teacher_logits \(2, 4, 11\)"):
        fn(s, logits((2, 4, 11)))
    with pytest.raises(ValueError, match="temperature must be"):
        fn(s, t, 0.0)
    with pytest.raises(ValueError, match="temperature must be"):
        fn(s, t, float("inf"))
    with pytest.raises(ValueError, match="selects no tokens"):
        fn(s, t, mask=torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask has shape \(3, 2\)"):
        fn(s, t, mask=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="only 0 and 1"):
        fn(s, t, mask=torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="floating-point"):
        fn(s.long(), t)


def test_jsd_beta_errors():
    for beta in (0.0, 1.0, -0.2):
        with pytest.raises(ValueError, match="beta must be in"):
            jsd(logits(), logits(seed=1), beta=beta)


def test_topk_errors():
    s = logits()
    vals, idx = logits(seed=1).topk(3, dim=-1)
    with pytest.raises(ValueError, match="must both be"):
        kl_forward_topk(s, vals, idx[..., :2])
    with pytest.raises(ValueError, match="leading dims"):
        kl_forward_topk(s, vals[:1], idx[:1])
    with pytest.raises(ValueError, match=r"must lie in \[0, 11\)"):
        kl_forward_topk(s, vals, idx.masked_fill(idx == idx[0, 0, 0], 11))
    with pytest.raises(ValueError, match="distinct"):
        kl_forward_topk(s, vals, idx[..., :1].expand(2, 3, 3))
    with pytest.raises(ValueError, match="integer tensor"):
        kl_forward_topk(s, vals, idx.float())
    with pytest.raises(ValueError, match="k = 12 exceeds"):
        big = logits((2, 3, 12)).topk(12, dim=-1)
        kl_forward_topk(s, big.values, big.indices)


def test_hard_ce_errors():
    s = logits()
    with pytest.raises(ValueError, match="every label is ignore_index"):
        hard_ce(s, torch.full((2, 3), -100))
    with pytest.raises(ValueError, match=r"must lie in \[0, 11\)"):
        hard_ce(s, torch.full((2, 3), 11))
    with pytest.raises(ValueError, match=r"labels \(2, 4\) must match"):
        hard_ce(s, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        hard_ce(s, torch.zeros(2, 3))


def test_distill_loss_errors():
    s, t, y = logits(), logits(seed=1), labels_with_ignored()
    with pytest.raises(ValueError, match="labels are required"):
        distill_loss(s, t, alpha=0.5)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        distill_loss(s, t, y, alpha=1.5)
    with pytest.raises(ValueError, match="temperature must be"):
        distill_loss(s, t, y, temperature=-1.0)
    with pytest.raises(ValueError, match="beta must be in"):
        distill_loss(s, t, y, kind="jsd", beta=1.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        distill_loss(s, t, y, kind="mse")
