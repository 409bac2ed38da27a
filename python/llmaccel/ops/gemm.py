"""GEMM ops over packed weights: llmaccel::gemm_w4a16, gemm_w4a8, gemm_w8a16, gemm_w8a8; and
llmaccel::gemm_f32 for float32 weights kept unquantized (lm_head), at DRAM speed for small M.

Each takes activations x (..., K) in float32 or bfloat16 and returns (..., N) in x's dtype.
"""

from __future__ import annotations

import torch

from .. import _C
from ._library import (ACT_DTYPES, act_2d, check_bias, check_contiguous, check_cpu, check_dtype,
                       fail, lib, num_threads, ptr)

lib.define("gemm_w4a16(Tensor x, Tensor qweight, Tensor scales, Tensor? zeros, Tensor? bias, "
           "int n) -> Tensor")
lib.define("gemm_w4a8(Tensor x, Tensor qweight, Tensor scales, Tensor? zeros, Tensor? bias, "
           "int n) -> Tensor")
lib.define("gemm_f32(Tensor x, Tensor weight, Tensor? bias) -> Tensor")
lib.define("gemm_w8a16(Tensor x, Tensor qweight, Tensor scales, Tensor? bias, int n) -> Tensor")
lib.define("gemm_w8a8(Tensor x, Tensor qweight, Tensor scales, Tensor? bias, int n, "
           "int act_block=0) -> Tensor")


_U8, _I8, _F32 = torch.uint8, torch.int8, torch.float32


def check_w4(op: str, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
             n: int) -> tuple[int, int]:
    """Validates an int4_tile16x8 weight; returns (k_pad, group_size).

    One fused test accepts the valid case (this runs on every decode call, so it is kept to a
    few attribute reads); anything else goes through the checks that name the problem."""
    qs, ss = qweight.shape, scales.shape
    if (qweight.dtype is _U8 and scales.dtype is _F32 and len(qs) == 2 and len(ss) == 3
            and qs[1] % 256 == 0 and ss[0] == qs[0] and ss[2] == 16 and ss[1] >= 1
            and qs[0] * 16 - 16 < n <= qs[0] * 16 and (qs[1] // 8) % ss[1] == 0
            and (qs[1] // 8 // ss[1]) % 32 == 0 and qweight.is_contiguous()
            and scales.is_contiguous() and (zeros is None or (
                zeros.dtype is _U8 and zeros.shape == ss and zeros.is_contiguous()))):
        return qs[1] // 8, qs[1] // 8 // ss[1]
    return _check_w4_detailed(op, qweight, scales, zeros, n)


def _check_w4_detailed(op: str, qweight: torch.Tensor, scales: torch.Tensor,
                       zeros: torch.Tensor | None, n: int) -> tuple[int, int]:
    check_dtype(op, "qweight", qweight, torch.uint8)
    check_dtype(op, "scales", scales, torch.float32)
    if zeros is not None:
        check_dtype(op, "zeros", zeros, torch.uint8)
    check_contiguous(op, qweight=qweight, scales=scales, zeros=zeros)
    if qweight.dim() != 2 or qweight.shape[1] % 256:
        fail(op, f"qweight must be (n_pad/16, k_pad*8) with k_pad a multiple of 32, "
                 f"got shape {tuple(qweight.shape)}")
    nb, k_pad = qweight.shape[0], qweight.shape[1] // 8
    if not (nb * 16 - 16 < n <= nb * 16):
        fail(op, f"n={n} does not match qweight's {nb} blocks of 16 rows")
    if scales.dim() != 3 or scales.shape[0] != nb or scales.shape[2] != 16:
        fail(op, f"scales must be ({nb}, n_groups, 16), got {tuple(scales.shape)}")
    n_groups = scales.shape[1]
    if n_groups < 1 or k_pad % n_groups or (k_pad // n_groups) % 32:
        fail(op, f"{n_groups} groups do not split k_pad={k_pad} into multiples of 32")
    if zeros is not None and zeros.shape != scales.shape:
        fail(op, f"zeros must have the shape of scales {tuple(scales.shape)}, got {tuple(zeros.shape)}")
    return k_pad, k_pad // n_groups


def check_w8(op: str, qweight: torch.Tensor, scales: torch.Tensor, n: int) -> int:
    """Validates an int8_tile16x4 weight; returns k_pad (fast accept, detailed on failure)."""
    qs = qweight.shape
    if (qweight.dtype is _I8 and scales.dtype is _F32 and len(qs) == 2 and qs[1] % 64 == 0
            and qs[0] * 16 - 16 < n <= qs[0] * 16 and scales.shape == (qs[0] * 16,)
            and qweight.is_contiguous() and scales.is_contiguous()):
        return qs[1] // 16
    return _check_w8_detailed(op, qweight, scales, n)


def _check_w8_detailed(op: str, qweight: torch.Tensor, scales: torch.Tensor, n: int) -> int:
    check_dtype(op, "qweight", qweight, torch.int8)
    check_dtype(op, "scales", scales, torch.float32)
    check_contiguous(op, qweight=qweight, scales=scales)
    if qweight.dim() != 2 or qweight.shape[1] % 64:
        fail(op, f"qweight must be (n_pad/16, k_pad*16), got shape {tuple(qweight.shape)}")
    nb = qweight.shape[0]
    if not (nb * 16 - 16 < n <= nb * 16):
        fail(op, f"n={n} does not match qweight's {nb} blocks of 16 rows")
    if tuple(scales.shape) != (nb * 16,):
        fail(op, f"scales must be ({nb * 16},), got {tuple(scales.shape)}")
    return qweight.shape[1] // 16


def _k_ok(op: str, k: int, k_pad: int, mult: int) -> None:
    if not (k_pad - mult < k <= k_pad):
        fail(op, f"x has K={k} columns but the weight was packed for K in ({k_pad - mult}, {k_pad}]")


def _finish(out: torch.Tensor, x: torch.Tensor, n: int) -> torch.Tensor:
    return out if x.dim() == 2 else out.view(*x.shape[:-1], n)


# The native calls, shared by the registered ops and PreparedGemm: x as (m, k) rows of stride ldx.
def _launch_w4(native, x_ptr, dt, m, k, ldx, qweight, scales, zeros, bias, n, k_pad, group, out):
    native(x_ptr, dt, m, k, ldx, ptr(qweight), ptr(scales), ptr(zeros), n, qweight.shape[0] * 16,
           k_pad, group, ptr(bias), ptr(out), n, num_threads())


def _launch_w8(native, x_ptr, dt, m, k, ldx, qweight, scales, bias, n, k_pad, act_block, out):
    native(x_ptr, dt, m, k, ldx, ptr(qweight), ptr(scales), n, qweight.shape[0] * 16, k_pad,
           ptr(bias), ptr(out), n, num_threads(), act_block)


def _w4_impl(native):
    op = native.__name__

    def impl(x, qweight, scales, zeros, bias, n):
        if not (x.is_cpu and qweight.is_cpu and scales.is_cpu and (zeros is None or zeros.is_cpu)
                and (bias is None or bias.is_cpu)):
            check_cpu(op, x=x, qweight=qweight, scales=scales, zeros=zeros, bias=bias)
        k_pad, group = check_w4(op, qweight, scales, zeros, n)
        x2 = act_2d(op, x)
        _k_ok(op, x2.shape[1], k_pad, group)
        check_bias(op, bias, n)
        out = torch.empty(x2.shape[0], n, dtype=x.dtype)
        if x2.shape[0] == 0:  # an empty batch, as F.linear allows
            return _finish(out, x, n)
        _launch_w4(native, ptr(x2), ACT_DTYPES[x.dtype], x2.shape[0], x2.shape[1], x2.stride(0),
                   qweight, scales, zeros, bias, n, k_pad, group, out)
        return _finish(out, x, n)

    return impl


def _w8_impl(native):
    op = native.__name__

    def impl(x, qweight, scales, bias, n, act_block=0):
        if not (x.is_cpu and qweight.is_cpu and scales.is_cpu and (bias is None or bias.is_cpu)):
            check_cpu(op, x=x, qweight=qweight, scales=scales, bias=bias)
        k_pad = check_w8(op, qweight, scales, n)
        x2 = act_2d(op, x)
        _k_ok(op, x2.shape[1], k_pad, 4)
        check_bias(op, bias, n)
        out = torch.empty(x2.shape[0], n, dtype=x.dtype)
        if x2.shape[0] == 0:
            return _finish(out, x, n)
        _launch_w8(native, ptr(x2), ACT_DTYPES[x.dtype], x2.shape[0], x2.shape[1], x2.stride(0),
                   qweight, scales, bias, n, k_pad, act_block, out)
        return _finish(out, x, n)

    return impl


def _f32_impl(x, weight, bias):
    op = "gemm_f32"
    if not (x.is_cpu and weight.is_cpu and (bias is None or bias.is_cpu)):
        check_cpu(op, x=x, weight=weight, bias=bias)
    if weight.dtype is not _F32:
        check_dtype(op, "weight", weight, torch.float32)
    if weight.dim() != 2 or 0 in weight.shape:
        fail(op, f"weight must be a non-empty (N, K) matrix, got shape {tuple(weight.shape)}")
    check_contiguous(op, weight=weight)
    n, k = weight.shape
    x2 = act_2d(op, x)
    if x2.shape[1] != k:
        fail(op, f"x has K={x2.shape[1]} columns but weight has {k}")
    check_bias(op, bias, n)
    out = torch.empty(x2.shape[0], n, dtype=x.dtype)
    if x2.shape[0] == 0:
        return _finish(out, x, n)
    _C.gemm_f32(ptr(x2), ACT_DTYPES[x.dtype], x2.shape[0], k, x2.stride(0), ptr(weight), n,
                ptr(bias), ptr(out), n, num_threads())
    return _finish(out, x, n)


lib.impl("gemm_f32", _f32_impl, "CPU")
lib.impl("gemm_w4a16", _w4_impl(_C.gemm_w4a16), "CPU")
lib.impl("gemm_w4a8", _w4_impl(_C.gemm_w4a8), "CPU")
lib.impl("gemm_w8a16", _w8_impl(_C.gemm_w8a16), "CPU")
lib.impl("gemm_w8a8", _w8_impl(_C.gemm_w8a8), "CPU")


def _fake_w4(x, qweight, scales, zeros, bias, n):
    return x.new_empty(*x.shape[:-1], n)


def _fake_w8(x, qweight, scales, bias, n, act_block=0):
    return x.new_empty(*x.shape[:-1], n)


torch.library.register_fake("llmaccel::gemm_f32",
                            lambda x, weight, bias: x.new_empty(*x.shape[:-1], weight.shape[0]),
                            lib=lib)
torch.library.register_fake("llmaccel::gemm_w4a16", _fake_w4, lib=lib)
torch.library.register_fake("llmaccel::gemm_w4a8", _fake_w4, lib=lib)
torch.library.register_fake("llmaccel::gemm_w8a16", _fake_w8, lib=lib)
torch.library.register_fake("llmaccel::gemm_w8a8", _fake_w8, lib=lib)

# The overloads themselves: calling the packet resolves the overload on every call (~1 µs).
gemm_f32 = torch.ops.llmaccel.gemm_f32.default
gemm_w4a16 = torch.ops.llmaccel.gemm_w4a16.default
gemm_w4a8 = torch.ops.llmaccel.gemm_w4a8.default
gemm_w8a16 = torch.ops.llmaccel.gemm_w8a16.default
gemm_w8a8 = torch.ops.llmaccel.gemm_w8a8.default


def call_gemm(op: str, x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
              zeros: torch.Tensor | None, bias: torch.Tensor | None, n: int,
              act_block: int = 0) -> torch.Tensor:
    """The registered op ``op`` ('gemm_w4a16', 'gemm_w4a8', 'gemm_w8a16', 'gemm_w8a8'), with the
    argument list its weight format takes (zeros only for int4, act_block only for w8a8)."""
    if op in ("gemm_w4a16", "gemm_w4a8"):
        return getattr(torch.ops.llmaccel, op).default(x, qweight, scales, zeros, bias, n)
    if op == "gemm_w8a8":
        return gemm_w8a8(x, qweight, scales, bias, n, act_block)
    if op == "gemm_w8a16":
        return gemm_w8a16(x, qweight, scales, bias, n)
    raise ValueError(f"unknown gemm op {op!r}")


def fast_path_dtype(x: torch.Tensor, k: int, bias: torch.Tensor | None = None) -> int | None:
    """The native dtype code of x when a prepared op may call its kernel directly: a plain
    contiguous non-empty CPU tensor (float32 / bfloat16) with K = k columns, outside
    torch.compile, and no autograd (neither x nor a bias made a trainable Parameter requires
    grad); None sends the call through the registered op."""
    dt = ACT_DTYPES.get(x.dtype)
    if (dt is None or type(x) is not torch.Tensor or not x.is_cpu or x.shape[-1] != k
            or not x.is_contiguous() or x.numel() == 0 or torch.compiler.is_compiling()
            or ((x.requires_grad or (bias is not None and bias.requires_grad))
                and torch.is_grad_enabled())):
        return None
    return dt


class PreparedGemm:
    """One of the gemm ops with its weight validated once, for eager decode loops.

    A decode step of a small model makes ~120 GEMM calls of a few µs of kernel each; through
    the dispatcher and the per-call checks each costs ~12 µs of Python here. Calling a prepared
    op costs one identity check per weight tensor and the kernel. The fast path takes plain
    contiguous CPU tensors (float32 / bfloat16, K = in_features, no autograd) outside
    torch.compile; anything else goes through the registered op, so tracing, fake tensors and
    error messages behave exactly as the op's.
    """

    __slots__ = ("op", "native", "w4", "qweight", "scales", "zeros", "bias", "n", "k", "k_pad",
                 "group", "act_block")

    def __init__(self, op: str, qweight: torch.Tensor, scales: torch.Tensor,
                 zeros: torch.Tensor | None, bias: torch.Tensor | None, n: int, k: int,
                 act_block: int = 0):
        self.w4 = op.startswith("gemm_w4")
        if op not in ("gemm_w4a16", "gemm_w4a8", "gemm_w8a16", "gemm_w8a8"):
            raise ValueError(f"unknown gemm op {op!r}")
        self.op, self.native = op, getattr(_C, op)
        if self.w4:
            self.k_pad, self.group = check_w4(op, qweight, scales, zeros, n)
        else:
            if zeros is not None:
                fail(op, "int8 weights have no zero points")
            self.k_pad, self.group = check_w8(op, qweight, scales, n), 4
        _k_ok(op, k, self.k_pad, self.group)
        check_bias(op, bias, n)
        check_cpu(op, qweight=qweight, scales=scales, zeros=zeros, bias=bias)
        self.qweight, self.scales, self.zeros, self.bias = qweight, scales, zeros, bias
        self.n, self.k, self.act_block = n, k, act_block

    def matches(self, qweight, scales, zeros, bias) -> bool:
        """Still the tensors it was prepared for (a layer whose buffers were replaced must
        prepare again)."""
        return (qweight is self.qweight and scales is self.scales and zeros is self.zeros
                and bias is self.bias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dt = fast_path_dtype(x, self.k, self.bias)
        if dt is None:
            return call_gemm(self.op, x, self.qweight, self.scales, self.zeros, self.bias, self.n,
                             self.act_block)
        out = torch.empty(*x.shape[:-1], self.n, dtype=x.dtype)
        m, k = x.numel() // self.k, self.k
        if self.w4:
            _launch_w4(self.native, x.data_ptr(), dt, m, k, k, self.qweight, self.scales,
                       self.zeros, self.bias, self.n, self.k_pad, self.group, out)
        else:
            _launch_w8(self.native, x.data_ptr(), dt, m, k, k, self.qweight, self.scales,
                       self.bias, self.n, self.k_pad, self.act_block, out)
        return out
