"""Shared fixtures. Weight/activation factories and error bounds live in tests/helpers.py."""

from __future__ import annotations

import pytest

import llmaccel

ISAS = ["scalar", "avx2", "avx512", "avx512_bf16"]
_AVAILABLE = {"scalar": "", "avx2": "avx2_available", "avx512": "avx512_available",
              "avx512_bf16": "avx512_bf16_available"}


def pytest_generate_tests(metafunc):
    """Parametrizes `isa` over the CPU paths. An op without an AVX2 kernel (the dequant ops have no
    ISA-specific code) runs its portable code under 'avx2', which the 'scalar' case already
    tests, so 'avx2' is generated only for modules that set AVX2_KERNELS = True."""
    if "isa" in metafunc.fixturenames:
        with_avx2 = getattr(metafunc.module, "AVX2_KERNELS", False)
        names = [n for n in ISAS if n != "avx2" or with_avx2]
        metafunc.parametrize("isa", names, indirect=True)


@pytest.fixture
def isa(request):
    """Runs the test once per CPU code path; 'auto' is restored afterwards."""
    name = request.param
    key = _AVAILABLE[name]
    if key and not llmaccel.cpu_info()[key]:
        pytest.skip(f"{name} path unavailable on this CPU: {llmaccel.cpu_info()['reason']}")
    llmaccel.set_cpu_isa(name)
    assert llmaccel.cpu_info()["isa"] == name
    try:
        yield name
    finally:
        llmaccel.set_cpu_isa("auto")


@pytest.fixture
def no_vbmi():
    """Kernels run as on an AVX-512 CPU without VBMI (Skylake-SP, Cascade Lake) for the test;
    the previous setting is restored afterwards."""
    before = llmaccel.cpu_info()["vbmi"]
    llmaccel.ops.set_cpu_vbmi(False)
    try:
        yield
    finally:
        llmaccel.ops.set_cpu_vbmi(before)
