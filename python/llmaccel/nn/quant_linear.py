"""QuantLinear: an nn.Linear replacement that holds packed weights and calls llmaccel ops."""

from __future__ import annotations

import torch
from torch import nn

from .. import formats, ops, quantizers
from ..configs import Int4WeightOnly, Int8Dynamic, Int8WeightOnly, LayerScheme
from .device_layout import DeviceLayoutModule

_KERNEL_DTYPES = (torch.float32, torch.bfloat16)
_CUDA_DTYPES = (torch.float16, torch.bfloat16)
# Int8WeightOnly's int8-activation path quantizes x per token in blocks of this many columns.
# On SmolLM2-135M (512-token windows, fp32 42.56): one scale per whole row gave 44.37, 128-column
# blocks 43.29, float activations 42.97. Smaller blocks are closer (64: 43.10) but slower than
# bf16 F.linear at M = 256 on the 576-wide layers.
W8_ACT_BLOCK = 128


def act_int8_threshold(config) -> float:
    """Rows of x from which a layer with this config quantizes activations to int8 (inf: never;
    Int8Dynamic: always). QuantLinear and SparseLinear keep it as ``_int8_min_m`` so a forward
    looks at one number."""
    min_m = 1 if isinstance(config, Int8Dynamic) else config.act_int8_min_m
    return min_m if min_m is not None else float("inf")


def check_concat(layers: list[nn.Module]) -> nn.Module:
    """Raises ValueError unless ``layers`` (packed in row tiles) can be stacked into one layer:
    one config, one in_features, all with a bias or none, and every layer but the last a whole
    number of tiles (no padding rows in the middle). Returns the first layer."""
    first = layers[0]
    for q in layers:
        if q.config != first.config or q.in_features != first.in_features:
            raise ValueError("concat needs layers with one config and one in_features")
        if (q.bias is None) != (first.bias is None):
            raise ValueError("concat needs all layers with a bias or none")
    if any(q.out_features % formats.ROW_BLOCK for q in layers[:-1]):
        raise ValueError(f"concat needs out_features that are multiples of {formats.ROW_BLOCK}")
    return first


class QuantLinear(DeviceLayoutModule):
    """y = x · Wᵀ + b with W stored packed (int4_tile16x8 or int8_tile16x4).

    Buffers (all persistent, so ``state_dict`` round-trips): ``qweight``, ``scales``, ``zeros``
    (int4 asymmetric only), ``bias`` (float32, optional). Input (..., in_features) in float32 or
    bfloat16 (other float dtypes are computed in float32 and cast back); output in x's dtype.

    The kernel is chosen by M (rows of x): float activations below ``config.act_int8_min_m``,
    dynamic int8 activations with VNNI from there on, quantized per token and per block of
    columns (the int4 group size; 128 for Int8WeightOnly). Int8Dynamic is W8A8 at every M with
    one activation scale per token.

    On CUDA (``.to("cuda")``) qweight is repacked into the CUDA kernels' layout while state_dict
    keeps the canonical one; x is float16 or bfloat16 (others are computed in bfloat16 and cast
    back), and the op picks its kernel by M (``ops.cuda_path``). Buffers keep their dtypes
    under ``.to(dtype)``: only their device changes.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool, config: LayerScheme):
        super().__init__()
        if not isinstance(config, (Int4WeightOnly, Int8WeightOnly, Int8Dynamic)):
            raise TypeError(f"unsupported config {config!r}: expected Int4WeightOnly, "
                            "Int8WeightOnly or Int8Dynamic")
        self.in_features, self.out_features, self.config = in_features, out_features, config
        self._w4 = isinstance(config, Int4WeightOnly)
        self._act_block = W8_ACT_BLOCK if isinstance(config, Int8WeightOnly) else 0
        # Rows of x from which activations are quantized to int8 (VNNI kernels).
        self._int8_min_m = act_int8_threshold(config)
        self._cuda_op = ("gemm_w4a16" if self._w4 else
                         "gemm_w8a8" if isinstance(config, Int8Dynamic) else "gemm_w8a16")
        n_pad = (out_features + 15) // 16 * 16
        if isinstance(config, Int4WeightOnly):
            _, k_pad, g = formats.int4_padding(out_features, in_features, config.group_size)
            self.group_size = g
            meta = (n_pad // 16, k_pad // g, 16)
            self.register_buffer("qweight", torch.zeros(n_pad // 16, k_pad * 8, dtype=torch.uint8))
            self.register_buffer("scales", torch.zeros(meta, dtype=torch.float32))
            self.register_buffer("zeros", None if config.symmetric
                                 else torch.zeros(meta, dtype=torch.uint8))
        else:
            k_pad = (in_features + 3) // 4 * 4
            self.register_buffer("qweight", torch.zeros(n_pad // 16, k_pad * 16, dtype=torch.int8))
            self.register_buffer("scales", torch.zeros(n_pad, dtype=torch.float32))
            self.register_buffer("zeros", None)
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @property
    def format(self) -> formats.FormatSpec:
        """The canonical format (what checkpoints hold; on CUDA the buffer is its device layout)."""
        return formats.INT4_TILE16X8 if self._w4 else formats.INT8_TILE16X4

    # ---- device layouts: canonical on the CPU and on disk, the CUDA kernels' layout on a GPU ----

    _weight_name = "qweight"

    def _is_device_form(self, t: torch.Tensor) -> bool:
        return t.dtype == torch.int32

    def _device_form(self, qweight: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
        return formats.to_cuda_int4(qweight) if self._w4 else formats.to_cuda_int8(qweight)

    def _canonical_form(self, qweight: torch.Tensor) -> torch.Tensor:
        if self._w4:
            return formats.from_cuda_int4(qweight)
        return formats.from_cuda_int8(qweight, (self.in_features + 3) // 4 * 4)

    def canonical_qweight(self) -> torch.Tensor:
        """qweight in the canonical format (a repacked copy when the layer is on a GPU)."""
        return self.canonical_weight()

    @classmethod
    def from_linear(cls, linear: nn.Linear, config: LayerScheme) -> "QuantLinear":
        """Quantizes ``linear.weight`` by round-to-nearest under ``config``."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"expected nn.Linear, got {type(linear).__name__}")
        q = cls(linear.in_features, linear.out_features, linear.bias is not None, config)
        q.load_weight(linear.weight, linear.bias)
        return q.to(linear.weight.device)

    @classmethod
    def concat(cls, layers: list["QuantLinear"]) -> "QuantLinear":
        """One layer computing the outputs of ``layers`` side by side (q/k/v → qkv): one kernel
        call instead of several, the same bytes. Both formats store rows in independent tiles
        of formats.ROW_BLOCK along dim 0, so the buffers simply stack; this needs every layer
        but the last to have a multiple of ROW_BLOCK outputs (no padding rows in the middle)."""
        first = check_concat(layers)
        out = cls(first.in_features, sum(q.out_features for q in layers), first.bias is not None,
                  first.config)
        out.qweight = torch.cat([q.qweight for q in layers])
        out.scales = torch.cat([q.scales for q in layers])
        if first.zeros is not None:
            out.zeros = torch.cat([q.zeros for q in layers])
        if first.bias is not None:
            out.bias = torch.cat([q.bias for q in layers])
        return out

    def codes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The stored integer codes, scales and zero points (None: symmetric int4, or int8) in
        the forms load_codes takes."""
        qweight = self.canonical_qweight()
        if self._w4:
            return formats.unpack_int4(formats.PackedInt4(
                qweight, self.scales, self.zeros, self.out_features, self.in_features,
                self.group_size))
        codes, scales = formats.unpack_int8(formats.PackedInt8(
            qweight, self.scales, self.out_features, self.in_features))
        return codes, scales, None

    def select_rows(self, index: torch.Tensor) -> "QuantLinear":
        """A layer computing outputs ``index`` of this one (a permutation or a subset of rows),
        with the same codes and scales: exact, no requantization."""
        index = torch.as_tensor(index, dtype=torch.long)
        out = QuantLinear(self.in_features, index.numel(), self.bias is not None, self.config)
        codes, scales, zeros = self.codes()
        out.load_codes(codes[index], scales[index], None if zeros is None else zeros[index])
        if self.bias is not None:
            out.bias = self.bias[index].clone()
        return out.to(self.qweight.device)

    def load_weight(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Quantizes a float weight (out_features, in_features) into this layer's buffers."""
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weight shape {tuple(weight.shape)} does not match "
                             f"({self.out_features}, {self.in_features})")
        w = weight.detach().cpu()
        if isinstance(self.config, Int4WeightOnly):
            codes, scales, zeros = quantizers.quantize_int4(w, self.config.group_size,
                                                            self.config.symmetric)
        else:
            (codes, scales), zeros = quantizers.quantize_int8(w), None
        self.load_codes(codes, scales, zeros, bias)

    def load_codes(self, codes: torch.Tensor, scales: torch.Tensor,
                   zeros: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> None:
        """Packs integer codes computed elsewhere (GPTQ, AWQ; the forms quantizers.quantize_int4 /
        quantize_int8 return) into this layer's buffers (packed on the CPU, then moved to the
        layer's device)."""
        device = self.qweight.device
        if tuple(codes.shape) != (self.out_features, self.in_features):
            raise ValueError(f"codes shape {tuple(codes.shape)} does not match "
                             f"({self.out_features}, {self.in_features})")
        if isinstance(self.config, Int4WeightOnly):
            if (zeros is None) != self.config.symmetric:
                raise ValueError(f"{self.config} needs zeros={'None' if self.config.symmetric else 'a tensor'}")
            p = formats.pack_int4(codes, scales, zeros, self.config.group_size)
            self.zeros = p.zeros
        else:
            p = formats.pack_int8(codes, scales)
        self.qweight, self.scales = p.qweight, p.scales
        if self.bias is not None and bias is not None:
            self.bias = bias.detach().float().cpu().clone()
        if device.type != "cpu":
            self.to(device)

    def dequantize(self) -> torch.Tensor:
        """The float32 weight (out_features, in_features) this layer represents."""
        if isinstance(self.config, Int4WeightOnly):
            return ops.dequant_w4(self.qweight, self.scales, self.zeros, self.out_features,
                                  self.in_features)
        return ops.dequant_w8(self.qweight, self.scales, self.out_features, self.in_features)

    def kernel_for(self, m: int) -> str:
        """The gemm op a forward with m rows of x runs (float or int8 activations by M)."""
        if self._w4:
            return "gemm_w4a8" if m >= self._int8_min_m else "gemm_w4a16"
        return "gemm_w8a8" if m >= self._int8_min_m else "gemm_w8a16"

    def prepared(self, m: int) -> ops.PreparedGemm:
        """The validated kernel a forward with m rows of x runs (for decode loops that call
        kernels directly, e.g. ops.LlamaDecodeStep)."""
        return self._prepared(self.kernel_for(m))

    def _prepared(self, op: str) -> ops.PreparedGemm:
        # Validated once per op and set of buffers; replaced buffers (load_codes, .to()) are
        # noticed by identity and prepared again.
        cache = self.__dict__.setdefault("_prepared_ops", {})
        p = cache.get(op)
        if p is None or not p.matches(self.qweight, self.scales, self.zeros, self.bias):
            p = cache[op] = ops.PreparedGemm(op, self.qweight, self.scales, self.zeros, self.bias,
                                         self.out_features, self.in_features,
                                         self._act_block if op == "gemm_w8a8" else 0)
        return p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Decode calls this hundreds of times per token: the dispatch decisions were made once
        # in __init__ (_int8_min_m, _w4) and only M is looked at here.
        if x.shape[-1] != self.in_features:
            raise ValueError(f"QuantLinear expects x with {self.in_features} features in its last "
                             f"dimension, got shape {tuple(x.shape)}")
        orig = x.dtype
        if not x.is_cpu:
            # The CUDA kernels take 16-bit activations and choose their own path by M.
            if orig not in _CUDA_DTYPES:
                x = x.to(torch.bfloat16)
            y = self._op(self._cuda_op, x)
            return y if y.dtype == orig else y.to(orig)
        if orig not in _KERNEL_DTYPES:
            x = x.float()
        op = self.kernel_for(x.numel() // self.in_features)
        if torch.compiler.is_compiling():
            y = self._op(op, x)  # traced: the registered op, never the Python fast path
        else:
            y = self._prepared(op)(x)
        return y if y.dtype == orig else y.to(orig)

    def _op(self, op: str, x: torch.Tensor) -> torch.Tensor:
        return ops.call_gemm(op, x, self.qweight, self.scales, self.zeros, self.bias,
                             self.out_features, self._act_block if op == "gemm_w8a8" else 0)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, format={self.format}, config={self.config}")
