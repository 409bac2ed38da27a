"""Which CUDA kernel path an op takes by M (ops.cuda_path): pure routing, runs without a GPU."""

import pytest

from llmaccel import ops


def test_default_paths(monkeypatch):
    monkeypatch.delenv("LLMACCEL_W8_WGMMA", raising=False)
    monkeypatch.delenv("LLMACCEL_W4_TILED", raising=False)
    monkeypatch.delenv("LLMACCEL_W8A8_WGMMA", raising=False)
    monkeypatch.delenv("LLMACCEL_W4_WGMMA", raising=False)
    assert ops.cuda_path("gemm_w4a16", 1) == "decode mma"
    assert ops.cuda_path("gemm_w4a16", ops.DECODE_MAX_M) == "decode mma"
    assert ops.cuda_path("gemm_w4a16", ops.DECODE_MAX_M + 1) == "swapAB mma"
    assert ops.cuda_path("gemm_w4a16", ops.SWAPAB_MAX_M["gemm_w4a16"] + 1) == "dequant + cuBLAS"
    assert ops.cuda_path("gemm_w8a16", 1) == "swapAB mma"
    assert ops.cuda_path("gemm_w8a8", 65) == "quant + int8 tiled mma"


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
    assert ops.cuda_path("gemm_w4a16", m) == expected
    assert ops.cuda_path("gemm_w8a16", m) == ("swapAB mma" if m <= 64 else "dequant + cuBLAS")


def test_unknown_op():
    with pytest.raises(ValueError, match="no CUDA kernel"):
        ops.cuda_path("gemm_f32", 1)


@pytest.mark.parametrize("value,available,m,expected", [
    ("1", True, 65, "quant + int8 wgmma"), ("1", True, 4096, "quant + int8 wgmma"),
    ("1", True, 64, "quant + int8 swapAB mma"), ("1", False, 4096, "quant + int8 tiled mma"),
    ("", True, 4096, "quant + int8 tiled mma"), ("0", True, 4096, "quant + int8 tiled mma"),
    ("yes", True, 4096, "quant + int8 tiled mma"),
])
def test_w8a8_wgmma_opt_in(monkeypatch, value, available, m, expected):
    """LLMACCEL_W8A8_WGMMA=1 routes gemm_w8a8 above the swapped range to the wgmma kernel where
    the device runs its sm_90a code; anything else, or another GPU, keeps the tiled kernel."""
    monkeypatch.setenv("LLMACCEL_W8A8_WGMMA", value)
    monkeypatch.setattr(ops.cuda, "w8a8_wgmma_available", lambda: available)
    assert ops.cuda_path("gemm_w8a8", m) == expected
    assert ops.cuda_path("gemm_w4a16", m) != "quant + int8 wgmma"


@pytest.mark.parametrize("value,available,m,expected", [
    ("1", True, 65, "wgmma"), ("1", True, 4096, "wgmma"), ("1", True, 64, "wgmma"),
    ("1", True, 17, "wgmma"), ("1", True, 16, "decode mma"), ("1", False, 4096, "dequant + cuBLAS"),
    ("1", False, 40, "swapAB mma"),
    ("", True, 4096, "dequant + cuBLAS"), ("2", True, 4096, "dequant + cuBLAS"),
    ("all", True, 1, "wgmma"), ("all", True, 16, "wgmma"), ("all", True, 4096, "wgmma"),
    ("all", False, 1, "decode mma"), ("ALL", True, 1, "decode mma"),
])
def test_w4a16_wgmma_opt_in(monkeypatch, value, available, m, expected):
    """LLMACCEL_W4_WGMMA=1 sends gemm_w4a16 above the decode range to the wgmma kernel where the
    device runs the sm_90a code, =all every M; the other ops are unaffected."""
    monkeypatch.delenv("LLMACCEL_W4_TILED", raising=False)
    monkeypatch.setenv("LLMACCEL_W4_WGMMA", value)
    monkeypatch.setattr(ops.cuda, "w4a16_wgmma_available", lambda: available)
    assert ops.cuda_path("gemm_w4a16", m) == expected
    assert ops.cuda_path("gemm_w8a16", m) != "wgmma"


@pytest.mark.parametrize("value,available,m,expected", [
    ("1", True, 65, "wgmma"), ("1", True, 64, "swapAB mma"), ("all", True, 1, "wgmma"),
    ("all", False, 1, "swapAB mma"), ("1", False, 4096, "dequant + cuBLAS"),
    ("", True, 4096, "dequant + cuBLAS"), ("yes", True, 1, "swapAB mma"),
])
def test_w8a16_wgmma_opt_in(monkeypatch, value, available, m, expected):
    """LLMACCEL_W8_WGMMA=1 sends gemm_w8a16 above the swapped range to its wgmma kernel, =all every
    M, where the device runs the sm_90a code; gemm_w4a16 is unaffected."""
    monkeypatch.setenv("LLMACCEL_W8_WGMMA", value)
    monkeypatch.delenv("LLMACCEL_W4_WGMMA", raising=False)
    monkeypatch.setattr(ops.cuda, "w8a16_wgmma_available", lambda: available)
    assert ops.cuda_path("gemm_w8a16", m) == expected
    assert ops.cuda_path("gemm_w4a16", m) != "wgmma"


def test_w4a16_wgmma_after_tiled(monkeypatch):
    """With both opt-ins, the tiled kernel keeps its range and wgmma takes the rest."""
    monkeypatch.setenv("LLMACCEL_W4_TILED", "512")
    monkeypatch.setenv("LLMACCEL_W4_WGMMA", "1")
    monkeypatch.setattr(ops.cuda, "w4a16_wgmma_available", lambda: True)
    assert ops.cuda_path("gemm_w4a16", 512) == "tiled mma"
    assert ops.cuda_path("gemm_w4a16", 513) == "wgmma"
