"""SparseLinear: an nn.Linear replacement holding a 2:4 sparse weight, run by the sp24 kernels
(on a GPU, held as the dense weight it represents and run by the dense ones)."""

from __future__ import annotations

import torch
from torch import nn

from .. import formats, ops
from ..configs import Int4WeightOnly, Sparse24
from .device_layout import DeviceLayoutModule
from .quant_linear import QuantLinear, act_int8_threshold, check_concat

_KERNEL_DTYPES = (torch.float32, torch.bfloat16)
_CUDA_DTYPES = (torch.float16, torch.bfloat16)


class SparseLinear(DeviceLayoutModule):
    """y = x · Wᵀ + b with W 2:4 sparse along in_features.

    ``config.bits == 4``: buffers ``qweight`` and ``scales`` (int4_sp24_tile16x32: symmetric int4
    codes, weight = (q − 8) · scale), run by ``gemm_w4a16_sp24`` below ``config.act_int8_min_m``
    rows of x and by ``gemm_w4a8_sp24`` (activations quantized to int8 per token and group) from
    there on, as QuantLinear's int4 layers; the CPU path may raise that threshold or keep float
    activations (``ops.w4a8_sp24_min_m`` says where and why); ``bits == 16``: buffer ``packed``
    (bf16_sp24_tile16x32) and ``gemm_sp24``. ``bias`` float32 or None. Input (..., in_features)
    float32 or bfloat16 (other float dtypes computed in float32), output in x's dtype.

    Build one from a pruned layer: ``from_quant_linear`` (an Int4WeightOnly symmetric QuantLinear
    whose codes are 2:4: exact, the same weights) or ``from_linear`` (a float nn.Linear with 2:4
    zeros: values rounded to bfloat16).

    On CUDA (``.to("cuda")``) there is no 2:4 kernel yet, so the weight moves as the dense weight
    it represents, while ``state_dict`` keeps the 2:4 format: ``bits == 4`` repacks ``qweight``
    into int4_cuda_mma16x32 (int32; pruned weights are code 8, exactly 0) and runs QuantLinear's
    ``gemm_w4a16`` kernels, 4 bits a weight on the GPU instead of 3; ``bits == 16`` holds
    ``packed`` as the dense bfloat16 weight (n, k) and runs cuBLAS through torch. x float16 or
    bfloat16 is used as it is by ``bits == 4`` (other dtypes are computed in bfloat16 and cast
    back); ``bits == 16`` computes in bfloat16. Activations stay 16-bit floats at every M, as
    QuantLinear's Int4WeightOnly layers on CUDA.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool, config: Sparse24):
        super().__init__()
        if not isinstance(config, Sparse24):
            raise TypeError(f"SparseLinear needs a Sparse24 config, got {config!r}")
        self.in_features, self.out_features, self.config = in_features, out_features, config
        self._int8_min_m = act_int8_threshold(config)
        n_pad = (out_features + 15) // 16 * 16
        if config.bits == 4:
            _, k_pad, g = formats.int4_padding(out_features, in_features, config.group_size)
            self.group_size = g
            self.register_buffer("qweight", torch.zeros(n_pad // 16, k_pad // 32 * 192,
                                                        dtype=torch.uint8))
            self.register_buffer("scales", torch.zeros(n_pad // 16, k_pad // g, 16))
        else:
            k_pad = (in_features + 31) // 32 * 32
            self.register_buffer("packed", torch.zeros(n_pad // 16, k_pad // 32 * 576,
                                                       dtype=torch.uint8))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @property
    def format(self) -> formats.FormatSpec:
        return formats.INT4_SP24_TILE16X32 if self.config.bits == 4 else formats.BF16_SP24_TILE16X32

    # ---- device layouts: 2:4 on the CPU and on disk, the dense weight on a GPU ----

    @property
    def _weight_name(self) -> str:
        return "qweight" if self.config.bits == 4 else "packed"

    def _is_device_form(self, t: torch.Tensor) -> bool:
        return t.dtype != torch.uint8

    def _device_form(self, w: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
        # unpacked on the CPU (formats/sp24.py), then moved
        if self.config.bits == 4:
            dense = formats.to_cuda_int4_sp24(formats.PackedInt4Sp24.of(
                w, scales, self.out_features, self.in_features))
        else:
            dense = ops.dequant_sp24(w.cpu(), self.out_features, self.in_features).bfloat16()
        return dense.to(w.device)

    def _canonical_form(self, w: torch.Tensor) -> torch.Tensor:
        if self.config.bits == 4:
            canonical = formats.from_cuda_int4_sp24(w, self.scales, self.out_features,
                                                    self.in_features)
        else:
            canonical = formats.pack_sp24(w.cpu()).packed
        return canonical.to(w.device)

    @classmethod
    def from_quant_linear(cls, q: QuantLinear) -> "SparseLinear":
        """The same layer (same codes and scales) in the 2:4 int4 format; ValueError when q is
        not symmetric int4 or its codes are not 2:4."""
        if not isinstance(q.config, Int4WeightOnly) or not q.config.symmetric:
            raise ValueError(f"only symmetric int4 layers pack as 2:4 int4, got {q.config}")
        codes, scales, _ = q.codes()
        codes, scales = codes.cpu(), scales.cpu()  # packed on the CPU, then moved
        out = cls(q.in_features, q.out_features, q.bias is not None,
                  Sparse24(4, q.config.group_size, q.config.act_int8_min_m))
        p = formats.pack_int4_sp24(codes, scales, q.config.group_size)
        out.qweight, out.scales = p.qweight, p.scales
        if q.bias is not None:
            out.bias = q.bias.detach().cpu().clone()
        return out.to(q.qweight.device)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "SparseLinear":
        """A float layer whose weight has at most 2 nonzeros in every 4 consecutive inputs, with
        the values rounded to bfloat16; ValueError otherwise."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"expected nn.Linear, got {type(linear).__name__}")
        out = cls(linear.in_features, linear.out_features, linear.bias is not None, Sparse24(16))
        out.packed = formats.pack_sp24(linear.weight.detach().cpu()).packed
        if linear.bias is not None:
            out.bias = linear.bias.detach().float().cpu().clone()
        return out.to(linear.weight.device)

    def codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """bits 4: the stored codes (out_features, in_features) uint8, 8 where pruned, and scales
        (out_features, n_groups) float32, on the CPU, wherever the layer is."""
        if self.config.bits != 4:
            raise ValueError("codes() is for 2:4 int4 layers; a bf16 layer has dequantize()")
        return formats.unpack_int4_sp24(formats.PackedInt4Sp24(
            self.canonical_weight().cpu(), self.scales.cpu(), self.out_features, self.in_features,
            self.group_size))

    def dequantize(self) -> torch.Tensor:
        """The float32 weight (out_features, in_features) this layer represents, on its device."""
        if self.config.bits == 16:
            if self._device_layout():
                return self.packed.float()
            return ops.dequant_sp24(self.packed, self.out_features, self.in_features)
        if self._device_layout():
            return ops.dequant_w4(self.qweight, self.scales, None, self.out_features,
                                  self.in_features)
        return ops.dequant_w4_sp24(self.qweight, self.scales, self.out_features, self.in_features)

    @classmethod
    def concat(cls, layers: list["SparseLinear"]) -> "SparseLinear":
        """One layer computing the outputs of ``layers`` side by side: the buffers are tiles of
        16 rows, so they stack when every layer but the last has a multiple of 16 outputs."""
        first = check_concat(layers)
        out = cls(first.in_features, sum(s.out_features for s in layers), first.bias is not None,
                  first.config)
        for name in ("qweight", "scales") if first.config.bits == 4 else ("packed",):
            setattr(out, name, torch.cat([getattr(s, name) for s in layers]))
        if first.bias is not None:
            out.bias = torch.cat([s.bias for s in layers])
        return out

    def select_rows(self, index: torch.Tensor) -> "SparseLinear":
        """A layer computing outputs ``index`` of this one, with the same stored values."""
        index = torch.as_tensor(index, dtype=torch.long)
        out = SparseLinear(self.in_features, index.numel(), self.bias is not None, self.config)
        if self.config.bits == 4:
            codes, scales = self.codes()
            p = formats.pack_int4_sp24(codes[index], scales[index], self.config.group_size)
            out.qweight, out.scales = p.qweight, p.scales
        else:
            out.packed = formats.pack_sp24(self.dequantize().cpu()[index]).packed
        if self.bias is not None:
            out.bias = self.bias.cpu()[index].clone()
        return out.to(self._buffers[self._weight_name].device)

    def kernel_for(self, m: int) -> str:
        """The op a forward with m rows of x runs on the current CPU path (on a GPU:
        ``gemm_w4a16`` for bits 4, torch's matmul for bits 16)."""
        if self.config.bits == 16:
            return "gemm_sp24"
        floor = ops.w4a8_sp24_min_m()
        if floor is not None and m >= max(self._int8_min_m, floor):
            return "gemm_w4a8_sp24"
        return "gemm_w4a16_sp24"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"SparseLinear expects x with {self.in_features} features in its "
                             f"last dimension, got shape {tuple(x.shape)}")
        orig = x.dtype
        if not x.is_cpu:
            y = self._forward_device(x)
        else:
            if orig not in _KERNEL_DTYPES:
                x = x.float()
            y = self._prepared(self.kernel_for(x.numel() // self.in_features))(x)
        return y if y.dtype == orig else y.to(orig)

    def _forward_device(self, x: torch.Tensor) -> torch.Tensor:
        if not self._device_layout():
            w = self._buffers[self._weight_name]
            raise RuntimeError(f"SparseLinear: x is on {x.device}, but the layer holds its 2:4 "
                               f"weight on {w.device}, the form only the CPU kernels read; "
                               f"move the layer with .to('{x.device}') (on a GPU it holds the "
                               f"dense weight)")
        if self.config.bits == 4:
            if x.dtype not in _CUDA_DTYPES:
                x = x.to(torch.bfloat16)
            return ops.call_gemm("gemm_w4a16", x, self.qweight, self.scales, None, self.bias,
                                 self.out_features)
        x = x.to(torch.bfloat16)
        bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        return torch.nn.functional.linear(x, self.packed, bias)

    def _prepared(self, op: str) -> ops.PreparedSparse:
        # Validated once per op and set of buffers (as QuantLinear's): replaced buffers are
        # noticed by identity and prepared again. Under torch.compile the prepared op calls the
        # registered one.
        weights = (self.packed,) if self.config.bits == 16 else (self.qweight, self.scales)
        cache = self.__dict__.setdefault("_prepared_ops", {})
        p = cache.get(op)
        if p is None or not p.matches(weights, self.bias):
            p = cache[op] = ops.PreparedSparse(op, weights, self.bias, self.out_features,
                                               self.in_features)
        return p

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, format={self.format}, config={self.config}")
