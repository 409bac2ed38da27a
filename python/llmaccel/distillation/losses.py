"""Knowledge-distillation losses: teacher → compressed student.

Soft losses compare the student's and the teacher's next-token distributions
p = softmax(logits / T) token by token, then average over the tokens a mask selects:

* ``kl_forward``  KL(p_T ‖ p_S) — mode-covering; the classic Hinton loss.
* ``kl_reverse``  KL(p_S ‖ p_T) — mode-seeking (MiniLLM).
* ``jsd``         β·KL(p_T ‖ m) + (1−β)·KL(p_S ‖ m), m = β·p_T + (1−β)·p_S — GKD's generalised
                  JSD.
* ``kl_forward_topk``  forward KL against a teacher cached as its top-k logits only.

Every soft loss is multiplied by T² (Hinton et al., 2015): the gradient of a softened KL with
respect to the logits shrinks like 1/T², so the scaling keeps its size — and the balance against
the hard cross entropy — the same whichever temperature is chosen.

Everything runs in log space (log_softmax, logsumexp for the mixture), so confident
distributions with probabilities far below float32's smallest normal never turn into 0·log 0;
half-precision inputs are upcast to float32 first. Logits must be finite. The teacher is a
target: no gradient flows into it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("forward", "reverse", "jsd")
# A short sentence with digits, punctuation, case and a non-ASCII word: tokenizers that differ
# anywhere common are very likely to split or number it differently.
PROBE_SENTENCE = "The quick brown fox, 42 times — naïvely — jumps over the lazy dog!"


# ---- validation and shared pieces ----------------------------------------------------------

def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _check_temperature(temperature: float) -> None:
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def _check_beta(beta: float) -> None:
    if not (isinstance(beta, (int, float)) and 0 < beta < 1):
        raise ValueError(f"beta must be in the open interval (0, 1), got {beta!r}")


def _check_logits(name: str, logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor (..., V)")
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (..., V) with V >= 1, got {_shape(logits)}")


def _check_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    _check_logits("student_logits", student_logits)
    _check_logits("teacher_logits", teacher_logits)
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ValueError(f"student and teacher vocabularies differ: student_logits "
                         f"{_shape(student_logits)} vs teacher_logits {_shape(teacher_logits)}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits {_shape(student_logits)} and teacher_logits "
                         f"{_shape(teacher_logits)} must have the same shape")


def _check_labels(student_logits: torch.Tensor, labels) -> None:
    _check_logits("student_logits", student_logits)
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() \
            or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError("labels must be an integer tensor (...)")
    if labels.shape != student_logits.shape[:-1]:
        raise ValueError(f"labels {_shape(labels)} must match student_logits "
                         f"{_shape(student_logits)} without its vocabulary dim")


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """At least float32 (bf16/fp16 softmax tails are too coarse); float64 stays float64."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _log_probs(logits: torch.Tensor, temperature: float, dtype: torch.dtype) -> torch.Tensor:
    return torch.log_softmax(logits.to(dtype) / temperature, dim=-1)


def _softened(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked (log p_S, log p_T) at temperature T, in the compute dtype; the teacher detached."""
    _check_temperature(temperature)
    _check_pair(student_logits, teacher_logits)
    dtype = _compute_dtype(student_logits, teacher_logits)
    return (_log_probs(student_logits, temperature, dtype),
            _log_probs(teacher_logits.detach(), temperature, dtype))


def _kl_tokens(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per token from log-probabilities (..., V) → (...)."""
    return torch.sum(log_p.exp() * (log_p - log_q), dim=-1)


def _token_mean(per_token: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-token values (...) over the tokens ``mask`` (...) selects (all if None)."""
    if mask is None:
        return per_token.mean()
    if not isinstance(mask, torch.Tensor):
        raise ValueError("mask must be a tensor of shape (...) (bool or 0/1)")
    if mask.shape != per_token.shape:
        raise ValueError(f"mask has shape {_shape(mask)} but the tokens have shape "
                         f"{_shape(per_token)} (logits without the vocabulary dim)")
    if mask.dtype != torch.bool:
        # A fractional weight would be read as "selected" by .bool(): refuse it, not guess.
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must be bool or hold only 0 and 1")
        mask = mask != 0
    mask = mask.to(per_token.device)
    if not bool(mask.any()):
        raise ValueError("mask selects no tokens: the mean over an empty selection is undefined")
    return per_token[mask].mean()


# ---- soft losses ---------------------------------------------------------------------------

def kl_forward(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               temperature: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(p_T ‖ p_S) · T², averaged over the selected tokens.

    student_logits, teacher_logits (..., V) any float dtype (computed in ≥ float32); mask (...)
    bool or 0/1, True where a token counts (padding excluded). Returns a scalar in the compute
    dtype; p = softmax(logits / T).
    """
    log_s, log_t = _softened(student_logits, teacher_logits, temperature)
    return _token_mean(_kl_tokens(log_t, log_s), mask) * temperature ** 2


def kl_reverse(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               temperature: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(p_S ‖ p_T) · T², averaged over the selected tokens. Shapes as in ``kl_forward``."""
    log_s, log_t = _softened(student_logits, teacher_logits, temperature)
    return _token_mean(_kl_tokens(log_s, log_t), mask) * temperature ** 2


def jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
        temperature: float = 1.0, mask: torch.Tensor | None = None,
        beta: float = 0.5) -> torch.Tensor:
    """Generalised Jensen–Shannon divergence (GKD) · T², averaged over the selected tokens:
    β·KL(p_T ‖ m) + (1−β)·KL(p_S ‖ m) with m = β·p_T + (1−β)·p_S, beta in (0, 1).

    beta = 0.5 is the symmetric JSD, bounded by ln 2 per token. Shapes as in ``kl_forward``.
    """
    _check_beta(beta)
    log_s, log_t = _softened(student_logits, teacher_logits, temperature)
    # log m via logsumexp: forming β·p_T + (1−β)·p_S in probability space would round the
    # tails to 0 and make log m = −inf wherever both distributions are tiny.
    log_m = torch.logsumexp(torch.stack([math.log(beta) + log_t,
                                         math.log1p(-beta) + log_s]), dim=0)
    per_token = beta * _kl_tokens(log_t, log_m) + (1 - beta) * _kl_tokens(log_s, log_m)
    return _token_mean(per_token, mask) * temperature ** 2


def _check_topk(student_logits: torch.Tensor, values: torch.Tensor, indices,
                temperature: float, what: str = "teacher_topk_values") -> None:
    _check_temperature(temperature)
    _check_logits("student_logits", student_logits)
    _check_logits(what, values)
    if not isinstance(indices, torch.Tensor) or indices.is_floating_point() \
            or indices.dtype == torch.bool or indices.is_complex():
        raise ValueError("teacher_topk_indices must be an integer tensor (..., k)")
    vocab = student_logits.shape[-1]
    if values.shape != indices.shape or values.shape[:-1] != student_logits.shape[:-1]:
        raise ValueError(f"{what} {_shape(values)} and teacher_topk_indices "
                         f"{_shape(indices)} must both be (..., k) with the leading dims of "
                         f"student_logits {_shape(student_logits)}")
    if values.shape[-1] > vocab:
        raise ValueError(f"k = {values.shape[-1]} exceeds the student's vocabulary V = {vocab} "
                         f"(student_logits {_shape(student_logits)})")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= vocab):
        raise ValueError(f"teacher_topk_indices must lie in [0, {vocab}), got "
                         f"[{int(indices.min())}, {int(indices.max())}]")
    sorted_idx = indices.sort(dim=-1).values
    if bool((sorted_idx[..., 1:] == sorted_idx[..., :-1]).any()):
        raise ValueError("teacher_topk_indices repeat a token within a position; top-k ids "
                         "must be distinct")


def kl_forward_topk(student_logits: torch.Tensor, teacher_topk_values: torch.Tensor,
                    teacher_topk_indices: torch.Tensor, temperature: float = 1.0,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """Forward KL against a teacher cached as its top-k logits only, · T².

    student_logits (..., V); teacher_topk_values (..., k) float — the teacher's logits (or
    log-probs: a per-token shift cancels) at teacher_topk_indices (..., k) int, distinct ids in
    [0, V); mask (...) as in ``kl_forward``.

    The teacher is renormalised over its k tokens, p̂_T = softmax(values / T), and the loss per
    token is Σ_k p̂_T,k (log p̂_T,k − log p_S,k), where log p_S is the student's *full*
    log-softmax over V gathered at the indices. Keeping the student's full normaliser means
    mass the student puts outside the teacher's top-k is still penalised (the sum is ≥ 0 and is
    0 only when the student matches p̂_T there), and when k = V it is exactly ``kl_forward``.
    """
    _check_topk(student_logits, teacher_topk_values, teacher_topk_indices, temperature)
    values, indices = teacher_topk_values, teacher_topk_indices
    dtype = _compute_dtype(student_logits, values)
    log_s = _log_probs(student_logits, temperature, dtype)
    log_s_k = torch.gather(log_s, -1, indices.to(log_s.device, torch.long))
    log_t_k = _log_probs(values.detach().to(log_s.device), temperature, dtype)
    return _token_mean(_kl_tokens(log_t_k, log_s_k), mask) * temperature ** 2


def kl_forward_topk_tail(student_logits: torch.Tensor, teacher_topk_logprobs: torch.Tensor,
                         teacher_topk_indices: torch.Tensor, temperature: float = 1.0,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """Forward KL against a teacher cached as its top-k log-probabilities plus the rest, · T².

    teacher_topk_logprobs (..., k): the teacher's log-probabilities at temperature T over the
    whole vocabulary, log_softmax(logits / T), at teacher_topk_indices (..., k) (distinct ids
    in [0, V)); student_logits (..., V); mask (...) as in ``kl_forward``.

    Both distributions are coarsened to k + 1 outcomes, the k cached tokens and "any other"
    (probability 1 − Σ_k p_T,k for the teacher; for the student, its mass outside the k tokens,
    computed stably from its logits there); the loss per token is the KL between the coarsened
    distributions. Unlike ``kl_forward_topk``, which renormalises
    the teacher over its k tokens, it does not ask the student to put all its mass there: a
    student trained on it keeps the teacher's tail mass, and its perplexity does not pay for the
    tokens that fall outside the teacher's top k. k = V gives ``kl_forward`` exactly.
    """
    _check_topk(student_logits, teacher_topk_logprobs, teacher_topk_indices, temperature,
                "teacher_topk_logprobs")
    values, indices = teacher_topk_logprobs, teacher_topk_indices
    dtype = _compute_dtype(student_logits, values)
    log_t_k = values.detach().to(student_logits.device, dtype)
    p_t_k = log_t_k.exp()
    mass = p_t_k.sum(dim=-1)
    if values.numel() and float(mass.max()) > 1 + 1e-3:
        raise ValueError(f"teacher_topk_logprobs must be log-probabilities over the whole "
                         f"vocabulary (at most 1 in total per token), but one token's top-k "
                         f"sums to {float(mass.max()):.4f}: pass log_softmax(logits / T) "
                         f"values, not logits")
    z = student_logits.to(dtype) / temperature
    idx = indices.to(z.device, torch.long)
    norm = torch.logsumexp(z, dim=-1, keepdim=True)
    per_token = torch.sum(p_t_k * (log_t_k - (torch.gather(z, -1, idx) - norm)), dim=-1)
    if values.shape[-1] < z.shape[-1]:
        # The student's log-mass outside the k tokens, without subtracting from 1 (which loses
        # all precision when the top k hold nearly everything).
        outside = z.scatter(-1, idx, float("-inf"))
        log_s_rest = torch.logsumexp(outside, dim=-1) - norm.squeeze(-1)
        p_rest = (1 - mass).clamp(min=0)
        per_token = per_token + torch.xlogy(p_rest, p_rest) - p_rest * log_s_rest
    return _token_mean(per_token, mask) * temperature ** 2


# ---- hard loss and the mix -----------------------------------------------------------------

def hard_ce(student_logits: torch.Tensor, labels: torch.Tensor,
            ignore_index: int = -100) -> torch.Tensor:
    """Next-token cross entropy, mean over the tokens whose label is not ``ignore_index``.

    student_logits (..., V); labels (...) int, already aligned to the logits' positions (the
    caller shifts: labels[t] is the token that follows position t). Computed in ≥ float32.
    """
    _check_labels(student_logits, labels)
    vocab = student_logits.shape[-1]
    keep = labels != ignore_index
    if not bool(keep.any()):
        raise ValueError(f"every label is ignore_index ({ignore_index}): no token to average")
    kept = labels[keep]
    if int(kept.min()) < 0 or int(kept.max()) >= vocab:
        raise ValueError(f"labels must lie in [0, {vocab}) or equal ignore_index "
                         f"({ignore_index}), got [{int(kept.min())}, {int(kept.max())}]")
    log_s = _log_probs(student_logits, 1.0, _compute_dtype(student_logits))
    # Ignored positions gather id 0 (any valid id) and are then dropped by the mask.
    safe = labels.masked_fill(~keep, 0).to(log_s.device, torch.long)
    nll = -torch.gather(log_s, -1, safe.unsqueeze(-1)).squeeze(-1)
    return _token_mean(nll, keep)


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                 labels: torch.Tensor | None = None, *, kind: str = "forward",
                 temperature: float = 1.0, alpha: float = 0.5, beta: float = 0.5,
                 mask: torch.Tensor | None = None,
                 ignore_index: int = -100) -> tuple[torch.Tensor, dict[str, float]]:
    """loss = alpha · soft + (1 − alpha) · hard → (loss, parts).

    soft: ``kind`` "forward" (``kl_forward``), "reverse" (``kl_reverse``) or "jsd" (``jsd``
    with ``beta``), at ``temperature`` and already · T². hard: ``hard_ce`` at T = 1 on
    ``labels`` (...), needed whenever alpha < 1; ``mask`` (...) applies to both (tokens it
    leaves out count as ignored labels). A term whose weight is 0 is left out of the sum, so it
    neither adds gradient nor can turn the loss into NaN.

    parts: detached floats {'soft', 'hard' (only when used), 'total'}.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    _check_temperature(temperature)
    _check_beta(beta)
    if alpha < 1 and labels is None:
        raise ValueError(f"alpha = {alpha} < 1 gives the hard loss weight {1 - alpha:g}: "
                         f"labels are required")
    if kind == "jsd":
        soft = jsd(student_logits, teacher_logits, temperature, mask, beta)
    else:
        fn = kl_forward if kind == "forward" else kl_reverse
        soft = fn(student_logits, teacher_logits, temperature, mask)
    parts = {"soft": float(soft.detach())}
    total = alpha * soft if alpha > 0 else None
    if alpha < 1:
        if mask is not None:
            # _token_mean already checked the mask's shape and values in the soft loss.
            keep = mask.to(device=labels.device).bool()
            labels = labels.masked_fill(~keep, ignore_index)
        hard = hard_ce(student_logits, labels, ignore_index)
        parts["hard"] = float(hard.detach())
        weighted = (1 - alpha) * hard
        total = weighted if total is None else total + weighted
    parts["total"] = float(total.detach())
    return total, parts


# ---- hidden-state matching -----------------------------------------------------------------

class HiddenMatch(nn.Module):
    """MSE between student and teacher hidden states on chosen layer pairs.

    layer_map {student layer: teacher layer} indexes the hidden-state sequences handed to
    ``forward`` as they are (with Hugging Face ``output_hidden_states``, index 0 is the
    embedding output). When the widths differ each pair gets its own learned
    ``nn.Linear(student_width, teacher_width, bias=False)`` starting as the rectangular identity
    (eye padded with zeros or truncated): at step 0 the student's first channels are compared
    with the teacher's, a fair start for the least-squares fit the projection then learns. Equal
    widths compare directly, no parameters.
    """

    def __init__(self, student_width: int, teacher_width: int, layer_map: Mapping[int, int]):
        super().__init__()
        for name, width in (("student_width", student_width), ("teacher_width", teacher_width)):
            if not isinstance(width, int) or width < 1:
                raise ValueError(f"{name} must be a positive int, got {width!r}")
        if not isinstance(layer_map, Mapping) or not layer_map:
            raise ValueError("layer_map must be a non-empty dict {student layer: teacher layer}")
        bad = {s: t for s, t in layer_map.items()
               if not (isinstance(s, int) and isinstance(t, int) and s >= 0 and t >= 0)}
        if bad:
            raise ValueError(f"layer_map indices must be ints >= 0, got {bad}")
        self.student_width, self.teacher_width = student_width, teacher_width
        self.layer_map = dict(layer_map)
        self.proj = nn.ModuleDict()
        if student_width != teacher_width:
            for s in self.layer_map:
                lin = nn.Linear(student_width, teacher_width, bias=False)
                with torch.no_grad():
                    lin.weight.copy_(torch.eye(teacher_width, student_width))
                self.proj[str(s)] = lin

    def forward(self, student_hidden: Sequence[torch.Tensor],
                teacher_hidden: Sequence[torch.Tensor],
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """student_hidden[i] (..., student_width), teacher_hidden[j] (..., teacher_width) with
        the same leading dims; mask (...) bool or 0/1. Returns the mean over the pairs of each
        pair's mean-over-tokens MSE (mean over channels per token), a ≥ float32 scalar; the
        teacher is detached."""
        bad_s = sorted(s for s in self.layer_map if s >= len(student_hidden))
        bad_t = sorted(t for t in self.layer_map.values() if t >= len(teacher_hidden))
        if bad_s or bad_t:
            raise ValueError(f"layer_map refers to missing layers: student {bad_s} (have "
                             f"{len(student_hidden)}), teacher {bad_t} (have "
                             f"{len(teacher_hidden)})")
        losses = []
        for s, t in self.layer_map.items():
            hs, ht = student_hidden[s], teacher_hidden[t].detach()
            if hs.shape[-1] != self.student_width or ht.shape[-1] != self.teacher_width \
                    or hs.shape[:-1] != ht.shape[:-1]:
                raise ValueError(f"pair student {s} → teacher {t}: need (..., "
                                 f"{self.student_width}) and (..., {self.teacher_width}) with "
                                 f"equal leading dims, got {_shape(hs)} and {_shape(ht)}")
            dtype = _compute_dtype(hs, ht)
            hs = hs.to(dtype)
            if str(s) in self.proj:
                hs = F.linear(hs, self.proj[str(s)].weight.to(dtype))
            per_token = (hs - ht.to(dtype)).pow(2).mean(dim=-1)
            losses.append(_token_mean(per_token, mask))
        return torch.stack(losses).mean()


# ---- same-vocabulary checks ----------------------------------------------------------------

def check_same_tokenizer(student_tok, teacher_tok) -> None:
    """Raise ValueError unless both tokenizers number the same strings the same way.

    With ``get_vocab()`` on both, the {token: id} dicts must be equal (sizes first, then up to
    five differing tokens are named). Otherwise ``len()`` must agree and ``encode`` must give the
    same ids for PROBE_SENTENCE — a spot check, not a proof. Token-level distillation compares
    logits id by id, so a single swapped id silently trains the student on the wrong targets.
    """
    if callable(getattr(student_tok, "get_vocab", None)) \
            and callable(getattr(teacher_tok, "get_vocab", None)):
        vs, vt = student_tok.get_vocab(), teacher_tok.get_vocab()
        if len(vs) != len(vt):
            raise ValueError(f"tokenizer vocab sizes differ: student {len(vs)}, "
                             f"teacher {len(vt)}")
        if vs != vt:
            diff = sorted(k for k in vs.keys() | vt.keys() if vs.get(k) != vt.get(k))
            shown = ", ".join(f"{k!r}: student {vs.get(k)} vs teacher {vt.get(k)}"
                              for k in diff[:5])
            raise ValueError(f"tokenizers map {len(diff)} token(s) to different ids, e.g. "
                             f"{shown}")
        return
    for name, tok in (("student", student_tok), ("teacher", teacher_tok)):
        if not (hasattr(tok, "__len__") and callable(getattr(tok, "encode", None))):
            raise TypeError(f"{name} tokenizer needs get_vocab(), or __len__ and encode()")
    if len(student_tok) != len(teacher_tok):
        raise ValueError(f"tokenizer vocab sizes differ: student {len(student_tok)}, "
                         f"teacher {len(teacher_tok)}")
    es, et = list(student_tok.encode(PROBE_SENTENCE)), list(teacher_tok.encode(PROBE_SENTENCE))
    if es != et:
        raise ValueError(f"tokenizers encode {PROBE_SENTENCE!r} differently: student {es}, "
                         f"teacher {et}")


def check_same_vocab_size(student_config, teacher_config) -> None:
    """Raise ValueError unless both model configs (objects or dicts) have the same
    ``vocab_size`` — the width of the logits the soft losses compare."""
    sizes = []
    for name, cfg in (("student", student_config), ("teacher", teacher_config)):
        size = cfg.get("vocab_size") if isinstance(cfg, Mapping) else getattr(cfg, "vocab_size",
                                                                               None)
        if size is None:
            raise ValueError(f"{name} config has no vocab_size")
        sizes.append(size)
    if sizes[0] != sizes[1]:
        raise ValueError(f"vocab_size differs: student {sizes[0]}, teacher {sizes[1]}")
