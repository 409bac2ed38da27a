"""The wgmma paths' native entry points reject bad arguments with a ValueError that names the
problem, before anything is launched: these run without a GPU (the checks come first; the
addresses below are never dereferenced), wherever _C was built with its CUDA kernels."""

import pytest

from llmaccel import _C
from llmaccel.ops.cuda import HAVE_CUDA_KERNELS

pytestmark = pytest.mark.skipif(not HAVE_CUDA_KERNELS, reason="_C built without CUDA kernels")

X, W, S, OUT, Q = 0x100000, 0x200000, 0x300000, 0x400000, 0x500000  # 16-byte aligned, never read
BF16 = 1


def _w4a16(**change):
    """cuda_gemm_w4a16_wgmma with a valid K = 128, N = 16, M = 4 call, `change` applied."""
    args = dict(xt=X, dt=BF16, m=4, kt=2, w=W, n_tiles=1, nk=4, scales=S, zeros=0, n_groups=1,
                group=128, n=16, bias=0, out=OUT, ldo=16, partial=0, partial_bytes=0,
                after_image=False, stream=0)
    args.update(change)
    _C.cuda_gemm_w4a16_wgmma(*args.values())


@pytest.mark.parametrize("change,message", [
    (dict(kt=3), "kt_count"),
    (dict(xt=X + 8), "aligned"),
    (dict(w=0), "null"),
    (dict(n=40), "tiles"),
    (dict(group=48), "group"),
    (dict(n_groups=2), "group"),
    (dict(nk=70000, kt=35000, group=70000 * 32), "2\\^21"),
    (dict(dt=2), "float16 or bfloat16"),
])
def test_gemm_w4a16_wgmma_rejects(change, message):
    with pytest.raises(ValueError, match=message):
        _w4a16(**change)


def test_gemm_w4a16_wgmma_needs_sm90a():
    """Valid arguments without an H100/H200 (or with a build lacking sm_90a code) name the
    device instead of launching."""
    if _C.cuda_w4a16_wgmma_available():
        pytest.skip("this device runs the kernel: valid arguments would launch it")
    with pytest.raises(ValueError, match="compute capability 9.0"):
        _w4a16()


def test_gemm_w8a16_wgmma_rejects():
    args = [X, BF16, 4, 2, W, 1, 4, S, 16, 0, OUT, 16, 0, 0, False, 0]
    with pytest.raises(ValueError, match="kt_count"):
        _C.cuda_gemm_w8a16_wgmma(*args[:3], 3, *args[4:])
    with pytest.raises(ValueError, match="null scales"):
        _C.cuda_gemm_w8a16_wgmma(*args[:7], 0, *args[8:])
    if not _C.cuda_w8a16_wgmma_available():
        with pytest.raises(ValueError, match="compute capability 9.0"):
            _C.cuda_gemm_w8a16_wgmma(*args)


def test_gemm_w8a8_wgmma_rejects_kt_count():
    with pytest.raises(ValueError, match="kt_count"):
        _C.cuda_gemm_w8a8_wgmma(X, 65, 3, S, W, 1, 8, S, 16, 0, OUT, BF16, 16, 0, 0, False, 0)


@pytest.mark.parametrize("k,ldx,xt,kt,message", [
    (12, 16, Q, 1, "multiples of 8"),
    (64, 64, Q + 8, 1, "aligned"),
    (200, 200, Q, 3, "cover"),
])
def test_x_tiles_16bit_rejects(k, ldx, xt, kt, message):
    with pytest.raises(ValueError, match=message):
        _C.cuda_x_tiles_16bit(X, 4, k, ldx, xt, kt, 0)


@pytest.mark.parametrize("x16,n_tiles,cluster", [(True, 33, 2), (False, 17, 2), (True, 8, 1)])
def test_wgmma_plan_clusters(monkeypatch, x16, n_tiles, cluster):
    """LLMACCEL_WGMMA_CLUSTER=2 pairs weight blocks where there are two or more (8 tiles of 16
    outputs each), for every kernel's plan; the plan itself needs no GPU."""
    monkeypatch.setenv("LLMACCEL_WGMMA_CLUSTER", "2")
    plan = _C.cuda_wgmma_plan(x16, 300, n_tiles, 32)
    assert plan["cluster"] == cluster
    assert plan["x_rows"] in (16, 32, 64, 128, 256) and plan["splits"] >= 1
    monkeypatch.delenv("LLMACCEL_WGMMA_CLUSTER")
    assert _C.cuda_wgmma_plan(x16, 300, n_tiles, 32)["cluster"] == 1


def test_quant_act_int8_tiles_rejects_misaligned_image():
    with pytest.raises(ValueError, match="aligned"):
        _C.cuda_quant_act_int8_tiles(X, BF16, 4, 256, 256, Q + 4, 2, S, 0)
