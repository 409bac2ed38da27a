"""Which CUDA kernel path an op takes by M (ops.cuda_path): pure routing, runs without a GPU."""

import pytest

from llmaccel import ops


def _no_wgmma_device(monkeypatch):
    for op in ("w8a8", "w4a16", "w8a16"):
        monkeypatch.setattr(ops.cuda, f"{op}_wgmma_available", lambda: False)


def test_default_paths(monkeypatch):
    """Without a device that runs the sm_90a kernels (another GPU, or none)."""
    for var in ("LLMACCEL_W8_WGMMA", "LLMACCEL_W4_TILED", "LLMACCEL_W8A8_WGMMA",
                "LLMACCEL_W4_WGMMA"):
        monkeypatch.delenv(var, raising=False)
    _no_wgmma_device(monkeypatch)
    assert ops.cuda_path("gemm_w4a16", 1) == "decode mma"
    assert ops.cuda_path("gemm_w4a16", ops.DECODE_MAX_M) == "decode mma"
    assert ops.cuda_path("gemm_w4a16", ops.DECODE_MAX_M + 1) == "swapAB mma"
    assert ops.cuda_path("gemm_w4a16", ops.SWAPAB_MAX_M["gemm_w4a16"] + 1) == "dequant + cuBLAS"
    assert ops.cuda_path("gemm_w8a16", 1) == "swapAB mma"
    assert ops.cuda_path("gemm_w8a8", 65) == "quant + int8 tiled mma"


@pytest.mark.parametrize("op,m,expected", [
    ("gemm_w4a16", 16, "decode mma"), ("gemm_w4a16", 17, "wgmma"), ("gemm_w4a16", 512, "wgmma"),
    ("gemm_w4a16", 513, "dequant + cuBLAS"), ("gemm_w8a16", 16, "swapAB mma"),
    ("gemm_w8a16", 17, "wgmma"), ("gemm_w8a16", 512, "wgmma"),
    ("gemm_w8a16", 513, "dequant + cuBLAS"), ("gemm_w8a8", 32, "quant + int8 swapAB mma"),
    ("gemm_w8a8", 33, "quant + int8 wgmma"), ("gemm_w8a8", 64, "quant + int8 wgmma"),
    ("gemm_w8a8", 65, "quant + int8 wgmma"), ("gemm_w8a8", 8192, "quant + int8 wgmma"),
])
def test_default_paths_sm90a(monkeypatch, op, m, expected):
    """On a device that runs the sm_90a kernels, each op's measured wgmma range (WGMMA_M)."""
    for var in ("LLMACCEL_W8_WGMMA", "LLMACCEL_W4_TILED", "LLMACCEL_W8A8_WGMMA",
                "LLMACCEL_W4_WGMMA"):
        monkeypatch.delenv(var, raising=False)
    for name in ("w8a8", "w4a16", "w8a16"):
        monkeypatch.setattr(ops.cuda, f"{name}_wgmma_available", lambda: True)
    assert ops.cuda_path(op, m) == expected


@pytest.mark.parametrize("value,m,expected", [
    ("512", 17, "tiled mma"), ("512", 512, "tiled mma"), ("512", 513, "dequant + cuBLAS"),
    ("512", 16, "decode mma"), ("0", 40, "swapAB mma"), ("", 40, "swapAB mma"),
    ("junk", 40, "swapAB mma"), ("32", 40, "swapAB mma"),
])
def test_tiled_opt_in(monkeypatch, value, m, expected):
    """LLMACCEL_W4_TILED=<max M> routes gemm_w4a16 above the decode range to the tiled kernel up
    to that M; unset, empty, 0 or unreadable: off. Other ops are unaffected."""
    monkeypatch.setenv("LLMACCEL_W4_TILED", value)
    monkeypatch.delenv("LLMACCEL_W4_WGMMA", raising=False)
    monkeypatch.delenv("LLMACCEL_W8_WGMMA", raising=False)
    _no_wgmma_device(monkeypatch)
    assert ops.cuda_path("gemm_w4a16", m) == expected
    assert ops.cuda_path("gemm_w8a16", m) == ("swapAB mma" if m <= 64 else "dequant + cuBLAS")


def test_unknown_op():
    with pytest.raises(ValueError, match="no CUDA kernel"):
        ops.cuda_path("gemm_f32", 1)


@pytest.mark.parametrize("value,available,m,expected", [
    ("", True, 65, "quant + int8 wgmma"), ("1", True, 4096, "quant + int8 wgmma"),
    ("yes", True, 4096, "quant + int8 wgmma"), ("", True, 32, "quant + int8 swapAB mma"),
    ("", True, 33, "quant + int8 wgmma"), ("", False, 64, "quant + int8 swapAB mma"),
    ("", False, 4096, "quant + int8 tiled mma"), ("0", True, 4096, "quant + int8 tiled mma"),
    ("0", True, 64, "quant + int8 swapAB mma"), ("all", True, 1, "quant + int8 wgmma"),
    ("all", True, 64, "quant + int8 wgmma"), ("all", False, 1, "quant + int8 swapAB mma"),
])
def test_w8a8_wgmma_setting(monkeypatch, value, available, m, expected):
    """gemm_w8a8 takes the wgmma kernel from M = 33 where the device runs its sm_90a code (=all:
    every M); LLMACCEL_W8A8_WGMMA=0 or another GPU keeps the swapped kernel up to M = 64 and the
    tiled kernel above."""
    monkeypatch.setenv("LLMACCEL_W8A8_WGMMA", value)
    monkeypatch.setattr(ops.cuda, "w8a8_wgmma_available", lambda: available)
    assert ops.cuda_path("gemm_w8a8", m) == expected
    assert ops.cuda_path("gemm_w4a16", m) != "quant + int8 wgmma"


@pytest.mark.parametrize("value,available,m,expected", [
    ("", True, 17, "wgmma"), ("", True, 512, "wgmma"), ("", True, 513, "dequant + cuBLAS"),
    ("", True, 16, "decode mma"), ("junk", True, 100, "wgmma"),
    ("1", True, 4096, "wgmma"), ("1", True, 16, "decode mma"),
    ("1", False, 4096, "dequant + cuBLAS"), ("1", False, 40, "swapAB mma"),
    ("0", True, 40, "swapAB mma"), ("0", True, 4096, "dequant + cuBLAS"),
    ("all", True, 1, "wgmma"), ("all", True, 16, "wgmma"), ("all", True, 4096, "wgmma"),
    ("all", False, 1, "decode mma"), ("ALL", True, 1, "decode mma"),
])
def test_w4a16_wgmma_setting(monkeypatch, value, available, m, expected):
    """gemm_w4a16's wgmma range where the device runs the sm_90a code: M = 17-512 by default,
    LLMACCEL_W4_WGMMA=1 from 17 up, =all every M, =0 none; the other ops are unaffected."""
    monkeypatch.delenv("LLMACCEL_W4_TILED", raising=False)
    monkeypatch.setenv("LLMACCEL_W4_WGMMA", value)
    monkeypatch.setattr(ops.cuda, "w4a16_wgmma_available", lambda: available)
    monkeypatch.setattr(ops.cuda, "w8a16_wgmma_available", lambda: False)
    assert ops.cuda_path("gemm_w4a16", m) == expected
    assert ops.cuda_path("gemm_w8a16", m) != "wgmma"


@pytest.mark.parametrize("value,available,m,expected", [
    ("", True, 17, "wgmma"), ("", True, 16, "swapAB mma"), ("", True, 513, "dequant + cuBLAS"),
    ("1", True, 4096, "wgmma"), ("1", True, 16, "swapAB mma"), ("all", True, 1, "wgmma"),
    ("all", False, 1, "swapAB mma"), ("1", False, 4096, "dequant + cuBLAS"),
    ("0", True, 64, "swapAB mma"), ("yes", True, 1, "swapAB mma"),
])
def test_w8a16_wgmma_setting(monkeypatch, value, available, m, expected):
    """gemm_w8a16's wgmma range (LLMACCEL_W8_WGMMA, as gemm_w4a16's); gemm_w4a16 unaffected."""
    monkeypatch.setenv("LLMACCEL_W8_WGMMA", value)
    monkeypatch.delenv("LLMACCEL_W4_WGMMA", raising=False)
    monkeypatch.setattr(ops.cuda, "w8a16_wgmma_available", lambda: available)
    monkeypatch.setattr(ops.cuda, "w4a16_wgmma_available", lambda: False)
    assert ops.cuda_path("gemm_w8a16", m) == expected
    assert ops.cuda_path("gemm_w4a16", m) != "wgmma"


def test_w4a16_wgmma_after_tiled(monkeypatch):
    """With both opt-ins, the tiled kernel keeps its range and wgmma takes the rest."""
    monkeypatch.setenv("LLMACCEL_W4_TILED", "512")
    monkeypatch.setenv("LLMACCEL_W4_WGMMA", "1")
    monkeypatch.setattr(ops.cuda, "w4a16_wgmma_available", lambda: True)
    assert ops.cuda_path("gemm_w4a16", 512) == "tiled mma"
    assert ops.cuda_path("gemm_w4a16", 513) == "wgmma"
