"""llmaccel: fast, small LLM inference — quantized and sparse kernels under a PyTorch API."""

import torch  # noqa: F401  (first: _C then shares torch's libgomp, see CMakeLists.txt)

from . import formats, ops, reference
from .ops import cpu_info, cuda_info, set_cpu_isa

__version__ = "0.1.0"
__all__ = ["cpu_info", "cuda_info", "formats", "ops", "reference", "set_cpu_isa"]
