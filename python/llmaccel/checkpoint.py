"""Quantized checkpoints: safetensors weights + a JSON description, written atomically.

A checkpoint directory holds
    model.safetensors   every parameter and buffer (packed formats as stored by QuantLinear)
    llmaccel.json       format version, llmaccel version, and per layer (QuantLinear or
                        SparseLinear): the packed format (name/version), the layer's config
                        and its shape
    config.json, tokenizer files   when the model is a Hugging Face model / a tokenizer is given
``load_quantized`` rebuilds the model from config.json (structured pruning's smaller config
included), swaps in the described layers, and loads the weights strictly: no recalibration,
identical logits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from . import __version__, configs, formats
from .nn import QuantLinear, SparseLinear

CHECKPOINT_FORMAT = "llmaccel-checkpoint"
CHECKPOINT_VERSION = 1
_CONFIGS = {c.__name__: c for c in (configs.Int4WeightOnly, configs.Int8WeightOnly,
                                    configs.Int8Dynamic, configs.Sparse24)}


def _describe(model: nn.Module) -> dict:
    layers = {}
    for fqn, mod in model.named_modules():
        if isinstance(mod, (QuantLinear, SparseLinear)):
            layers[fqn] = {"format": mod.format.name, "format_version": mod.format.version,
                           "config": {"type": type(mod.config).__name__,
                                      **dataclasses.asdict(mod.config)},
                           "in_features": mod.in_features, "out_features": mod.out_features,
                           "bias": mod.bias is not None}
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "llmaccel_version": __version__, "layers": layers}


def save_quantized(model: nn.Module, path: str | os.PathLike, tokenizer=None,
                   metadata: dict | None = None) -> Path:
    """Writes model (with its QuantLinear / SparseLinear layers) to directory `path`, replacing
    it atomically: a failure leaves any earlier checkpoint at `path` as it was.

    metadata: JSON-serialisable facts about the run (method, source model, calibration), kept
    under "run" in llmaccel.json; loading does not need them.
    """
    from safetensors.torch import save_model

    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        # save_model stores tensors that share memory (tied embeddings) once.
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        desc = _describe(model)
        if metadata:
            desc["run"] = metadata
        (tmp / "llmaccel.json").write_text(json.dumps(desc, indent=2, default=str))
        if hasattr(model, "config") and hasattr(model.config, "to_json_file"):
            model.config.to_json_file(tmp / "config.json")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        os.chmod(tmp, 0o755)
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError:
            if old is not None:  # put the earlier checkpoint back before failing
                os.rename(old, final)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_description(path: str | os.PathLike) -> dict:
    """The llmaccel.json of a checkpoint, validated (format and version)."""
    return _read_description(Path(path))


def is_checkpoint(path: str | os.PathLike) -> bool:
    return (Path(path) / "llmaccel.json").is_file()


def _read_description(path: Path) -> dict:
    try:
        desc = json.loads((path / "llmaccel.json").read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is not an llmaccel checkpoint (no llmaccel.json)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path / 'llmaccel.json'} is not valid JSON: {e}") from None
    if desc.get("format") != CHECKPOINT_FORMAT or desc.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint format {desc.get('format')!r} version "
                         f"{desc.get('version')!r} is not supported (this llmaccel reads "
                         f"{CHECKPOINT_FORMAT} version {CHECKPOINT_VERSION})")
    return desc


def _layer_from(fqn: str, spec: dict) -> QuantLinear:
    fmt = formats.FORMATS.get(spec.get("format"))
    if fmt is None or fmt.version != spec.get("format_version"):
        raise ValueError(f"layer {fqn}: packed format {spec.get('format')!r} version "
                         f"{spec.get('format_version')!r} is unknown to this llmaccel")
    cfg = dict(spec["config"])
    cls = _CONFIGS.get(cfg.pop("type", None))
    if cls is None:
        raise ValueError(f"layer {fqn}: unknown quantization config {spec['config']!r}")
    module = SparseLinear if cls is configs.Sparse24 else QuantLinear
    layer = module(spec["in_features"], spec["out_features"], spec["bias"], cls(**cfg))
    if layer.format != fmt:
        raise ValueError(f"layer {fqn}: config {spec['config']!r} is stored as {layer.format}, "
                         f"not {fmt}")
    return layer


def apply_description(model: nn.Module, desc: dict) -> nn.Module:
    """Swaps the layers named in a checkpoint description for empty QuantLinear / SparseLinear
    modules."""
    for fqn, spec in desc["layers"].items():
        parent_name, _, child = fqn.rpartition(".")
        try:
            parent = model.get_submodule(parent_name) if parent_name else model
            getattr(parent, child)
        except AttributeError:
            raise ValueError(f"checkpoint layer {fqn} does not exist in the model") from None
        setattr(parent, child, _layer_from(fqn, spec))
    return model


def load_quantized(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """Rebuilds a saved model. Without `model`, it is built from config.json with transformers
    (offline); with one (the same float architecture), its layers are swapped and loaded."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = Path(path)
    desc = _read_description(path)
    if model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoConfig, AutoModelForCausalLM

        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: pass the float model to rebuild")
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    apply_description(model, desc)
    try:
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
    except SafetensorError as e:
        raise ValueError(f"{path / 'model.safetensors'} is unreadable (truncated or corrupt): "
                         f"{e}") from None
    except RuntimeError as e:  # shape mismatches from load_state_dict
        raise ValueError(f"{path}: weights do not match the described layers: {e}") from None
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match the model (missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]})")
    return model.eval()
