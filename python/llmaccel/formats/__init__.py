"""Packed weight formats: the one place that knows byte layouts.

Each format is named and versioned (``FormatSpec``). Its layout is the canonical on-disk layout
(checkpoints store exactly these tensors) and is also what the CPU kernels read directly; other
devices repack at load time. One module per family, each with its layouts' description:

- ``dense``: ``int4_tile16x8`` (int4 group-wise, symmetric or asymmetric) and ``int8_tile16x4``
  (int8 per output channel);
- ``sp24``: ``int4_sp24_tile16x32`` and ``bf16_sp24_tile16x32`` (2:4 sparse);
- ``cuda``: ``int4_cuda_mma16x32`` and ``int8_cuda_mma16x32``, the CUDA kernels' device layouts
  (never stored: permutations of the canonical codes made when a layer moves to a GPU; a 2:4
  int4 weight takes the dense int4 one);
- ``spec``: what they share (``FormatSpec``, the 16-row tiles, the code checks).
"""

from __future__ import annotations

from .cuda import (INT4_CUDA_MMA, INT8_CUDA_MMA, from_cuda_int4, from_cuda_int4_sp24,
                   from_cuda_int8, to_cuda_int4, to_cuda_int4_sp24, to_cuda_int8)
from .dense import (INT4_TILE16X8, INT8_TILE16X4, PackedInt4, PackedInt8, int4_padding, pack_int4,
                    pack_int8, unpack_int4, unpack_int8)
from .sp24 import (BF16_SP24_TILE16X32, INT4_SP24_TILE16X32, SP24_CHUNK, PackedInt4Sp24,
                   PackedSp24, dequant_int4_sp24, pack_int4_sp24, pack_sp24, sp24_mask,
                   unpack_int4_sp24, unpack_sp24)
from .spec import ROW_BLOCK, FormatSpec

__all__ = [
    "BF16_SP24_TILE16X32",
    "FORMATS",
    "FormatSpec",
    "INT4_CUDA_MMA",
    "INT4_SP24_TILE16X32",
    "INT4_TILE16X8",
    "INT8_CUDA_MMA",
    "INT8_TILE16X4",
    "PackedInt4",
    "PackedInt4Sp24",
    "PackedInt8",
    "PackedSp24",
    "ROW_BLOCK",
    "SP24_CHUNK",
    "dequant_int4_sp24",
    "from_cuda_int4",
    "from_cuda_int4_sp24",
    "from_cuda_int8",
    "int4_padding",
    "pack_int4",
    "pack_int4_sp24",
    "pack_int8",
    "pack_sp24",
    "sp24_mask",
    "to_cuda_int4",
    "to_cuda_int4_sp24",
    "to_cuda_int8",
    "unpack_int4",
    "unpack_int4_sp24",
    "unpack_int8",
    "unpack_sp24",
]

# The formats a checkpoint may name (the device layouts are never stored).
FORMATS = {f.name: f for f in (INT4_TILE16X8, INT8_TILE16X4, INT4_SP24_TILE16X32,
                               BF16_SP24_TILE16X32)}
