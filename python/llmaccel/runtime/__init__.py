"""Fast generation: a static-cache, fused-projection decode loop for Llama-family models,
driving the same (quantized) modules the model holds."""

from .llama import SUPPORTED, LlamaDecoder

__all__ = ["SUPPORTED", "LlamaDecoder"]
