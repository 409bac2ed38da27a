"""The GPU machine's stand-alone probes (bench/gpu/bulk_copy_probe.cu, trace_probe.cu) still
compile for sm_90a wherever nvcc is present, GPU or not. They are built only on a lent GPU
machine, inside device time this project rarely has; a probe broken by a change to the kernels'
headers or launchers would cost a device call to find out. Built as optin_iter.sh builds them:
the trace probe also as its control (no trace points) and with the main loop's pipeline
experiments. (About two minutes on 2 cores, all at once.)"""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# (file, flags): optin_iter.sh's builds, the trace probe's control and the main loop's
# experiments (both pipeline ones and two blocks per SM in one build, to keep it to four)
PROBES = [("bulk_copy_probe.cu", []), ("trace_probe.cu", []),
          ("trace_probe.cu", ["-DLLMACCEL_PROBE_NO_TRACE"]),
          ("trace_probe.cu", ["-DLLMACCEL_WGMMA_DEPTH=3", "-DLLMACCEL_WGMMA_CHAINS=2",
                              "-DLLMACCEL_WGMMA_SMALL_BPS=2"])]


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
    runs = {}
    for i, (name, flags) in enumerate(PROBES):
        cmd = [nvcc, "-std=c++17", "-O2", "-gencode=arch=compute_90a,code=sm_90a", *flags,
               f"-I{REPO / 'csrc'}", str(REPO / "bench" / "gpu" / name), "-o",
               str(tmp_path / f"probe{i}")]
        runs[" ".join([name, *flags])] = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failed = {}
    try:
        for what, run in runs.items():
            out, _ = run.communicate(timeout=1200)
            if run.returncode:
                failed[what] = out[-3000:]
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
    assert not failed, "\n".join(f"{w}:\n{o}" for w, o in failed.items())
