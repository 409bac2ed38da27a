"""Shared fixtures. Weight/activation factories and error bounds live in tests/helpers.py."""

from __future__ import annotations

import pytest

import llmaccel

ISAS = ["scalar", "avx512"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs the test once per CPU code path; 'auto' is restored afterwards."""
    name = request.param
    if name == "avx512" and not llmaccel.cpu_info()["avx512_available"]:
        pytest.skip(f"AVX-512 path unavailable: {llmaccel.cpu_info()['reason']}")
    llmaccel.set_cpu_isa(name)
    assert llmaccel.cpu_info()["isa"] == name
    try:
        yield name
    finally:
        llmaccel.set_cpu_isa("auto")
