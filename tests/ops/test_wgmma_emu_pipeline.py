"""The wgmma main loop's pipeline experiments (gemm_wgmma.cuh: LLMACCEL_WGMMA_DEPTH, wgmma groups
in flight, LLMACCEL_WGMMA_CHAINS, accumulator sets, and LLMACCEL_WGMMA_SMALL_BPS, two blocks per
SM with half the ring), which only bench/gpu/trace_probe.cu's variants compile in, on the SIMT
emulator: each variant must compute the same products as the library's loop (depth 2, one
chain) on the streaming configurations they change (blocks of <= 64 x rows): rings that wrap,
items shorter than the depth, padding slots, a K split, several items per block. The emulator
runs wgmma asynchronously, so an A register set reused or a slot released before its group's
wait computes with the wrong data here.
"""

import pytest
import torch

from .conftest import _build_emu
from .test_wgmma_emu import ONE_X_COPY, _plan, _w4a16_case, _w8a16_case, _w8a8_case

VARIANTS = {"depth3": ("LLMACCEL_WGMMA_DEPTH=3",), "chains2": ("LLMACCEL_WGMMA_CHAINS=2",),
            "depth3-chains2": ("LLMACCEL_WGMMA_DEPTH=3", "LLMACCEL_WGMMA_CHAINS=2"),
            "depth4": ("LLMACCEL_WGMMA_DEPTH=4",), "bps2": ("LLMACCEL_WGMMA_SMALL_BPS=2",)}


@pytest.fixture(scope="module", params=list(VARIANTS))
def emu_pipeline(request, tmp_path_factory):
    return _build_emu(tmp_path_factory, f"emu_{request.param}", *VARIANTS[request.param])


# (m, k, n, group, symmetric, x rows, SMs)
W4_CASES = [
    (20, 1950, 264, 64, False, "32", 2),   # 31 stages a tile, 3 tiles on 2 blocks, padding slots
    (16, 600, 520, 32, True, "16", 3),     # 10 stages a tile, 5 tiles on 3 blocks
    (1, 4096, 136, 128, True, "", 132),    # M = 1: K split 8 ways (8 stages a split)
    (40, 70, 264, -1, True, "64", 2),      # 2 stages a tile (per channel): shorter than depth 3
    (50, 1100, 264, 64, False, "64", 2),   # 18 stages a tile, 3 tiles on 2 blocks; under bps2
                                           # an 8-slot ring and the epilogue in 2 passes of 32
]


@pytest.mark.parametrize("m,k,n,group,symmetric,x_rows,sms", W4_CASES,
                         ids=[f"M{c[0]}-K{c[1]}-N{c[2]}-g{c[3]}" for c in W4_CASES])
def test_pipeline_w4a16(emu_pipeline, tmp_path, m, k, n, group, symmetric, x_rows, sms):
    _w4a16_case(emu_pipeline, tmp_path, m, k, n, group, symmetric, sms, torch.bfloat16,
                x_rows=x_rows)


@pytest.mark.parametrize("m,k,n,x_rows,sms", [(1, 4096, 136, "", 132), (64, 1000, 520, "", 2),
                                              (30, 40, 264, "", 132)])
def test_pipeline_w8a16(emu_pipeline, tmp_path, m, k, n, x_rows, sms):
    _w8a16_case(emu_pipeline, tmp_path, m, k, n, x_rows, sms, "", torch.float16)


def test_pipeline_w8a8(emu_pipeline, tmp_path):
    """64-row blocks of int8: exact int32 sums, so two chains change nothing."""
    _w8a8_case(emu_pipeline, tmp_path, 300, 1000, 200, True, 3, torch.bfloat16, x_rows="64")


def test_pipeline_plan(emu_pipeline, tmp_path, request):
    """Two blocks per SM under bps2 for int4 blocks of <= 64 x rows, so the K split fills 264
    slots (4096→14336 at M = 1-64: 2 splits of 32 k blocks on 224 blocks); 128-row blocks and
    gemm_w8a8's stay one per SM (two do not fit their shared memory), as every block does in the
    other variants."""
    bps2 = request.node.callspec.params["emu_pipeline"] == "bps2"
    one = dict(x_rows=16, splits=1, kts=64, blocks=112, cluster=1, **ONE_X_COPY)
    two = dict(one, splits=2, kts=32, blocks=224)
    for m, rows in ((1, 16), (32, 32), (64, 64)):
        assert _plan(emu_pipeline, tmp_path, m, 896, 128, True) == dict(two if bps2 else one,
                                                                        x_rows=rows)
    assert _plan(emu_pipeline, tmp_path, 128, 896, 128, True) == dict(one, x_rows=128)
    assert _plan(emu_pipeline, tmp_path, 64, 896, 128, False) == dict(one, x_rows=64, kts=32)
