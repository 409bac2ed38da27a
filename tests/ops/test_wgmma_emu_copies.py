"""The wgmma kernels' opt-in copy switches on the SIMT emulator (test_wgmma_emu.py's driver and
helpers): who issues the copies (LLMACCEL_WGMMA_WWARPS, _XCOPY, _XPIECES), x through a tensor
map (_XTMA), gemm_w8a8's 4-stage ring (LLMACCEL_W8A8_DEEP). Written 2026-11-23 without a GPU;
each must give the same products as the default copies.
"""

import pytest
import torch

from .test_wgmma_emu import _plan, _w4a16_case, _w8a16_case, _w8a8_case


def test_wgmma_plan_x_copies(emu, tmp_path):
    """LLMACCEL_WGMMA_XCOPY / _XPIECES: as many pieces as asked (rounded down to a power of two)
    while the issuing lanes and 16-byte pieces allow it."""
    def copies(m, **env):
        plan = _plan(emu, tmp_path, m, 896, 128, True, **env)
        return plan["x_warp"], plan["x_pieces"]

    assert copies(4096, LLMACCEL_WGMMA_XPIECES="4") == (0, 4)     # 256-row blocks, 1 stage
    assert copies(4096, LLMACCEL_WGMMA_XPIECES="3") == (0, 2)
    assert copies(4096, LLMACCEL_WGMMA_XPIECES="32") == (0, 16)   # lanes 8-31 of one warp
    assert copies(4096, LLMACCEL_WGMMA_XPIECES="32", LLMACCEL_WGMMA_XCOPY="warp") == (1, 32)
    assert copies(1, LLMACCEL_WGMMA_XPIECES="8") == (0, 4)        # 4-stage groups: 16 lanes
    assert copies(1, LLMACCEL_WGMMA_XPIECES="8", LLMACCEL_WGMMA_XCOPY="warp") == (1, 8)
    assert copies(1, LLMACCEL_WGMMA_XCOPY="bogus", LLMACCEL_WGMMA_XPIECES="x") == (0, 1)
    assert _plan(emu, tmp_path, 4096, 896, 128, True, LLMACCEL_WGMMA_WWARPS="2")["w_warps"] == 2
    assert _plan(emu, tmp_path, 4096, 896, 128, True, LLMACCEL_WGMMA_WWARPS="3")["w_warps"] == 1


# Copies from more producer warps and x in pieces (LLMACCEL_WGMMA_WWARPS=2,
# LLMACCEL_WGMMA_XCOPY=warp, LLMACCEL_WGMMA_XPIECES): (kind, m, k, n, x rows, SMs, cluster,
# weights warps, x copy, pieces). Rings that wrap with 1- and 4-stage copy groups, padding slots,
# work items that start on either weights warp's group, a K split, clusters (pieces of a share).
X_COPY_CASES = [
    ("w4a16", 300, 1000, 264, "256", 132, "", "1", "warp", "4"),
    ("w4a16", 300, 1000, 264, "256", 132, "", "2", "warp", "2"),
    ("w4a16", 20, 1950, 264, "32", 2, "", "2", "", "4"),
    ("w4a16", 5, 4096, 256, "", 132, "2", "1", "warp", "8"),
    ("w8a8", 600, 512, 264, "256", 132, "2", "2", "", "8"),
    ("w8a8", 300, 1000, 200, "128", 5, "", "2", "warp", "1"),
    ("w8a16", 300, 520, 200, "256", 132, "", "1", "warp", "2"),
    ("w8a16", 64, 1000, 520, "", 2, "", "2", "warp", "4"),
]


@pytest.mark.parametrize("kind,m,k,n,x_rows,sms,cluster,w_warps,xcopy,pieces", X_COPY_CASES)
def test_emulated_wgmma_x_copies(emu, tmp_path, monkeypatch, kind, m, k, n, x_rows, sms, cluster,
                                 w_warps, xcopy, pieces):
    """The same products whichever warps and lanes issue the copies."""
    monkeypatch.setenv("LLMACCEL_WGMMA_WWARPS", w_warps)
    monkeypatch.setenv("LLMACCEL_WGMMA_XCOPY", xcopy)
    monkeypatch.setenv("LLMACCEL_WGMMA_XPIECES", pieces)
    dtype = torch.bfloat16
    if kind == "w4a16":
        _w4a16_case(emu, tmp_path, m, k, n, 64, False, sms, dtype, x_rows=x_rows,
                    cluster=cluster)
    elif kind == "w8a8":
        _w8a8_case(emu, tmp_path, m, k, n, False, sms, dtype, x_rows=x_rows, cluster=cluster)
    else:
        _w8a16_case(emu, tmp_path, m, k, n, x_rows, sms, cluster, dtype)
    out = (tmp_path / "stdout.txt").read_text()
    assert f"w_warps {w_warps} x_warp {int(xcopy == 'warp')} x_pieces {pieces}" in out, out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("m,k,n,with_bias,sms,cluster,splits", [
    (600, 1000, 264, True, 4, "", ""),     # 9 tiles on 4 blocks, the 4-slot ring wraps
    (300, 512, 520, False, 4, "2", ""),    # 10 tiles of clusters on 2 clusters, passes of 64
    (257, 1024, 136, True, 132, "", "3"),  # a K split: the raw sums, then the reduction
])
def test_emulated_w8a8_deep_ring(emu, tmp_path, monkeypatch, m, k, n, with_bias, sms, cluster,
                                 splits, dtype):
    """LLMACCEL_W8A8_DEEP=1: 256-row blocks with 4 ring stages and the epilogue in passes of 64
    x rows, the same bound as the 3-stage kernel."""
    monkeypatch.setenv("LLMACCEL_W8A8_DEEP", "1")
    _w8a8_case(emu, tmp_path, m, k, n, with_bias, sms, dtype, x_rows="256", splits=splits,
               cluster=cluster)


# x through a tensor map (LLMACCEL_WGMMA_XTMA=1; the emulator copies the box's bytes after the
# map's bounds check): (kind, m, k, n, x rows, SMs, x copy, pieces). Every block size, a second
# 256-row image block, partial last stages, a K split, pieces of a box.
X_TMA_CASES = [
    ("w4a16", 300, 1000, 264, "256", 4, "warp", "4"),
    ("w4a16", 20, 1950, 264, "32", 2, "", "1"),
    ("w4a16", 5, 4096, 256, "", 132, "warp", "8"),
    ("w8a8", 600, 512, 264, "256", 4, "", "2"),
    ("w8a8", 300, 1000, 200, "128", 5, "warp", "1"),
    ("w8a16", 64, 1000, 520, "", 2, "warp", "4"),
]


@pytest.mark.parametrize("kind,m,k,n,x_rows,sms,xcopy,pieces", X_TMA_CASES)
def test_emulated_wgmma_x_tensor_map(emu, tmp_path, monkeypatch, kind, m, k, n, x_rows, sms,
                                     xcopy, pieces):
    """The x copies' tensor-map coordinates land the same bytes as the 1D copies."""
    monkeypatch.setenv("LLMACCEL_WGMMA_XTMA", "1")
    monkeypatch.setenv("LLMACCEL_WGMMA_XCOPY", xcopy)
    monkeypatch.setenv("LLMACCEL_WGMMA_XPIECES", pieces)
    dtype = torch.bfloat16
    if kind == "w4a16":
        _w4a16_case(emu, tmp_path, m, k, n, 64, False, sms, dtype, x_rows=x_rows)
    elif kind == "w8a8":
        _w8a8_case(emu, tmp_path, m, k, n, False, sms, dtype, x_rows=x_rows)
    else:
        _w8a16_case(emu, tmp_path, m, k, n, x_rows, sms, "", dtype)
    assert "x_tma 1" in (tmp_path / "stdout.txt").read_text()
