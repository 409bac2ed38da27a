"""Backward formulas of the GEMM ops: gradients reach x and the bias; packed weights are frozen.

y = x·Wᵀ + b, so dx = dy·W, with W the float32 weight the packed tensors represent (the
dequant ops; ``dequant_w4`` and ``dequant_w8`` also read the CUDA layouts), and
db = Σ dy over rows. That is what lets a packed model take part in training: adapters (LoRA) on
a quantized base, a quantized layer between trainable ones, a loss through a 2:4 model. Without
it torch would warn and hand back no gradient, silently.

- Activation rounding is a straight-through estimator: the int8 quantization of x in
  gemm_w4a8, gemm_w8a8 and gemm_w4a8_sp24, and the bf16 rounding of x in gemm_w4a16_sp24, count
  as the identity, as in quantization-aware training and QLoRA (bitsandbytes' 4-bit layers pass
  gradients the same way).
- Codes, scales and zero points get no gradient. A float tensor among them that requires grad
  raises at the forward, rather than training nothing: unpack, train a float weight, quantize
  again.
- gemm_f32's weight is a plain float matrix, so it gets dW = dyᵀ·x.
- The backward dequantizes W on every call (n·k·4 bytes for the call's duration), as
  bitsandbytes' 4-bit layers do; nothing is cached between steps. On the CPU dx is a float32
  product; on CUDA with 16-bit gradients a product in their dtype (tensor cores).
"""

from __future__ import annotations

import torch

from ._library import fail, lib
from .dequant import dequant_sp24, dequant_w4, dequant_w4_sp24, dequant_w8

_CUDA_16BIT = (torch.float16, torch.bfloat16)

# op → (names of the packed-weight arguments after x, the dequant op of that format). Every
# GEMM schema reads (x, *packed, bias, n, ...), every dequant one (*packed, n, k).
_PACKED_OPS = {
    "gemm_w4a16": (("qweight", "scales", "zeros"), dequant_w4),
    "gemm_w4a8": (("qweight", "scales", "zeros"), dequant_w4),
    "gemm_w8a16": (("qweight", "scales"), dequant_w8),
    "gemm_w8a8": (("qweight", "scales"), dequant_w8),
    "gemm_w4a16_sp24": (("qweight", "scales"), dequant_w4_sp24),
    "gemm_w4a8_sp24": (("qweight", "scales"), dequant_w4_sp24),
    "gemm_sp24": (("packed",), dequant_sp24),
}


def _register_packed(op: str, names: tuple[str, ...], dequant) -> None:
    nw = len(names)

    def setup_context(ctx, inputs, output):
        x, packed, n = inputs[0], inputs[1:1 + nw], inputs[2 + nw]
        for name, t in zip(names, packed):
            if t is not None and t.requires_grad:
                fail(op, f"{name} requires grad, but packed weights are frozen: gradients flow "
                     "to x and bias only (to train the weight, unpack it to a float tensor)")
        ctx.save_for_backward(*packed)
        ctx.n, ctx.x_shape, ctx.x_dtype = n, x.shape, x.dtype

    def backward(ctx, dy):
        n, k = ctx.n, ctx.x_shape[-1]
        dy2 = dy.reshape(-1, n)
        dx = db = None
        if ctx.needs_input_grad[0]:
            w = dequant(*ctx.saved_tensors, n, k)
            if dy2.is_cuda and dy2.dtype in _CUDA_16BIT:
                # Tensor cores: W rounded once to dy's dtype, fp32 accumulation in cuBLAS (as
                # bitsandbytes' 4-bit layers); an fp32 product would run at ~1/15 the rate.
                dx = dy2 @ w.to(dy2.dtype)
            else:
                dx = dy2.float() @ w
            dx = dx.to(ctx.x_dtype).reshape(ctx.x_shape)
        if ctx.needs_input_grad[1 + nw]:
            db = dy2.float().sum(0)
        # One entry per schema argument: x, the packed tensors, bias, n (, act_block).
        return (dx, *(None,) * nw, db) + (None,) * (len(ctx.needs_input_grad) - 2 - nw)

    torch.library.register_autograd(f"llmaccel::{op}", backward, setup_context=setup_context,
                                    lib=lib)


def _f32_setup_context(ctx, inputs, output):
    x, weight, _ = inputs
    ctx.save_for_backward(x if weight.requires_grad else None, weight)
    ctx.x_dtype = x.dtype


def _f32_backward(ctx, dy):
    x, weight = ctx.saved_tensors
    n, k = weight.shape
    dy2 = dy.reshape(-1, n).float()
    dx = dw = db = None
    if ctx.needs_input_grad[0]:
        dx = (dy2 @ weight).to(ctx.x_dtype).reshape(*dy.shape[:-1], k)
    if ctx.needs_input_grad[1]:
        dw = dy2.t() @ x.reshape(-1, k).float()
    if ctx.needs_input_grad[2]:
        db = dy2.sum(0)
    return dx, dw, db


for _op, (_names, _dequant) in _PACKED_OPS.items():
    _register_packed(_op, _names, _dequant)
torch.library.register_autograd("llmaccel::gemm_f32", _f32_backward,
                                setup_context=_f32_setup_context, lib=lib)
