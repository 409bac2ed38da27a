"""The GPU machine's stand-alone probes (bench/gpu/bulk_copy_probe.cu, trace_probe.cu) still
compile for sm_90a wherever nvcc is present, GPU or not. They are built only on a lent GPU
machine, inside device time this project rarely has; a probe broken by a change to the kernels'
headers or launchers would cost a device call to find out. (About a minute on 2 cores, both
at once.)"""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBES = ["bulk_copy_probe.cu", "trace_probe.cu"]


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    return next((str(p) for p in sorted(Path("/usr/local").glob("cuda*/bin/nvcc"), reverse=True)),
                None)


def test_gpu_probes_compile(tmp_path):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("needs nvcc")
    # the command line of bench/gpu/optin_iter.sh
    runs = {name: subprocess.Popen(
        [nvcc, "-std=c++17", "-O2", "-gencode=arch=compute_90a,code=sm_90a",
         f"-I{REPO / 'csrc'}", str(REPO / "bench" / "gpu" / name), "-o",
         str(tmp_path / Path(name).stem)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in PROBES}
    failed = {}
    for name, run in runs.items():
        out, _ = run.communicate(timeout=900)
        if run.returncode:
            failed[name] = out[-3000:]
    assert not failed, "\n".join(f"{n}:\n{o}" for n, o in failed.items())
