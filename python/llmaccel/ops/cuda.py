"""CUDA implementations of the llmaccel ops (registered only when the native module was built
with CUDA). The same op names and signatures as on the CPU, with two differences:

- weights arrive in the CUDA device layouts (``formats.to_cuda_int4`` / ``to_cuda_int8``, which
  ``QuantLinear.to("cuda")`` applies); scales, zeros and bias keep their canonical layouts;
- activations are float16 or bfloat16 (the tensor cores' types); the output is x's dtype.

Kernels launch on torch's current stream, allocate through torch and never synchronize, so the
ops can be captured in a CUDA graph. Which kernel runs is chosen here by M (``cuda_path``):

- ``gemm_w4a16`` at M ≤ ``DECODE_MAX_M``: a decode kernel. On sm_90 the K-slice kernel (each
  warp keeps one K slice of x in registers, a producer warp streams the weights in with bulk
  copies: csrc/gemm/gemm_decode_kslice.cuh), else the stream-K kernel (the weight stream split
  evenly over every resident warp: csrc/gemm/gemm_decode.cuh); partial sums of a tile shared by
  several warps or blocks meet in a small workspace (``_decode_workspace``).
- On a compute capability 9.0 device (sm_90a code), warpgroup-MMA kernels (csrc/gemm/
  gemm_wgmma.cuh: the weights as wgmma's register operand, dequantized in registers; x copied
  into a swizzled image and streamed in by bulk copies) over ``WGMMA_M[op]``: ``gemm_w4a16`` and
  ``gemm_w8a16`` from M = 17 to 512, ``gemm_w8a8`` above M = 32 (x quantized straight into the
  image). LLMACCEL_W4_WGMMA / LLMACCEL_W8_WGMMA / LLMACCEL_W8A8_WGMMA=0 turn them off; =1 (=all)
  extends the first two to every M above the range's start (to every M), =all the third to
  every M, for benchmarks.
- Otherwise ``gemm_w4a16`` / ``gemm_w8a16`` up to ``SWAPAB_MAX_M[op]``: the swapped tensor-core
  kernel (weights read once per 8, 16 or 32 rows of x, straight into MMA fragments); above:
  dequantize to x's dtype and call cuBLAS through torch, where a weight-only kernel no longer
  wins. ``gemm_w8a8``: per-token int8 quantization, then the swapped int8 kernel (up to M = 32
  where the wgmma kernel runs, else up to 64) and a tiled int8 tensor-core GEMM above (other
  GPUs).
- Opt-in: ``LLMACCEL_W4_TILED=<max M>`` sends ``gemm_w4a16`` above the decode range and up to
  that M to a tiled kernel (x rows as the MMA's A operand, the int4 weights as B;
  csrc/gemm/gemm_tiled_w4.cuh). The native side reads the same variable on every call.
"""

from __future__ import annotations

import os

import torch

from .. import _C
from ._library import check_bias, check_dtype, fail, lib

HAVE_CUDA_KERNELS = hasattr(_C, "cuda_gemm_w4a16")

_DT = {torch.float16: 0, torch.bfloat16: 1}
_F32 = 2
# Largest M for the swapped small-M kernel; above it dequantize + cuBLAS is faster (H100
# measurements in bench/results/*_gpu_*.md). The kernel itself takes any M.
SWAPAB_MAX_M = {"gemm_w4a16": 64, "gemm_w8a16": 64}
DECODE_MAX_M = _C.cuda_decode_max_m if HAVE_CUDA_KERNELS else 16


def tiled_max_m() -> int:
    """LLMACCEL_W4_TILED: the largest M the opt-in tiled int4 kernel takes; 0 (off) unless it is
    a whole decimal number, the rule the native side applies to the same variable."""
    value = os.environ.get("LLMACCEL_W4_TILED", "")
    return int(value) if value.isascii() and value.isdigit() else 0


# The sm_90a wgmma kernels' default M ranges, from the H100 (bench/results/2026-11-23_gpu_h100*):
# gemm_w4a16 at M = 17-128 in 41-58 µs on 4096→14336 (swapped kernel 56-111), M = 256 in 60-66
# (dequantize + cuBLAS 116), M = 512 in 137 (154), M = 1024 in 264 (214: cuBLAS wins above);
# gemm_w8a16 the same above M = 16 (at M ≤ 16 the swapped kernel, 30-39 µs, is as fast or faster);
# gemm_w8a8 above M = 64 (1.07-1.43× bf16 against the tiled kernel's 0.43-0.71×), and at
# M = 33-64 (w8a8_wgmma_first_m).
WGMMA_M = {"gemm_w4a16": (DECODE_MAX_M + 1, 512), "gemm_w8a16": (17, 512)}
_NO_MAX = 1 << 62


def w8a8_wgmma_first_m() -> int | None:
    """The smallest M gemm_w8a8 sends to its wgmma kernel where the device runs it: 33 by default
    (64-row x blocks up to M = 64; the swapped kernel below, 1.0-1.4× bf16 at M = 17-32 on the
    H100, fell to 0.69-0.81× at M = 64); LLMACCEL_W8A8_WGMMA=0: none (the tiled int8 kernel, for
    comparison), =all: every M (a benchmark setting)."""
    value = os.environ.get("LLMACCEL_W8A8_WGMMA", "")
    return None if value == "0" else 1 if value == "all" else 33


def _wgmma_range(op: str, var: str) -> tuple[int, int] | None:
    """The M range ``op`` sends to its wgmma kernel: WGMMA_M[op] by default; the variable ``var``
    set to ``0``: none, ``1``: from the default's first M up, ``all``: every M (benchmark
    settings; any other value keeps the default)."""
    value = os.environ.get(var, "")
    first, last = WGMMA_M[op]
    if value == "0":
        return None
    return (1, _NO_MAX) if value == "all" else (first, _NO_MAX if value == "1" else last)


def w4a16_wgmma_range() -> tuple[int, int] | None:
    """gemm_w4a16's wgmma range (LLMACCEL_W4_WGMMA, see _wgmma_range). The opt-in tiled kernel
    keeps its range (LLMACCEL_W4_TILED) when that is on too."""
    return _wgmma_range("gemm_w4a16", "LLMACCEL_W4_WGMMA")


def w8a16_wgmma_range() -> tuple[int, int] | None:
    """gemm_w8a16's wgmma range (LLMACCEL_W8_WGMMA, see _wgmma_range)."""
    return _wgmma_range("gemm_w8a16", "LLMACCEL_W8_WGMMA")


def w8a16_wgmma_available() -> bool:
    """As w8a8_wgmma_available, for gemm_w8a16's wgmma kernel."""
    return HAVE_CUDA_KERNELS and torch.cuda.is_available() and _C.cuda_w8a16_wgmma_available()


def w8a8_wgmma_available() -> bool:
    """Whether the current CUDA device runs this build's sm_90a wgmma kernels (compute
    capability 9.0 only: arch-specific code does not carry over to other GPUs)."""
    return HAVE_CUDA_KERNELS and torch.cuda.is_available() and _C.cuda_w8a8_wgmma_available()


def w4a16_wgmma_available() -> bool:
    """As w8a8_wgmma_available, for gemm_w4a16's wgmma kernel."""
    return HAVE_CUDA_KERNELS and torch.cuda.is_available() and _C.cuda_w4a16_wgmma_available()


def cuda_path(op: str, m: int) -> str:
    """The kernel path ``op`` takes on CUDA for x with m rows."""
    if op not in ("gemm_w8a8", *SWAPAB_MAX_M):
        raise ValueError(f"{op} has no CUDA kernel")
    if op == "gemm_w8a8":
        first = w8a8_wgmma_first_m()
        if first is not None and m >= first and w8a8_wgmma_available():
            return "quant + int8 wgmma"
        return "quant + int8 swapAB mma" if m <= 64 else "quant + int8 tiled mma"
    if op == "gemm_w4a16":
        return _w4a16_path(m, w4a16_wgmma_range(), tiled_max_m())
    return _w8a16_path(m, w8a16_wgmma_range())


def _in(m: int, span: tuple[int, int] | None) -> bool:
    return span is not None and span[0] <= m <= span[1]


def _w4a16_path(m: int, span: tuple[int, int] | None, tiled: int) -> str:
    """cuda_path for gemm_w4a16, from the settings read once by the caller (span:
    w4a16_wgmma_range(); tiled: tiled_max_m(), which only matters above the decode range)."""
    wgmma = _in(m, span) and w4a16_wgmma_available()
    if m <= DECODE_MAX_M:
        return "wgmma" if wgmma else "decode mma"
    if m <= tiled:
        return "tiled mma"
    if wgmma:
        return "wgmma"
    return "swapAB mma" if m <= SWAPAB_MAX_M["gemm_w4a16"] else "dequant + cuBLAS"


def _w8a16_path(m: int, span: tuple[int, int] | None) -> str:
    """cuda_path for gemm_w8a16 (span: w8a16_wgmma_range(), read once by the caller)."""
    if _in(m, span) and w8a16_wgmma_available():
        return "wgmma"
    return "swapAB mma" if m <= SWAPAB_MAX_M["gemm_w8a16"] else "dequant + cuBLAS"


# Per (device, stream): the int4 decode kernel's tile counters (int32, zero between calls: each call
# leaves them zero) and its scratch for partial sums. Calls on one stream run one after another,
# so they can share them; another stream gets its own. While a CUDA graph is being captured each
# call takes fresh ones from the graph's pool instead (their zeroing is captured with it), so a
# replay never shares counters with eager calls or with another graph.
_DECODE_WORKSPACES: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
_MAX_WORKSPACES = 32  # streams remembered; the oldest is dropped past this


def _decode_workspace(x: torch.Tensor, m: int, nt: int, nk: int,
                      group: int) -> tuple[int, int, int, int]:
    """(counters address, n_counters, partials address, partial bytes) for a gemm_w4a16 call
    with m rows (group: the int4 group size), or zeros when m is above the decode kernel's
    range."""
    if m > DECODE_MAX_M:
        return 0, 0, 0, 0
    n_counters, n_bytes = _C.cuda_decode_workspace(m, nt, nk, group // 32)
    if torch.cuda.is_current_stream_capturing():
        counters = torch.zeros(n_counters, dtype=torch.int32, device=x.device)
        partials = torch.empty(max(n_bytes, 4), dtype=torch.uint8, device=x.device)
    else:
        key = (x.device.index, _stream(x))
        have = _DECODE_WORKSPACES.get(key)
        if have is None or have[0].numel() < n_counters or have[1].numel() < n_bytes:
            grow = (0, 0) if have is None else (have[0].numel(), have[1].numel())
            have = (torch.zeros(max(n_counters, grow[0]), dtype=torch.int32, device=x.device),
                    torch.empty(max(n_bytes, grow[1], 4), dtype=torch.uint8, device=x.device))
            _DECODE_WORKSPACES.pop(key, None)
            if len(_DECODE_WORKSPACES) >= _MAX_WORKSPACES:
                _DECODE_WORKSPACES.pop(next(iter(_DECODE_WORKSPACES)))
            _DECODE_WORKSPACES[key] = have
        counters, partials = have
    return counters.data_ptr(), counters.numel(), partials.data_ptr(), partials.numel()


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


def _same_device(op: str, x: torch.Tensor, **tensors: torch.Tensor | None) -> None:
    for name, t in tensors.items():
        if t is not None and t.device != x.device:
            fail(op, f"{name} is on {t.device} but x is on {x.device}: all tensors must be on "
                     f"one CUDA device")


def _act(op: str, x: torch.Tensor, k_layout: int) -> torch.Tensor:
    """x (..., K) float16/bfloat16 → an (M, K) view, K within the packed columns."""
    if x.dtype not in _DT:
        check_dtype(op, "x", x, torch.float16, torch.bfloat16)
    if x.dim() < 1 or x.shape[-1] == 0:
        fail(op, f"x must have a non-empty last dimension, got shape {tuple(x.shape)}")
    k = x.shape[-1]
    if k > k_layout:
        fail(op, f"x has K={k} columns but the weight was packed for at most {k_layout}")
    return x.reshape(-1, k)


def _kernel_rows(x2: torch.Tensor) -> torch.Tensor:
    """What the swapped kernel reads: rows of K rounded up to 8, unit column stride, 16-byte
    aligned (16-byte loads of 8 columns); x2 itself when it is so, else a zero-padded copy."""
    m, k = x2.shape
    k8 = (k + 7) // 8 * 8
    if (k8 == k and x2.stride(1) == 1 and x2.stride(0) % 8 == 0 and x2.data_ptr() % 16 == 0
            and x2.stride(0) >= k):
        return x2
    xk = torch.zeros(m, k8, dtype=x2.dtype, device=x2.device)
    xk[:, :k] = x2
    return xk


def _device_layout(op: str, qweight: torch.Tensor, scales: torch.Tensor, n: int, words: int,
                   canonical: torch.dtype, fmt: str, cpu_fmt: str, helper: str) -> tuple[int, int]:
    """Checks a CUDA-layout qweight (n_tiles, nk, 32, words) and float32 scales; returns
    (n_tiles, nk)."""
    if qweight.dtype == canonical and qweight.dim() == 2:
        fail(op, f"qweight is in the CPU layout {cpu_fmt}; on CUDA the ops take {fmt} "
                 f"(formats.{helper}; QuantLinear.to('cuda') repacks)")
    check_dtype(op, "qweight", qweight, torch.int32)
    check_dtype(op, "scales", scales, torch.float32)
    if qweight.dim() != 4 or qweight.shape[2:] != (32, words) or not qweight.is_contiguous():
        fail(op, f"qweight must be a contiguous {fmt} tensor (n_pad/16, k chunks of 32, 32, "
                 f"{words}), got {tuple(qweight.shape)}")
    nt, nk = qweight.shape[:2]
    if not (nt * 16 - 16 < n <= nt * 16):
        fail(op, f"n={n} does not match qweight's {nt} tiles of 16 rows")
    if not scales.is_contiguous():
        fail(op, "scales must be contiguous")
    return nt, nk


def _w4_layout(op: str, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
               n: int) -> tuple[int, int, int, int]:
    """Checks an int4_cuda_mma16x32 weight; returns (n_tiles, nk, n_groups, group)."""
    nt, nk = _device_layout(op, qweight, scales, n, 2, torch.uint8, "int4_cuda_mma16x32",
                            "int4_tile16x8", "to_cuda_int4")
    if scales.dim() != 3 or scales.shape[0] != nt or scales.shape[2] != 16:
        fail(op, f"scales must be ({nt}, n_groups, 16), got {tuple(scales.shape)}")
    ng = scales.shape[1]
    if ng < 1 or (nk * 32) % ng or (nk * 32 // ng) % 32:
        fail(op, f"{ng} groups do not split k_pad={nk * 32} into multiples of 32")
    if zeros is not None:
        check_dtype(op, "zeros", zeros, torch.uint8)
        if zeros.shape != scales.shape or not zeros.is_contiguous():
            fail(op, f"zeros must be contiguous with the shape of scales {tuple(scales.shape)}")
    return nt, nk, ng, nk * 32 // ng


def _w8_layout(op: str, qweight: torch.Tensor, scales: torch.Tensor, n: int) -> tuple[int, int]:
    """Checks an int8_cuda_mma16x32 weight; returns (n_tiles, nk)."""
    nt, nk = _device_layout(op, qweight, scales, n, 4, torch.int8, "int8_cuda_mma16x32",
                            "int8_tile16x4", "to_cuda_int8")
    if tuple(scales.shape) != (nt * 16,):
        fail(op, f"scales must be ({nt * 16},), got {tuple(scales.shape)}")
    return nt, nk


def _w8_k_ok(op: str, k: int, nk: int) -> None:
    # The layout knows k_pad only to its 32-column chunks: K must fall in the last chunk.
    if not (nk * 32 - 32 < k <= nk * 32):
        fail(op, f"x has K={k} columns but the weight was packed for K in "
                 f"({nk * 32 - 32}, {nk * 32}]")


def _wgmma_partials(x: torch.Tensor, x16: bool, m: int, nt: int, nk: int) -> torch.Tensor | None:
    """The wgmma kernels' K-split scratch for this call (None when it runs unsplit); x16: the
    16-bit-x kernels (gemm_w4a16, gemm_w8a16: sized for the larger of their plans), else
    gemm_w8a8's."""
    n_bytes = _C.cuda_wgmma_partial_bytes(x16, m, nt, nk)
    return torch.empty(n_bytes, dtype=torch.uint8, device=x.device) if n_bytes else None


def _x_image_16bit(x2: torch.Tensor, nk: int, s: int):
    """(image, kt) for the 16-bit-x wgmma kernels: x copied into 64-column blocks of 256 rows
    (zero past k; the padding rows are left unwritten: they only meet outputs never stored).
    The GEMM must be launched right after it (its after_image argument)."""
    m = x2.shape[0]
    xk = _kernel_rows(x2)
    kt = (nk + 1) // 2
    rows = -(-m // _C.cuda_wgmma_x_rows) * _C.cuda_wgmma_x_rows
    xt = torch.empty(rows * kt * 128, dtype=torch.int8, device=x2.device)
    _C.cuda_x_tiles_16bit(xk.data_ptr(), m, xk.shape[1], xk.stride(0), xt.data_ptr(), kt, s)
    return xt, kt


def _numel(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel()


def _ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _out(x: torch.Tensor, m: int, n: int) -> torch.Tensor:
    return torch.empty(m, n, dtype=x.dtype, device=x.device)


def _finish(y: torch.Tensor, x: torch.Tensor, n: int) -> torch.Tensor:
    return y.view(*x.shape[:-1], n)


def _dense(x2: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The large-M path: cuBLAS on the dequantized weight (x's dtype), fp32 bias."""
    if bias is None:
        return x2 @ w.t()
    return torch.addmm(bias.to(x2.dtype), x2, w.t())


def _gemm_w4a16(x, qweight, scales, zeros, bias, n):
    op = "gemm_w4a16"
    _same_device(op, x, qweight=qweight, scales=scales, zeros=zeros, bias=bias)
    nt, nk, ng, group = _w4_layout(op, qweight, scales, zeros, n)
    x2 = _act(op, x, nk * 32)
    if x2.shape[1] <= nk * 32 - group:
        fail(op, f"x has K={x2.shape[1]} columns but the weight was packed for K in "
                 f"({nk * 32 - group}, {nk * 32}]")
    check_bias(op, bias, n)
    m, k = x2.shape
    if m == 0:
        return _finish(_out(x, 0, n), x, n)
    s = _stream(x)
    tiled = tiled_max_m() if m > DECODE_MAX_M else 0
    # the one environment lookup of a decode call (~0.5 µs); the device check only when opted in
    path = _w4a16_path(m, w4a16_wgmma_range(), tiled)
    if path == "wgmma":
        xt, kt = _x_image_16bit(x2, nk, s)
        out = _out(x, m, n)
        part = _wgmma_partials(x, True, m, nt, nk)  # held until the launches are queued
        _C.cuda_gemm_w4a16_wgmma(xt.data_ptr(), _DT[x.dtype], m, kt, qweight.data_ptr(), nt, nk,
                                 scales.data_ptr(), _ptr(zeros), ng, group, n, _ptr(bias),
                                 out.data_ptr(), n, _ptr(part), _numel(part), True, s)
        return _finish(out, x, n)
    if path == "dequant + cuBLAS":
        w = torch.empty(n, k, dtype=x.dtype, device=x.device)
        _C.cuda_dequant_w4(qweight.data_ptr(), nt, nk, scales.data_ptr(), _ptr(zeros), ng, group,
                           n, k, w.data_ptr(), _DT[x.dtype], k, s)
        return _finish(_dense(x2, w, bias), x, n)
    out = _out(x, m, n)
    xk = _kernel_rows(x2)
    partials = None  # the opt-in tiled kernel's split sums: held until the launch is queued
    if path == "tiled mma":
        _, n_bytes = _C.cuda_decode_workspace(m, nt, nk, group // 32)
        partials = torch.empty(max(n_bytes, 4), dtype=torch.uint8, device=x.device)
        ws = (0, 0, partials.data_ptr(), partials.numel())
    else:
        ws = _decode_workspace(x, m, nt, nk, group)
    _C.cuda_gemm_w4a16(xk.data_ptr(), _DT[x.dtype], m, xk.shape[1], xk.stride(0),
                       qweight.data_ptr(), nt, nk, scales.data_ptr(), _ptr(zeros), ng, group, n,
                       _ptr(bias), out.data_ptr(), n, *ws, s)
    return _finish(out, x, n)


def _gemm_w8a16(x, qweight, scales, bias, n):
    op = "gemm_w8a16"
    _same_device(op, x, qweight=qweight, scales=scales, bias=bias)
    nt, nk = _w8_layout(op, qweight, scales, n)
    x2 = _act(op, x, nk * 32)
    _w8_k_ok(op, x2.shape[1], nk)
    check_bias(op, bias, n)
    m, k = x2.shape
    if m == 0:
        return _finish(_out(x, 0, n), x, n)
    s = _stream(x)
    path = _w8a16_path(m, w8a16_wgmma_range())
    if path == "wgmma":
        xt, kt = _x_image_16bit(x2, nk, s)
        out = _out(x, m, n)
        part = _wgmma_partials(x, True, m, nt, nk)  # held until the launches are queued
        _C.cuda_gemm_w8a16_wgmma(xt.data_ptr(), _DT[x.dtype], m, kt, qweight.data_ptr(), nt, nk,
                                 scales.data_ptr(), n, _ptr(bias), out.data_ptr(), n,
                                 _ptr(part), _numel(part), True, s)
        return _finish(out, x, n)
    if path == "dequant + cuBLAS":
        w = torch.empty(n, k, dtype=x.dtype, device=x.device)
        _C.cuda_dequant_w8(qweight.data_ptr(), nt, nk, scales.data_ptr(), n, k, w.data_ptr(),
                           _DT[x.dtype], k, s)
        return _finish(_dense(x2, w, bias), x, n)
    out = _out(x, m, n)
    xk = _kernel_rows(x2)
    _C.cuda_gemm_w8a16(xk.data_ptr(), _DT[x.dtype], m, xk.shape[1], xk.stride(0),
                       qweight.data_ptr(), nt, nk, scales.data_ptr(), n, _ptr(bias),
                       out.data_ptr(), n, s)
    return _finish(out, x, n)


def _gemm_w8a8(x, qweight, scales, bias, n, act_block=0):
    op = "gemm_w8a8"
    _same_device(op, x, qweight=qweight, scales=scales, bias=bias)
    if act_block != 0:
        fail(op, f"act_block={act_block}: on CUDA activations are quantized per token "
                 f"(act_block=0) only")
    nt, nk = _w8_layout(op, qweight, scales, n)
    x2 = _act(op, x, nk * 32)
    _w8_k_ok(op, x2.shape[1], nk)
    check_bias(op, bias, n)
    m, k = x2.shape
    if m == 0:
        return _finish(_out(x, 0, n), x, n)
    if x2.stride(1) != 1:
        x2 = x2.contiguous()
    s = _stream(x)
    kq = nk * 32
    xs = torch.empty(m, dtype=torch.float32, device=x.device)
    if cuda_path(op, m) == "quant + int8 wgmma":
        # x quantized straight into the kernel's image: 128-column blocks of 256 rows (zero
        # padding included, written by the quantization kernel)
        kt = (nk + 3) // 4
        rows = -(-m // _C.cuda_wgmma_x_rows) * _C.cuda_wgmma_x_rows
        xt = torch.empty(rows * kt * 128, dtype=torch.int8, device=x.device)
        _C.cuda_quant_act_int8_tiles(x2.data_ptr(), _DT[x.dtype], m, k, x2.stride(0),
                                     xt.data_ptr(), kt, xs.data_ptr(), s)
        out = _out(x, m, n)
        part = _wgmma_partials(x, False, m, nt, nk)  # held until the launches are queued
        _C.cuda_gemm_w8a8_wgmma(xt.data_ptr(), m, kt, xs.data_ptr(), qweight.data_ptr(), nt, nk,
                                scales.data_ptr(), n, _ptr(bias), out.data_ptr(), _DT[x.dtype],
                                n, _ptr(part), _numel(part), True, s)
        return _finish(out, x, n)
    xq = torch.empty(m, kq, dtype=torch.int8, device=x.device)
    _C.cuda_quant_act_int8(x2.data_ptr(), _DT[x.dtype], m, k, x2.stride(0), kq, 1,
                           xq.data_ptr(), kq, xs.data_ptr(), 0, s)
    out = _out(x, m, n)
    _C.cuda_gemm_w8a8(xq.data_ptr(), m, kq, xs.data_ptr(), qweight.data_ptr(), nt, nk,
                      scales.data_ptr(), n, _ptr(bias), out.data_ptr(), _DT[x.dtype], n, s)
    return _finish(out, x, n)


def _dequant_w4(qweight, scales, zeros, n, k):
    op = "dequant_w4"
    _same_device(op, qweight, scales=scales, zeros=zeros)
    nt, nk, ng, group = _w4_layout(op, qweight, scales, zeros, n)
    if not (nk * 32 - group < k <= nk * 32):
        fail(op, f"k={k} does not match the packed k_pad={nk * 32} (group {group})")
    out = torch.empty(n, k, dtype=torch.float32, device=qweight.device)
    _C.cuda_dequant_w4(qweight.data_ptr(), nt, nk, scales.data_ptr(), _ptr(zeros), ng, group, n,
                       k, out.data_ptr(), _F32, k, _stream(qweight))
    return out


def _dequant_w8(qweight, scales, n, k):
    op = "dequant_w8"
    _same_device(op, qweight, scales=scales)
    nt, nk = _w8_layout(op, qweight, scales, n)
    if not (nk * 32 - 32 < k <= nk * 32):
        fail(op, f"k={k} does not match the packed {nk} chunks of 32 columns")
    out = torch.empty(n, k, dtype=torch.float32, device=qweight.device)
    _C.cuda_dequant_w8(qweight.data_ptr(), nt, nk, scales.data_ptr(), n, k, out.data_ptr(), _F32,
                       k, _stream(qweight))
    return out


def _quantize_act_int8(x, block):
    op = "quantize_act_int8"
    dt = {torch.float16: 0, torch.bfloat16: 1, torch.float32: _F32}.get(x.dtype)
    if dt is None:
        check_dtype(op, "x", x, torch.float16, torch.bfloat16, torch.float32)
    if x.dim() != 2:
        fail(op, f"x must be 2-D (M, K), got shape {tuple(x.shape)}")
    if block < 1:
        fail(op, f"block must be >= 1, got {block}")
    m, k = x.shape
    if k == 0:
        fail(op, "x must have at least one column")
    if x.stride(1) != 1:
        x = x.contiguous()
    nb = (k + block - 1) // block
    q = torch.empty(m, nb * block, dtype=torch.int8, device=x.device)
    scale = torch.empty(m, nb, dtype=torch.float32, device=x.device)
    qsum = torch.empty(m, nb, dtype=torch.int32, device=x.device)
    if m:
        _C.cuda_quant_act_int8(x.data_ptr(), dt, m, k, x.stride(0), block, nb, q.data_ptr(),
                               nb * block, scale.data_ptr(), qsum.data_ptr(), _stream(x))
    return q, scale, qsum


if HAVE_CUDA_KERNELS:
    lib.impl("gemm_w4a16", _gemm_w4a16, "CUDA")
    lib.impl("gemm_w8a16", _gemm_w8a16, "CUDA")
    lib.impl("gemm_w8a8", _gemm_w8a8, "CUDA")
    lib.impl("dequant_w4", _dequant_w4, "CUDA")
    lib.impl("dequant_w8", _dequant_w8, "CUDA")
    lib.impl("quantize_act_int8", _quantize_act_int8, "CUDA")
