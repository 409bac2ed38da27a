"""llmaccel: fast, small LLM inference — quantized and sparse kernels under a PyTorch API.

    import llmaccel
    llmaccel.quantize_(model, llmaccel.Int4WeightOnly(group_size=128))
    llmaccel.prune_(model, llmaccel.SparseGPT(pattern="2:4"), calibration=ids)
    llmaccel.distill(student, teacher, llmaccel.DistillData(train_ids, eval_ids),
                     llmaccel.DistillConfig(steps=500))
"""

import torch  # noqa: F401  (first: _C then shares torch's libgomp, see CMakeLists.txt)

__version__ = "0.1.0"

from . import formats, ops, reference
from .configs import (AWQ, GPTQ, Int4WeightOnly, Int8Dynamic, Int8WeightOnly, SmoothQuant,
                      Sparse24)
from .nn import QuantLinear, SparseLinear
from .ops import cpu_info, cuda_info, set_cpu_isa
from .quantization import quantize_
from .pruning import Magnitude, SparseGPT, Structured, Wanda, prune_, sparsify_
from .checkpoint import load_quantized, save_quantized
from .distillation import DistillConfig, DistillData, distill

__all__ = [
    "AWQ",
    "GPTQ",
    "Int4WeightOnly",
    "Int8Dynamic",
    "Int8WeightOnly",
    "Magnitude",
    "QuantLinear",
    "cpu_info",
    "cuda_info",
    "distill",
    "DistillConfig",
    "DistillData",
    "formats",
    "load_quantized",
    "ops",
    "prune_",
    "sparsify_",
    "quantize_",
    "reference",
    "save_quantized",
    "set_cpu_isa",
    "SmoothQuant",
    "SparseGPT",
    "Sparse24",
    "SparseLinear",
    "Structured",
    "Wanda",
]
