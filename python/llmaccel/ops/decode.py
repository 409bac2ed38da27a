"""The native whole-model decode step for Llama-family models (``_C.LlamaDecodeStep``).

A decode step of a small model is hundreds of microsecond-sized ops; driven from Python each
costs ~5 µs of dispatch, more than the arithmetic. This step runs the layer loop in C++ with the
same GEMM kernels as the ops (see csrc/decode/llama_decode.h for the contract). It is not a
torch op: it reads and writes caller-owned buffers (the KV cache) in place, and exists for the
eager decode loop of ``llmaccel.runtime.LlamaDecoder``, which is also its reference.
"""

from __future__ import annotations

import torch

from .. import _C
from ._library import check_contiguous, check_cpu, check_dtype, fail, num_threads, ptr
from .gemm import PreparedGemm

_OP = "LlamaDecodeStep"
_KINDS = {"gemm_f32": 0, "gemm_w4a16": 1, "gemm_w4a8": 2, "gemm_w8a16": 3, "gemm_w8a8": 4,
          "gemm_w4a16_sp24": 5, "gemm_sp24": 6, "gemm_w4a8_sp24": 7}


def _float_tensor(name: str, t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    check_cpu(_OP, **{name: t})
    check_dtype(_OP, name, t, torch.float32)
    check_contiguous(_OP, **{name: t})
    if tuple(t.shape) != shape:
        fail(_OP, f"{name} must have shape {shape}, got {tuple(t.shape)}")
    return t


class DecodeLinear:
    """One projection of the step: a PreparedGemm (packed weights, kernel chosen for the step's
    batch size) or a float32 weight (N, K) with an optional bias, run by gemm_f32; 2:4 sparse
    weights through ``DecodeLinear.sparse``."""

    @classmethod
    def sparse(cls, n: int, k: int, bias: torch.Tensor | None, *, qweight=None, scales=None,
               packed=None, int8_act: bool = False) -> "DecodeLinear":
        """A 2:4 sparse projection: int4 (qweight, scales; gemm_w4a16_sp24, or gemm_w4a8_sp24
        with int8_act) or bf16 (packed; gemm_sp24), in the formats of llmaccel.formats."""
        self = cls.__new__(cls)
        self.n, self.k = n, k
        if bias is not None:
            _float_tensor("bias", bias, (n,))
        if packed is not None:
            if int8_act:
                fail(_OP, "bf16 2:4 weights have no int8-activation kernel (int8_act is for "
                          "int4 qweight/scales)")
            check_dtype(_OP, "packed", packed, torch.uint8)
            check_contiguous(_OP, packed=packed)
            k_pad = packed.shape[1] // 576 * 32
            self.tensors = (packed, bias)
            self.fields = (_KINDS["gemm_sp24"], ptr(packed), 0, 0, ptr(bias), n, k,
                           packed.shape[0] * 16, k_pad, 0, 0)
            return self
        check_dtype(_OP, "qweight", qweight, torch.uint8)
        check_contiguous(_OP, qweight=qweight, scales=scales)
        k_pad = qweight.shape[1] // 192 * 32
        _float_tensor("scales", scales, tuple(scales.shape))
        self.tensors = (qweight, scales, bias)
        op = "gemm_w4a8_sp24" if int8_act else "gemm_w4a16_sp24"
        self.fields = (_KINDS[op], ptr(qweight), ptr(scales), 0, ptr(bias), n, k,
                       qweight.shape[0] * 16, k_pad, k_pad // scales.shape[1], 0)
        return self

    def __init__(self, kernel: PreparedGemm | torch.Tensor, bias: torch.Tensor | None = None):
        if isinstance(kernel, PreparedGemm):
            if bias is not None:
                fail(_OP, "a PreparedGemm carries its own bias")
            p = kernel
            self.n, self.k = p.n, p.k
            self.tensors = (p.qweight, p.scales, p.zeros, p.bias)
            self.fields = (_KINDS[p.op], ptr(p.qweight), ptr(p.scales), ptr(p.zeros), ptr(p.bias),
                           p.n, p.k, p.qweight.shape[0] * 16, p.k_pad, p.group, p.act_block)
            return
        if not isinstance(kernel, torch.Tensor) or kernel.dim() != 2:
            fail(_OP, "a projection is a PreparedGemm or a float32 (N, K) weight", TypeError)
        self.n, self.k = kernel.shape
        _float_tensor("weight", kernel, (self.n, self.k))
        if bias is not None:
            _float_tensor("bias", bias, (self.n,))
        self.tensors = (kernel, bias)
        self.fields = (0, ptr(kernel), 0, 0, ptr(bias), self.n, self.k, 0, 0, 0, 0)


class LlamaDecodeStep:
    """``step(ids, pos)``: logits (B, vocab) for tokens ids (B,) at position pos, for a batch of
    B sequences; reads the cache's positions < pos and writes position pos.

    Tensors, all float32 CPU contiguous, kept alive by this object: embed (vocab, hidden); rot
    (max_len, head_dim/2, 2) cos/sin; layers as (ln1, qkv, o, ln2, gate_up, down) with
    DecodeLinear projections (q/k rows interleaved per head, gate rows before up rows); norm
    (hidden); lm_head; cache (layers, 2, B, kv_heads, max_len, head_dim).
    """

    def __init__(self, *, embed: torch.Tensor, rot: torch.Tensor, norm: torch.Tensor,
                 cache: torch.Tensor, layers: list[tuple], lm_head: DecodeLinear, heads: int,
                 kv_heads: int, head_dim: int, inter: int, eps: float, scale: float):
        vocab, hidden = embed.shape
        n_layers, _, batch, _, max_len, _ = cache.shape
        _float_tensor("embed", embed, (vocab, hidden))
        _float_tensor("rot", rot, (max_len, head_dim // 2, 2))
        _float_tensor("norm", norm, (hidden,))
        _float_tensor("cache", cache, (len(layers), 2, batch, kv_heads, max_len, head_dim))
        specs = []
        for ln1, qkv, o, ln2, gate_up, down in layers:
            _float_tensor("ln1", ln1, (hidden,))
            _float_tensor("ln2", ln2, (hidden,))
            specs.append((ptr(ln1), qkv.fields, o.fields, ptr(ln2), gate_up.fields, down.fields))
        self.batch, self.vocab, self.max_len = batch, vocab, max_len
        # The native object holds raw addresses: these references keep the memory alive.
        self._keep = (embed, rot, norm, cache, layers, lm_head)
        dims = (hidden, heads, kv_heads, head_dim, inter, vocab, max_len, batch, eps, scale)
        self._native = _C.LlamaDecodeStep(dims, ptr(embed), ptr(rot), ptr(norm), ptr(cache),
                                          specs, lm_head.fields)

    def profile(self, on: bool | None = None) -> dict[str, float]:
        """Seconds spent per part of the step (qkv, o, gate_up, down, lm_head, attention —
        rotary, cache write, softmax — and other: embedding, norms, SiLU, residuals) over the
        calls since profiling was last switched; ``on`` switches it (and resets the sums)."""
        out = dict(self._native.profile())
        if on is not None:
            self._native.set_profiling(on)
        return out

    def __call__(self, ids: torch.Tensor, pos: int) -> torch.Tensor:
        if ids.dtype != torch.int64 or ids.shape != (self.batch,) or not ids.is_contiguous():
            ids = torch.as_tensor(ids, dtype=torch.int64).reshape(-1).contiguous()
            if ids.shape != (self.batch,):
                fail(_OP, f"needs {self.batch} token ids, got {ids.numel()}")
        logits = torch.empty(self.batch, self.vocab, dtype=torch.float32)
        self._native.run(ptr(ids), pos, ptr(logits), num_threads())
        return logits


def time_linears(linears: list[DecodeLinear], x: torch.Tensor, calls: int) -> list[float]:
    """Seconds of each of ``calls`` calls of one projection's kernel, cycling through
    ``linears`` (copies of one projection, as many as a benchmark needs for the weights to come
    from DRAM), timed inside a native loop: the kernel as the decode step runs it, without the
    ~12 µs of dispatch and checks that an op call adds here. x (m, k) float32 CPU contiguous.
    For benchmarks (bench/bench_sparse.py); results are not returned."""
    op = "time_linears"
    if not linears or not all(isinstance(lin, DecodeLinear) for lin in linears):
        fail(op, "linears must be a non-empty list of DecodeLinear", TypeError)
    n, k = linears[0].n, linears[0].k
    check_cpu(op, x=x)
    check_dtype(op, "x", x, torch.float32)
    check_contiguous(op, x=x)
    if x.dim() != 2 or x.shape[1] != k or x.shape[0] < 1:
        fail(op, f"x must be (m >= 1, {k}), got {tuple(x.shape)}")
    if not isinstance(calls, int) or calls < 1:
        fail(op, f"calls must be an int >= 1, got {calls!r}")
    y = torch.empty(x.shape[0], n, dtype=torch.float32)
    return _C.time_linears([lin.fields for lin in linears], ptr(x), x.shape[0], ptr(y), calls,
                           num_threads())
