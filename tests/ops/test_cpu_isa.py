"""CPU code path selection: set_cpu_isa, cpu_info, and the LLMACCEL_CPU_ISA override read at
import; the VBMI switch (set_cpu_vbmi, LLMACCEL_CPU_VBMI)."""

import json
import os
import subprocess
import sys

import pytest

import llmaccel


def _info_in_subprocess(env_value, var="LLMACCEL_CPU_ISA"):
    """cpu_info() of a fresh interpreter started with var=env_value (None: unset)."""
    env = dict(os.environ)
    env.pop(var, None)
    if env_value is not None:
        env[var] = env_value
    code = "import json, llmaccel; print(json.dumps(llmaccel.cpu_info()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(info):
    """The path auto selection must pick given the features cpu_info reports."""
    if info["avx512_bf16_available"]:
        return "avx512_bf16"
    if info["avx512_available"]:
        return "avx512"
    return "avx2" if info["avx2_available"] else "scalar"


def test_env_scalar():
    info = _info_in_subprocess("scalar")
    assert info["isa"] == "scalar"
    assert "LLMACCEL_CPU_ISA=scalar" in info["reason"]


def test_env_unset_and_avx512():
    auto = _info_in_subprocess(None)
    assert auto["reason"].startswith("auto")
    assert auto["isa"] == _best(auto)
    for name, key in [("avx2", "avx2_available"), ("avx512", "avx512_available"),
                      ("avx512_bf16", "avx512_bf16_available")]:
        forced = _info_in_subprocess(name)
        assert f"LLMACCEL_CPU_ISA={name}" in forced["reason"]
        if forced[key]:
            assert forced["isa"] == name
        else:
            assert forced["isa"] == _best(forced) and "unavailable" in forced["reason"]


def test_env_invalid_falls_back_with_a_reason_current_behaviour():
    """An unknown value falls back to automatic selection and the process keeps working."""
    info = _info_in_subprocess("avx9000")
    assert info["isa"] == _best(info)
    assert info["reason"]


def test_env_invalid_reason_names_the_value():
    assert "avx9000" in _info_in_subprocess("avx9000")["reason"]


def test_set_cpu_isa_round_trip():
    try:
        llmaccel.set_cpu_isa("scalar")
        info = llmaccel.cpu_info()
        assert info["isa"] == "scalar" and "scalar" in info["reason"]
        llmaccel.set_cpu_isa("auto")
        info = llmaccel.cpu_info()
        assert info["isa"] == _best(info)
        assert info["reason"].startswith("auto")
    finally:
        llmaccel.set_cpu_isa("auto")


def test_set_cpu_isa_rejects_unknown():
    before = llmaccel.cpu_info()["isa"]
    with pytest.raises(ValueError, match="unknown CPU ISA 'sse2'"):
        llmaccel.set_cpu_isa("sse2")
    assert llmaccel.cpu_info()["isa"] == before


def test_set_cpu_isa_avx512_unavailable():
    if llmaccel.cpu_info()["avx512_available"]:
        pytest.skip("AVX-512 is available here; the unavailable branch cannot be reached")
    with pytest.raises(ValueError, match="CPU path 'avx512' unavailable"):
        llmaccel.set_cpu_isa("avx512")


def test_set_cpu_isa_avx2_unavailable():
    if llmaccel.cpu_info()["avx2_available"]:
        pytest.skip("AVX2 is available here; the unavailable branch cannot be reached")
    with pytest.raises(ValueError, match="CPU path 'avx2' unavailable"):
        llmaccel.set_cpu_isa("avx2")


def test_auto_reason_names_the_avx2_fallback():
    """Without AVX-512 but with AVX2, auto picks avx2 and says which kernels it covers."""
    info = _info_in_subprocess(None)
    if info["avx512_available"] or not info["avx2_available"]:
        pytest.skip("auto does not pick avx2 on this CPU")
    assert info["isa"] == "avx2"
    assert "AVX2" in info["reason"]
    for kernels in ("dense", "2:4", "decode", "distillation"):
        assert kernels in info["reason"], kernels


def test_set_cpu_isa_avx512_bf16_unavailable():
    if llmaccel.cpu_info()["avx512_bf16_available"]:
        pytest.skip("AVX512_BF16 is available here; the unavailable branch cannot be reached")
    with pytest.raises(ValueError, match="CPU path 'avx512_bf16' unavailable"):
        llmaccel.set_cpu_isa("avx512_bf16")


def test_vbmi_switch():
    """cpu_info()['vbmi'] follows the CPU at import, LLMACCEL_CPU_VBMI=0 and set_cpu_vbmi;
    VBMI cannot be enabled on a CPU without it."""
    has = llmaccel.cpu_info()["features"]["avx512vbmi"]
    assert _info_in_subprocess(None, "LLMACCEL_CPU_VBMI")["vbmi"] == has
    assert _info_in_subprocess("0", "LLMACCEL_CPU_VBMI")["vbmi"] is False
    before = llmaccel.cpu_info()["vbmi"]
    try:
        llmaccel.ops.set_cpu_vbmi(False)
        assert llmaccel.cpu_info()["vbmi"] is False
        assert llmaccel.ops.w4a8_sp24_min_m() in (1, None)  # never the VBMI kernel's floor
        if has:
            llmaccel.ops.set_cpu_vbmi(True)
            assert llmaccel.cpu_info()["vbmi"] is True
        else:
            with pytest.raises(ValueError, match="lacks avx512vbmi"):
                llmaccel.ops.set_cpu_vbmi(True)
    finally:
        llmaccel.ops.set_cpu_vbmi(before)
