"""Fake-quantized students: linears → FakeQuantLinear, float weights trained through rounding
onto fixed group scales (a straight-through estimator); ``pack_fake_quant`` then makes
QuantLinear layers with the same scales and the trained codes, which compute the trained logits.

Storage of b-bit codes. This codebase has one group-wise integer format, int4_tile16x8, whose
kernels compute (q − zero)·scale for any code q in 0..15. Students of 2, 3 or 4 bits keep their
codes in it: asymmetric codes use 0..2^b−1 with a zero point in that range; symmetric codes
sit around the format's fixed zero point 8, 8−2^(b−1)..8+2^(b−1)−1 (3 bits: 4..11), with the
scale chosen so each group's largest-magnitude weight lands on the lowest code (quantizers'
rule for 4 bits). A 3-bit student therefore packs into 4-bit bytes: the 3-bit grid, not yet
the 3-bit size.
"""

from __future__ import annotations

import dataclasses
import re

import torch
import torch.nn.functional as F
from torch import nn

from .. import formats
from ..configs import Int4WeightOnly
from ..nn import QuantLinear, SparseLinear
from ..quantization.layer_plan import DEFAULT_KEEP, FilterFn, swap_module
from ..quantizers import INT4_CONTAINER_BITS, int4_code_range, int4_group_params
from .constraints import add_constraint, constraints_of

BITS = INT4_CONTAINER_BITS  # 1 bit would leave a symmetric grid {-s, 0}
INITS = ("rtn", "quantized")


def group_params(groups: torch.Tensor, bits: int, symmetric: bool):
    """Per-group (scale, zero point) float32 of ``bits``-bit codes for weight groups (..., g), in
    int4-container units: quantizers.int4_group_params (equal to the 4-bit rules bit for bit)."""
    return int4_group_params(groups, symmetric, bits)


def code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """(lowest, highest) container code of ``bits``-bit weights (quantizers.int4_code_range)."""
    return int4_code_range(bits, symmetric)


def _check_bits(bits: int) -> None:
    int4_code_range(bits)


def _per_column(t: torch.Tensor, group: int, k: int) -> torch.Tensor:
    """Group values (N, G) → one per weight (N, k)."""
    return t.repeat_interleave(group, dim=1)[:, :k]


def _unclamped_codes(w: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    # quantizers.int4_encode before its clamp: the same arithmetic, so the codes match RTN's.
    inv = torch.where(scales != 0, 1.0 / scales, torch.zeros_like(scales))
    return torch.round(w * inv) + zeros


class _FakeQuantSTE(torch.autograd.Function):
    """(clamp(round(w/s) + z) − z)·s in float32; backward: the gradient passes where the code was
    not clamped and is zero where it was."""

    @staticmethod
    def forward(ctx, w, scales, zeros, qmin, qmax):
        raw = _unclamped_codes(w.float(), scales, zeros)
        inside = (raw >= qmin) & (raw <= qmax)
        ctx.save_for_backward(inside)
        ctx.w_dtype = w.dtype
        return (raw.clamp(qmin, qmax) - zeros) * scales

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad.masked_fill(~inside, 0).to(ctx.w_dtype), None, None, None, None


class FakeQuantLinear(nn.Module):
    """An nn.Linear trained through ``bits``-bit group-wise fake quantization (QAT).

    Parameters: ``weight`` float32 (out_features, in_features), the latent weight the optimizer
    moves, and ``bias`` float32 (out_features,) or None. Buffers, fixed at construction and never
    trained: ``scales`` and ``zeros`` float32 (out_features, G), one per group of
    ``scheme.group_size`` inputs, zeros in int4-container units (8 when symmetric).

    forward(x (..., in_features), any float dtype) computes in float32 what the packed
    QuantLinear computes, F.linear(x, (clamp(round(w/s) + z, qmin, qmax) − z)·s, b), and returns
    x's dtype. Backward is a straight-through estimator: round counts as the identity, and the
    gradient of a weight whose code was clamped is zero (as PyTorch's fake_quantize and LSQ):
    no gradient pushes a weight further past the end of a grid the packed layer cannot leave.

    The latent weight is float32 whatever the model's dtype: AdamW's steps are often below a
    bfloat16 ulp, and would vanish in a bfloat16 weight. Under torch.autocast the product runs
    in autocast's dtype, as any linear's does; pack_fake_quant reproduces the float32 forward.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, scales: torch.Tensor,
                 zeros: torch.Tensor, bits: int, scheme: Int4WeightOnly):
        super().__init__()
        n, k = weight.shape
        _, k_pad, g = formats.int4_padding(n, k, scheme.group_size)
        if tuple(scales.shape) != (n, k_pad // g) or tuple(zeros.shape) != (n, k_pad // g):
            raise ValueError(f"scales and zeros must have shape ({n}, {k_pad // g}), got "
                             f"{tuple(scales.shape)} and {tuple(zeros.shape)}")
        self.in_features, self.out_features, self.bits, self.scheme = k, n, bits, scheme
        self.group = g
        self.qmin, self.qmax = code_range(bits, scheme.symmetric)
        self.weight = nn.Parameter(weight.detach().float().clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone())
        self.register_buffer("scales", scales.detach().float().clone())
        self.register_buffer("zeros", zeros.detach().float().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int, scheme: Int4WeightOnly) -> "FakeQuantLinear":
        """Round-to-nearest scales and zero points of ``linear.weight`` (group_params)."""
        _check_bits(bits)
        w = linear.weight.detach().float()
        n, k = w.shape
        _, k_pad, g = formats.int4_padding(n, k, scheme.group_size)
        padded = torch.zeros(n, k_pad, device=w.device)  # zero padding moves no group's range
        padded[:, :k] = w
        scales, zeros = group_params(padded.view(n, k_pad // g, g), bits, scheme.symmetric)
        return cls(w, linear.bias, scales, zeros, bits, scheme)

    @classmethod
    def from_codes(cls, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                   bias: torch.Tensor | None, bits: int,
                   scheme: Int4WeightOnly) -> "FakeQuantLinear":
        """A layer whose latent weight starts at the dequantized codes (N, K) of another
        quantizer (GPTQ, AWQ), on its scales (N, G) and zero points (N, G) or None (symmetric):
        its codes are those codes again (|q − z| ≤ 15 survives the float round trip)."""
        qmin, qmax = code_range(bits, scheme.symmetric)
        zeros = torch.full_like(scales, 8.0) if zeros is None else zeros.float()
        lo, hi = int(codes.min()), int(codes.max())
        if lo < qmin or hi > qmax or int(zeros.min()) < qmin or int(zeros.max()) > qmax:
            raise ValueError(f"codes {lo}..{hi} or zero points lie outside the {bits}-bit range "
                             f"{qmin}..{qmax}: the layer was quantized with more bits")
        n, k = codes.shape
        g = formats.int4_padding(n, k, scheme.group_size)[2]
        w = (codes.float() - _per_column(zeros, g, k)) * _per_column(scales.float(), g, k)
        return cls(w, bias, scales, zeros, bits, scheme)

    def _cols(self, t: torch.Tensor) -> torch.Tensor:
        return _per_column(t, self.group, self.in_features)

    def codes(self) -> torch.Tensor:
        """The container codes (out_features, in_features) uint8 of the current weight."""
        with torch.no_grad():
            raw = _unclamped_codes(self.weight.float(), self._cols(self.scales),
                                   self._cols(self.zeros))
            return raw.clamp_(self.qmin, self.qmax).to(torch.uint8)

    def quantized_weight(self) -> torch.Tensor:
        """The float32 weight (out_features, in_features) the forward uses: (codes − z)·s."""
        with torch.no_grad():
            return ((self.codes().float() - self._cols(self.zeros))
                    * self._cols(self.scales))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = _FakeQuantSTE.apply(self.weight, self._cols(self.scales),
                                self._cols(self.zeros), self.qmin, self.qmax)
        return F.linear(x.float(), w, self.bias).to(x.dtype)

    def to_quant_linear(self, act_int8_min_m: int | None = None) -> QuantLinear:
        """The QuantLinear (int4_tile16x8) holding this layer's codes, scales and zero points."""
        scheme = dataclasses.replace(self.scheme, act_int8_min_m=act_int8_min_m)
        q = QuantLinear(self.in_features, self.out_features, self.bias is not None, scheme)
        zeros = None if scheme.symmetric else self.zeros.cpu().to(torch.uint8)
        q.load_codes(self.codes().cpu(), self.scales.cpu(), zeros,
                     None if self.bias is None else self.bias.detach().cpu())
        return q.to(self.weight.device)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, bits={self.bits}, "
                f"group_size={self.scheme.group_size}, symmetric={self.scheme.symmetric}")


def fake_quant_student(model: nn.Module, bits: int = 3, group_size: int | None = None,
                       symmetric: bool | None = None, init: str = "rtn",
                       filter_fn: FilterFn | None = None) -> nn.Module:
    """Replaces linears of ``model`` by FakeQuantLinear, in place; returns ``model`` (pass a copy
    to keep the teacher).

    bits: 2, 3 or 4 (codes in int4 containers, see the module docstring).
    init "rtn": every nn.Linear except lm_head (as quantize_) gets round-to-nearest group scales
        of its own weight; group_size defaults to 128 (-1: one group per row), symmetric to True.
    init "quantized": every int4 QuantLinear (e.g. from quantize_(model, GPTQ(...))) and int4
        2:4 SparseLinear keeps its scales, zero points and codes, its latent weight starting at
        their dequantized value: the untrained student computes what the quantized model does.
        group_size and symmetric are each layer's own (given ones must match); float linears
        stay as they are.
    filter_fn(module, name): only modules for which it is true are replaced.

    A pruned layer's mask (pruned_student) moves to its FakeQuantLinear: a zero weight has the
    zero point's code, so the packed layer keeps the zeros. To pin the zeros of a quantized
    2:4 model, call pruned_student on the student this returns.
    """
    _check_bits(bits)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if group_size is not None:
        Int4WeightOnly(group_size)  # raises on a group size the int4 format cannot hold
    swapped = 0
    for name, mod in list(model.named_modules()):
        if not name or (filter_fn is not None and not filter_fn(mod, name)):
            continue
        try:
            new = _fake_quant_module(mod, name, bits, group_size, symmetric, init)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from e
        if new is None:
            continue
        for c in constraints_of(mod):
            add_constraint(new, c)  # hooks the new weight, unhooks the old
        swap_module(model, name, new)
        swapped += 1
    if not swapped:
        wanted = "nn.Linear" if init == "rtn" else "int4 QuantLinear or SparseLinear"
        raise ValueError(f"no {wanted} layer to replace in the model (init={init!r})")
    return model


def _fake_quant_module(mod: nn.Module, name: str, bits: int, group_size: int | None,
                       symmetric: bool | None, init: str) -> FakeQuantLinear | None:
    if init == "rtn":
        if type(mod) is not nn.Linear or re.search(DEFAULT_KEEP, name):
            return None
        scheme = Int4WeightOnly(128 if group_size is None else group_size,
                                True if symmetric is None else symmetric)
        return FakeQuantLinear.from_linear(mod, bits, scheme)
    if isinstance(mod, QuantLinear) and isinstance(mod.config, Int4WeightOnly):
        codes, scales, zeros = mod.codes()
        layer = Int4WeightOnly(mod.config.group_size, mod.config.symmetric)
    elif isinstance(mod, SparseLinear) and mod.config.bits == 4:
        codes, scales = mod.codes()
        zeros, layer = None, Int4WeightOnly(mod.config.group_size, True)
    else:
        return None
    if group_size is not None and group_size != layer.group_size:
        raise ValueError(f"group_size={group_size} given, the layer has {layer.group_size}")
    if symmetric is not None and symmetric != layer.symmetric:
        raise ValueError(f"symmetric={symmetric} given, the layer has {layer.symmetric}")
    bias = None if mod.bias is None else mod.bias.cpu()
    out = FakeQuantLinear.from_codes(codes.cpu(), scales.cpu(),
                                     None if zeros is None else zeros.cpu(), bias, bits, layer)
    return out.to(mod.scales.device)


def pack_fake_quant(model: nn.Module, act_int8_min_m: int | None = None) -> nn.Module:
    """Replaces every FakeQuantLinear of ``model`` by a QuantLinear with the same scales and zero
    points and the codes of its current weight, in place; returns ``model``. The packed weights
    are bit for bit those the student's forward used: its outputs differ only by float32
    summation order in the kernels.

    act_int8_min_m: the packed layers' Int4WeightOnly setting. None (default) keeps float
        activations, what the student trained with; 3 (DEFAULT_ACT_INT8_MIN_M) runs batches of
        3 rows and more with int8 activations (faster, no longer the trained function).
    Symmetric 2:4 layers can then take the sparse format, same codes: ``llmaccel.sparsify_``.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, FakeQuantLinear)]
    if not names:
        raise ValueError("the model has no FakeQuantLinear layer to pack")
    for name in names:
        swap_module(model, name, model.get_submodule(name).to_quant_linear(act_int8_min_m))
    return model
