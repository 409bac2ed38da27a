"""2:4 sparse GEMM ops: llmaccel::gemm_w4a16_sp24 and llmaccel::gemm_w4a8_sp24
(int4_sp24_tile16x32 weights; float activations, or int8 per token and group) and
llmaccel::gemm_sp24 (bf16_sp24_tile16x32). x (..., K) float32 or bfloat16 → (..., N) in x's dtype.
"""

from __future__ import annotations

import torch

from .. import _C
from ._library import (ACT_DTYPES, act_2d, check_bias, check_contiguous, check_cpu, check_dtype,
                       fail, lib, num_threads, ptr)
from .gemm import _finish, _k_ok, fast_path_dtype

lib.define("gemm_w4a16_sp24(Tensor x, Tensor qweight, Tensor scales, Tensor? bias, int n) -> Tensor")
lib.define("gemm_w4a8_sp24(Tensor x, Tensor qweight, Tensor scales, Tensor? bias, int n) -> Tensor")
lib.define("gemm_sp24(Tensor x, Tensor packed, Tensor? bias, int n) -> Tensor")

_W4_CHUNK_BYTES, _BF16_CHUNK_BYTES = 192, 576  # per 16 rows x 32 columns (see formats/sp24.py)


@torch.compiler.assume_constant_result  # traced once: the path does not change under a graph
def w4a8_sp24_min_m() -> int | None:
    """The fewest rows of x from which SparseLinear takes gemm_w4a8_sp24 on the current CPU
    path (a larger act_int8_min_m in its config wins); None where the path keeps float
    activations (gemm_w4a16_sp24) at every M. Measured through the layers against
    gemm_w4a16_sp24 (bench/bench_sparse.py):
    - AVX2 (vpshufb + vpmaddubsw) and portable: 1, the config decides; 1.2-3.8x at M = 3-256
      on SmolLM2's shapes (bench/results/2026-11-24_sparse_cpu_avx2_2t_int8act.md);
    - AVX-512 (vpermb + vpdpbusd, needs AVX512_VBMI): 6. Each call decodes the weights'
      indices once per 48 rows of x, which the float kernel does not; with weights from DRAM
      the int8 op ran 0.7-0.9x gemm_w4a16_sp24 at M = 2-4 and 1.05-1.6x at M = 6-12 (Zen 5,
      576 → 1536 and 4096 → 14336; a scratch A/B outside bench/); through the layers, with
      Python's dispatch in both, they are even at M = 6-8, and int8 runs 1.2-1.6x at M = 16
      and 1.5-1.9x at M = 64-256
      (bench/results/2026-11-24_sparse_cpu_avx512_2t_int8act{,_llama}.md);
    - AVX-512 without VBMI (Skylake-SP, Cascade Lake; ``ops.set_cpu_vbmi(False)`` on a CPU with
      it): None. The op itself runs the AVX2 kernel there, against an AVX-512 float kernel that
      is unmeasured against it."""
    if _C.cpu_isa() not in ("avx512", "avx512_bf16"):
        return 1
    return 6 if _C.cpu_vbmi() else None


def _check_rows(op: str, blocks: int, n: int) -> None:
    if not (blocks * 16 - 16 < n <= blocks * 16):
        fail(op, f"n={n} does not match the weight's {blocks} blocks of 16 rows")


def _check_w4_sp24(op, qweight, scales, bias, n) -> tuple[int, int]:
    """Validates an int4_sp24 weight (and bias); returns (k_pad, group_size)."""
    check_cpu(op, qweight=qweight, scales=scales, bias=bias)
    check_dtype(op, "qweight", qweight, torch.uint8)
    check_dtype(op, "scales", scales, torch.float32)
    check_contiguous(op, qweight=qweight, scales=scales)
    if qweight.dim() != 2 or qweight.shape[1] == 0 or qweight.shape[1] % _W4_CHUNK_BYTES:
        fail(op, f"qweight must be (n_pad/16, k_pad/32*192), got shape {tuple(qweight.shape)}")
    nb, k_pad = qweight.shape[0], qweight.shape[1] // _W4_CHUNK_BYTES * 32
    _check_rows(op, nb, n)
    if scales.dim() != 3 or scales.shape[0] != nb or scales.shape[2] != 16 or scales.shape[1] < 1:
        fail(op, f"scales must be ({nb}, n_groups, 16), got {tuple(scales.shape)}")
    n_groups = scales.shape[1]
    if k_pad % n_groups or (k_pad // n_groups) % 32:
        fail(op, f"{n_groups} groups do not split k_pad={k_pad} into multiples of 32")
    check_bias(op, bias, n)
    return k_pad, k_pad // n_groups


def _check_sp24(op, packed, bias, n) -> tuple[int, int]:
    """Validates a bf16_sp24 weight (and bias); returns (k_pad, 32)."""
    check_cpu(op, packed=packed, bias=bias)
    check_dtype(op, "packed", packed, torch.uint8)
    check_contiguous(op, packed=packed)
    if packed.dim() != 2 or packed.shape[1] == 0 or packed.shape[1] % _BF16_CHUNK_BYTES:
        fail(op, f"packed must be (n_pad/16, k_pad/32*576), got shape {tuple(packed.shape)}")
    _check_rows(op, packed.shape[0], n)
    check_bias(op, bias, n)
    return packed.shape[1] // _BF16_CHUNK_BYTES * 32, 32


# The native calls, shared by the registered ops and PreparedSparse: x as (m, k) rows of stride
# ldx; weights = (qweight, scales) or (packed,).
def _launch(native, x_ptr, dt, m, k, ldx, weights, bias, n, k_pad, group, out):
    if len(weights) == 2:
        native(x_ptr, dt, m, k, ldx, ptr(weights[0]), ptr(weights[1]), n,
               weights[0].shape[0] * 16, k_pad, group, ptr(bias), ptr(out), n, num_threads())
    else:
        native(x_ptr, dt, m, k, ldx, ptr(weights[0]), n, weights[0].shape[0] * 16, k_pad,
               ptr(bias), ptr(out), n, num_threads())


def _check(op, weights, bias, n) -> tuple[int, int]:
    if op == "gemm_sp24":
        return _check_sp24(op, *weights, bias, n)
    return _check_w4_sp24(op, *weights, bias, n)


def _run(op, x, weights, bias, n):
    k_pad, group = _check(op, weights, bias, n)
    check_cpu(op, x=x)
    x2 = act_2d(op, x)
    _k_ok(op, x2.shape[1], k_pad, group)
    out = torch.empty(x2.shape[0], n, dtype=x.dtype)
    if x2.shape[0]:
        _launch(getattr(_C, op), ptr(x2), ACT_DTYPES[x.dtype], x2.shape[0], x2.shape[1],
                x2.stride(0), weights, bias, n, k_pad, group, out)
    return _finish(out, x, n)


for _op in ("gemm_w4a16_sp24", "gemm_w4a8_sp24"):
    lib.impl(_op, lambda x, qweight, scales, bias, n, _op=_op: _run(_op, x, (qweight, scales),
                                                                     bias, n), "CPU")
    torch.library.register_fake(
        f"llmaccel::{_op}", lambda x, qweight, scales, bias, n: x.new_empty(*x.shape[:-1], n),
        lib=lib)
lib.impl("gemm_sp24", lambda x, packed, bias, n: _run("gemm_sp24", x, (packed,), bias, n), "CPU")
torch.library.register_fake("llmaccel::gemm_sp24",
                            lambda x, packed, bias, n: x.new_empty(*x.shape[:-1], n), lib=lib)

gemm_w4a16_sp24 = torch.ops.llmaccel.gemm_w4a16_sp24.default
gemm_w4a8_sp24 = torch.ops.llmaccel.gemm_w4a8_sp24.default
gemm_sp24 = torch.ops.llmaccel.gemm_sp24.default


class PreparedSparse:
    """A 2:4 op with its weight validated once, as PreparedGemm is for the dense ops: the layer's
    forward then costs one identity check per tensor and the kernel, not ~12 µs of dispatch and
    checks. Inputs the fast path does not take go through the registered op."""

    __slots__ = ("op", "native", "weights", "bias", "n", "k", "k_pad", "group")

    def __init__(self, op: str, weights: tuple, bias: torch.Tensor | None, n: int, k: int):
        if op not in ("gemm_w4a16_sp24", "gemm_w4a8_sp24", "gemm_sp24"):
            raise ValueError(f"unknown 2:4 op {op!r}")
        self.op, self.native = op, getattr(_C, op)
        self.weights, self.bias, self.n, self.k = tuple(weights), bias, n, k
        if len(self.weights) != (1 if op == "gemm_sp24" else 2):
            raise ValueError(f"{op} takes {'(packed,)' if op == 'gemm_sp24' else '(qweight, scales)'}")
        self.k_pad, self.group = _check(op, self.weights, bias, n)
        _k_ok(op, k, self.k_pad, self.group)

    def matches(self, weights: tuple, bias) -> bool:
        """Still the tensors it was prepared for."""
        return bias is self.bias and all(a is b for a, b in zip(weights, self.weights))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dt = fast_path_dtype(x, self.k, self.bias)
        if dt is None:
            return getattr(torch.ops.llmaccel, self.op).default(x, *self.weights, self.bias,
                                                                 self.n)
        out = torch.empty(*x.shape[:-1], self.n, dtype=x.dtype)
        _launch(self.native, x.data_ptr(), dt, x.numel() // self.k, self.k, self.k, self.weights,
                self.bias, self.n, self.k_pad, self.group, out)
        return out
