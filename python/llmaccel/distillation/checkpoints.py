"""Distillation checkpoints: a student, its AdamW state and the run's progress, written so that
a killed run always leaves a complete, loadable checkpoint and a resumed run continues exactly.

    directory/latest.json           {"checkpoint": "step-NNNNNNNN", "step": N}
    directory/step-NNNNNNNN/        student.safetensors, optimizer.safetensors, state.json

Tensors go to safetensors and everything else to JSON: nothing is pickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..files import atomic_write

CHECKPOINT_FORMAT = "llmaccel-distill-checkpoint"
CHECKPOINT_VERSION = 1
LATEST = "latest.json"


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint folder that ``directory``/latest.json points to, or None."""
    pointer = Path(directory) / LATEST
    if not pointer.is_file():
        return None
    return Path(directory) / json.loads(pointer.read_text())["checkpoint"]


def save_checkpoint(directory: Path, student, optimizer, run: dict, trajectory: dict,
                    fingerprint: dict) -> Path:
    """Writes ``directory``/step-NNNNNNNN/ (N = run["step"]) and then points
    ``directory``/latest.json at it. run: the progress to restore (JSON); trajectory: the config
    fields a resumed run must share; fingerprint: the token data's.

    The folder is built under a temporary name and renamed; latest.json is replaced atomically
    (``files.atomic_write``) only after that. A save that fails or is killed at any point
    leaves latest.json pointing at the previous, complete checkpoint. Older checkpoints are
    deleted once the new one is in place."""
    from safetensors import torch as st

    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{run['step']:08d}"
    final = directory / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=directory))
    try:
        # save_model, not save_file: it stores tied tensors (embeddings) once.
        st.save_model(student, str(tmp / "student.safetensors"))
        opt = optimizer.state_dict()
        tensors, scalars = {}, {}
        for idx, state in opt["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{idx}.{key}"] = value
        st.save_file(tensors, str(tmp / "optimizer.safetensors"))
        meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "config": trajectory, "data": fingerprint, "run": run,
                "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars}}
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))
        os.chmod(tmp, 0o755)
        if final.exists():  # left by a run that died between the rename and the pointer
            shutil.rmtree(final)
        os.rename(tmp, final)
        atomic_write(directory / LATEST, json.dumps({"checkpoint": name, "step": run["step"]}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list(directory.glob("step-*")) + list(directory.glob(".step-*")):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, student, optimizer, trajectory: dict, fingerprint: dict,
                    device: torch.device) -> dict:
    """Restores student and optimizer from ``path`` and returns the saved run progress; refuses a
    checkpoint written with another trajectory or other token data."""
    from safetensors import torch as st

    meta = json.loads((path / "state.json").read_text())
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} version {CHECKPOINT_VERSION} "
                         f"checkpoint")
    saved, now = meta["config"], trajectory
    diff = {k: (saved.get(k), now[k]) for k in now if saved.get(k) != now[k]}
    if diff:
        shown = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{path} was written with a different config ({shown}); resuming "
                         f"would not continue the same run")
    if meta["data"] != fingerprint:
        raise ValueError(f"{path} was written for different token data "
                         f"(checkpoint {meta['data']}, now {fingerprint})")
    st.load_model(student, str(path / "student.safetensors"), strict=True, device=str(device))
    state: dict[int, dict] = {}
    for key, value in {**st.load_file(str(path / "optimizer.safetensors")),
                       **meta["optimizer"]["scalars"]}.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state,
                               "param_groups": meta["optimizer"]["param_groups"]})
    return meta["run"]
