"""torch ops over the native kernels: the only module that touches ``llmaccel._C``.

Every op is ``torch.ops.llmaccel.<name>`` with a fake implementation, so ``torch.compile``
(fullgraph) and ``torch.export`` trace through it. Pure-PyTorch twins live in
``llmaccel.reference``.
"""

from __future__ import annotations

from .. import _C
from .decode import DecodeLinear, LlamaDecodeStep, time_linears
from .dequant import dequant_sp24, dequant_w4, dequant_w4_sp24, dequant_w8
from .distill import distill_loss_rows
from .gemm import PreparedGemm, call_gemm, gemm_f32, gemm_w4a8, gemm_w4a16, gemm_w8a8, gemm_w8a16
from .quant import quantize_act_int8
from .sparse import (PreparedSparse, gemm_sp24, gemm_w4a8_sp24, gemm_w4a16_sp24,
                     w4a8_sp24_min_m)
# CUDA kernels register last: they implement the ops defined above for the CUDA device.
from .cuda import DECODE_MAX_M, HAVE_CUDA_KERNELS, SWAPAB_MAX_M, cuda_path  # noqa: E402
from . import autograd  # noqa: E402,F401  (backward formulas of the ops above)


def cpu_info() -> dict:
    """Which CPU code path runs and why, the CPU features detected by cpuid, and whether kernels
    use VBMI ('vbmi', see set_cpu_vbmi)."""
    import torch

    info = dict(_C.cpu_info())
    info["num_threads"] = torch.get_num_threads()
    return info


def set_cpu_isa(name: str) -> None:
    """Selects the CPU path: 'avx512_bf16', 'avx512', 'avx2', 'scalar' or 'auto' (raises
    ValueError if unavailable)."""
    _C.set_cpu_isa(name)


def set_cpu_vbmi(enabled: bool) -> None:
    """Lets kernels use AVX512_VBMI or not (``cpu_info()['vbmi']``; LLMACCEL_CPU_VBMI=0 at import
    starts with it off): off, the AVX-512 paths run as on a CPU without it (Skylake-SP, Cascade
    Lake). Raises ValueError when enabling it on a CPU that lacks it."""
    _C.set_cpu_vbmi(enabled)


def memory_read_bandwidth(nbytes: int = 1 << 30, reps: int = 5) -> float:
    """Best read bandwidth (GB/s) over ``reps`` passes of an ``nbytes`` buffer, all threads: the
    machine's measured ceiling that benchmarks report weight-streaming kernels against."""
    import torch

    return _C.read_bandwidth_gbs(nbytes, reps, torch.get_num_threads())


def int8_peak_gmacs(reps: int = 5) -> float:
    """Measured int8 multiply-accumulate peak (GMAC/s, from registers, all threads) of the current
    CPU path's int8 instruction: vpdpbusd on avx512*, vpmaddubsw on avx2 (csrc/common/peak.h);
    0.0 on the scalar path. The ceiling int8 GEMMs are reported against."""
    import torch

    return _C.int8_peak_gmacs(reps, torch.get_num_threads())


def cuda_info() -> dict:
    """Whether CUDA kernels were built, the runtime version and the visible device count."""
    return dict(_C.cuda_info())


__all__ = [
    "cpu_info",
    "cuda_info",
    "cuda_path",
    "DECODE_MAX_M",
    "HAVE_CUDA_KERNELS",
    "SWAPAB_MAX_M",
    "DecodeLinear",
    "dequant_sp24",
    "dequant_w4",
    "dequant_w4_sp24",
    "dequant_w8",
    "distill_loss_rows",
    "PreparedGemm",
    "PreparedSparse",
    "call_gemm",
    "gemm_f32",
    "gemm_sp24",
    "gemm_w4a16",
    "gemm_w4a16_sp24",
    "gemm_w4a8",
    "gemm_w4a8_sp24",
    "gemm_w8a16",
    "LlamaDecodeStep",
    "gemm_w8a8",
    "int8_peak_gmacs",
    "memory_read_bandwidth",
    "quantize_act_int8",
    "set_cpu_isa",
    "set_cpu_vbmi",
    "time_linears",
    "w4a8_sp24_min_m",
]
