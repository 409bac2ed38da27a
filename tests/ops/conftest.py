"""Fixtures shared by the op tests: the SIMT emulator's binary (test_wgmma_emu.py,
test_wgmma_emu_copies.py), its build with the kernels' trace points on (test_kernel_trace.py)
and its build under ThreadSanitizer (test_emu_races.py), each built once per session."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cuda_include() -> Path | None:
    roots = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(Path(nvcc).resolve().parent.parent / "include")
    roots += sorted(Path("/usr/local").glob("cuda*/include"), reverse=True)
    return next((r for r in roots if (r / "cuda_fp16.h").exists()), None)


def _build_emu(tmp_path_factory, name: str, *defines: str, flags: tuple[str, ...] = ()) -> Path:
    include, cxx = _cuda_include(), shutil.which("g++")
    if include is None or cxx is None:
        pytest.skip("needs g++ and the CUDA headers (cuda_fp16.h)")
    binary = tmp_path_factory.mktemp(name) / "wgmma_emu"
    # -fno-strict-aliasing: the kernels pun 16-bit pairs through pointers, as CUDA code does
    cmd = [cxx, "-std=c++20", "-O2", "-pthread", "-fno-strict-aliasing", "-Wno-unknown-pragmas",
           *flags, *(f"-D{d}" for d in defines), f"-I{REPO / 'csrc'}", f"-I{include}",
           str(REPO / "tests" / "native" / "wgmma_emu_main.cpp"), "-o", str(binary)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode and "-fsanitize=thread" in flags and "tsan" in done.stderr:
        pytest.skip("needs the compiler's ThreadSanitizer runtime (libtsan)")
    if done.returncode:
        pytest.fail(f"the emulator did not compile:\n{done.stderr[-4000:]}")
    return binary


@pytest.fixture(scope="session")
def emu(tmp_path_factory) -> Path:
    """The kernels exactly as the library compiles them."""
    return _build_emu(tmp_path_factory, "emu")


@pytest.fixture(scope="session")
def emu_trace(tmp_path_factory) -> Path:
    """The same with the trace points on (csrc/cuda/kernel_trace.cuh, test_kernel_trace.py)."""
    return _build_emu(tmp_path_factory, "emu_trace", "LLMACCEL_KERNEL_TRACE")


@pytest.fixture(scope="session")
def emu_race(tmp_path_factory) -> Path:
    """The same under ThreadSanitizer: every emulated CUDA thread is a host thread, so a shared-
    memory access that no barrier orders against another thread's is reported (test_emu_races.py;
    csrc/emu/simt_emu_race.h says which orders count)."""
    binary = _build_emu(tmp_path_factory, "emu_race", flags=("-fsanitize=thread", "-g"))
    # TSan's runtime refuses some kernels' address-space layouts at start, before any kernel runs
    # (a run without arguments only prints its usage)
    done = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    if "unexpected memory mapping" in done.stderr:
        pytest.skip("ThreadSanitizer cannot run under this kernel's memory layout")
    return binary
