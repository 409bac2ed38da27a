"""Shared fixtures. Weight/activation factories and error bounds live in tests/helpers.py."""

from __future__ import annotations

import pytest

import llmaccel

ISAS = ["scalar", "avx512", "avx512_bf16"]
_AVAILABLE = {"scalar": "", "avx512": "avx512_available", "avx512_bf16": "avx512_bf16_available"}


@pytest.fixture(params=ISAS)
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
