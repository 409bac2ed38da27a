"""Pure-PyTorch twins of every native op: the definition of what each op computes, the test
oracle, and a readable fallback. Same arguments and results as ``torch.ops.llmaccel.*``."""

from .dequant import dequant_sp24, dequant_w4, dequant_w4_sp24, dequant_w8
from .distill import distill_loss_rows
from .gemm import gemm_f32, gemm_w4a8, gemm_w4a16, gemm_w8a8, gemm_w8a16
from .quant import quantize_act_int8
from .sparse import gemm_sp24, gemm_w4a8_sp24, gemm_w4a16_sp24

__all__ = [
    "dequant_sp24",
    "dequant_w4",
    "dequant_w4_sp24",
    "dequant_w8",
    "distill_loss_rows",
    "gemm_f32",
    "gemm_sp24",
    "gemm_w4a16",
    "gemm_w4a16_sp24",
    "gemm_w4a8",
    "gemm_w4a8_sp24",
    "gemm_w8a16",
    "gemm_w8a8",
    "quantize_act_int8",
]
