"""2:4 sparse GEMM ops: llmaccel::gemm_w4a16_sp24 and llmaccel::gemm_w4a8_sp24
(int4_sp24_tile16x32 weights; float activations, or int8 per token and group) and
llmaccel::gemm_sp24 (bf16_sp24_tile16x32). x (..., K) float32 or bfloat16 → (..., N) in x's dtype.
"""

from __future__ import annotations

import functools

import torch

from .. import _C
from ._library import (ACT_DTYPES, act_2d, check_bias, check_contiguous, check_cpu, check_dtype,
                       fail, lib, num_threads, ptr)
from .gemm import _finish, _k_ok

lib.define("gemm_w4a16_sp24(Tensor x, Tensor qweight, Tensor scales, Tensor? bias, int n) -> Tensor")
lib.define("gemm_w4a8_sp24(Tensor x, Tensor qweight, Tensor scales, Tensor? bias, int n) -> Tensor")
lib.define("gemm_sp24(Tensor x, Tensor packed, Tensor? bias, int n) -> Tensor")

_W4_CHUNK_BYTES, _BF16_CHUNK_BYTES = 192, 576  # per 16 rows x 32 columns (see formats/sp24.py)


@torch.compiler.assume_constant_result  # traced once: the path does not change under a graph
def w4a8_sp24_preferred() -> bool:
    """Whether SparseLinear should take gemm_w4a8_sp24 from act_int8_min_m rows on, on the
    current CPU path. Its kernel is AVX2 (vpshufb + vpmaddubsw); on the AVX2 path it runs
    1.5-3.5x gemm_w4a16_sp24 from M = 4 (bench/bench_sparse.py). The AVX-512 paths run that
    same AVX2 kernel, against gemm_w4a16_sp24's AVX-512 one (vpermw + vdpbf16ps, 16 rows an
    instruction): unmeasured there, and estimated slower from the per-row times of both (see
    README), so those paths keep float activations until a VNNI variant exists."""
    return _C.cpu_isa() not in ("avx512", "avx512_bf16")


def _check_rows(op: str, blocks: int, n: int) -> None:
    if not (blocks * 16 - 16 < n <= blocks * 16):
        fail(op, f"n={n} does not match the weight's {blocks} blocks of 16 rows")


def _w4_sp24(op, x, qweight, scales, bias, n):
    check_cpu(op, x=x, qweight=qweight, scales=scales, bias=bias)
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
    group = k_pad // n_groups
    x2 = act_2d(op, x)
    _k_ok(op, x2.shape[1], k_pad, group)
    check_bias(op, bias, n)
    out = torch.empty(x2.shape[0], n, dtype=x.dtype)
    if x2.shape[0]:
        getattr(_C, op)(ptr(x2), ACT_DTYPES[x.dtype], x2.shape[0], x2.shape[1], x2.stride(0),
                        ptr(qweight), ptr(scales), n, nb * 16, k_pad, group, ptr(bias), ptr(out),
                        n, num_threads())
    return _finish(out, x, n)


def _sp24(x, packed, bias, n):
    op = "gemm_sp24"
    check_cpu(op, x=x, packed=packed, bias=bias)
    check_dtype(op, "packed", packed, torch.uint8)
    check_contiguous(op, packed=packed)
    if packed.dim() != 2 or packed.shape[1] == 0 or packed.shape[1] % _BF16_CHUNK_BYTES:
        fail(op, f"packed must be (n_pad/16, k_pad/32*576), got shape {tuple(packed.shape)}")
    nb, k_pad = packed.shape[0], packed.shape[1] // _BF16_CHUNK_BYTES * 32
    _check_rows(op, nb, n)
    x2 = act_2d(op, x)
    _k_ok(op, x2.shape[1], k_pad, 32)
    check_bias(op, bias, n)
    out = torch.empty(x2.shape[0], n, dtype=x.dtype)
    if x2.shape[0]:
        _C.gemm_sp24(ptr(x2), ACT_DTYPES[x.dtype], x2.shape[0], x2.shape[1], x2.stride(0),
                     ptr(packed), n, nb * 16, k_pad, ptr(bias), ptr(out), n, num_threads())
    return _finish(out, x, n)


for _op in ("gemm_w4a16_sp24", "gemm_w4a8_sp24"):
    lib.impl(_op, functools.partial(_w4_sp24, _op), "CPU")
    torch.library.register_fake(
        f"llmaccel::{_op}", lambda x, qweight, scales, bias, n: x.new_empty(*x.shape[:-1], n),
        lib=lib)
lib.impl("gemm_sp24", _sp24, "CPU")
torch.library.register_fake("llmaccel::gemm_sp24",
                            lambda x, packed, bias, n: x.new_empty(*x.shape[:-1], n), lib=lib)

gemm_w4a16_sp24 = torch.ops.llmaccel.gemm_w4a16_sp24.default
gemm_w4a8_sp24 = torch.ops.llmaccel.gemm_w4a8_sp24.default
gemm_sp24 = torch.ops.llmaccel.gemm_sp24.default
