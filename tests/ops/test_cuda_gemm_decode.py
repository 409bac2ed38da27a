"""gemm_w4a16's decode kernels on CUDA (M <= DECODE_MAX_M: the K-slice kernel on sm_90, the
stream-K kernel elsewhere): how they split the work over warps, blocks and K chunks, their
workspace, the K-slice kernel's cluster reduction and its blocks' passes, against the reference
twin under test_cuda_gemm.py's tolerance policy.
"""

import pytest
import torch

from llmaccel import ops

from ..helpers import make_bias, make_x, poison_cuda_cache
from .test_cuda_gemm import check_against_reference, cuda_weight, run_op

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


# The decode kernel's split: on 132 SMs × 16 warps, 2048 × 4096 g128 is 4096 stages of 4 chunks,
# ~2 per warp, so tiles are shared by many warps; g64 and g32 put 2 and 4 groups in a stage;
# 48 × 64 (2 chunks: stages of 1) gives each warp one stage; 4000 × 96 g32 (3 chunks) lets warps
# own whole tiles. Odd N: a partial last tile. 30000 × 128 (1875 tiles, one K chunk) gives the
# K-slice kernel as many tiles per block as its shared memory allows.
DECODE_CASES = [(2048, 4096, 128), (2000, 4096, 64), (1000, 1024, 32), (48, 64, -1),
                (4000, 96, 32), (300, 2048, -1), (30000, 128, 128)]


@pytest.mark.parametrize("kernel", ["kslice", "kslice-cluster", "stream"])
@pytest.mark.parametrize("m", [1, 7, 16])
@pytest.mark.parametrize("n,k,group_size", DECODE_CASES,
                         ids=[f"N{n}-K{k}-g{g}" for n, k, g in DECODE_CASES])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_cuda_gemm_w4a16_decode_split(symmetric, n, k, group_size, m, kernel, monkeypatch):
    """Both decode kernels (M <= DECODE_MAX_M; LLMACCEL_DECODE_KERNEL picks one per call) on shapes
    where tiles are shared by several warps or K chunks and warps finish several tiles: right
    against the reference, bit-identical on repeat (partial sums meet in slot order, not arrival
    order), and the counters left at zero for the next call. The K-slice kernel takes every
    grouping here (g32, g64, g128 and per-channel over 2 to 128 chunks)."""
    monkeypatch.setenv("LLMACCEL_DECODE_KERNEL", kernel.split("-")[0])
    if kernel == "kslice-cluster":  # K chunks meet in a thread-block cluster (2 to 8 of them)
        monkeypatch.setenv("LLMACCEL_KS_REDUCE", "cluster")
    op_name = "gemm_w4a16"
    assert m <= ops.DECODE_MAX_M and ops.cuda_path(op_name, m) == "decode mma"
    p, w = cuda_weight(op_name, n, k, group_size, symmetric, source="rtn", seed=k)
    bias = make_bias(n)
    x = make_x((m, k), torch.bfloat16, seed=m).cuda()
    poison_cuda_cache()
    y = run_op(op_name, x, w, bias.cuda(), n)
    check_against_reference(op_name, y, x, p, bias, f"{op_name} decode N={n} K={k} M={m}")
    for _ in range(3):
        assert torch.equal(run_op(op_name, x, w, bias.cuda(), n), y), "not deterministic"
    torch.cuda.synchronize()
    from llmaccel.ops import cuda as cuda_ops
    key = (x.device.index, torch.cuda.current_stream().cuda_stream)
    counters, _ = cuda_ops._DECODE_WORKSPACES[key]
    assert int(counters.abs().sum()) == 0, "tile counters not reset"


@pytest.mark.parametrize("group_size,expected_sm90",
                         [(128, "kslice"), (64, "kslice"), (32, "kslice"), (96, "stream")])
def test_cuda_gemm_w4a16_decode_kernel_choice(group_size, expected_sm90, monkeypatch):
    """sm_90 devices run the K-slice decode kernel for every grouping whose groups tile its 4-chunk
    slices (g96, 3 chunks, does not), older ones the stream-K kernel; LLMACCEL_DECODE_KERNEL=stream
    forces the latter. A build without sm_90 code must not pick the K-slice kernel (its body is
    compiled out there)."""
    from llmaccel import _C
    sm90 = torch.cuda.get_device_capability() >= (9, 0)
    assert _C.cuda_decode_kernel(group_size // 32) == (expected_sm90 if sm90 else "stream")
    monkeypatch.setenv("LLMACCEL_DECODE_KERNEL", "stream")
    assert _C.cuda_decode_kernel(group_size // 32) == "stream"


@pytest.mark.parametrize("m", [1, 7, 16])
@pytest.mark.parametrize("k", [2048, 4096, 8192])
def test_cuda_gemm_w4a16_kslice_cluster_same_bits(k, m, monkeypatch):
    """The K-slice kernel's two ways of adding K chunks (2, 4, 8 of them here), through the
    workspace or through a cluster's shared memory, add in the same order: the same bits."""
    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("thread-block clusters: sm_90")
    n = 1000
    p, w = cuda_weight("gemm_w4a16", n, k, 128, True, source="rtn", seed=k)
    x = make_x((m, k), torch.bfloat16, seed=m).cuda()
    monkeypatch.setenv("LLMACCEL_DECODE_KERNEL", "kslice")
    y_ws = run_op("gemm_w4a16", x, w, None, n)
    monkeypatch.setenv("LLMACCEL_KS_REDUCE", "cluster")
    y_cl = run_op("gemm_w4a16", x, w, None, n)
    assert torch.equal(y_ws, y_cl)
    check_against_reference("gemm_w4a16", y_cl, x, p, None, f"cluster K={k} M={m}")


@pytest.mark.parametrize("m", [1, 7, 16])
@pytest.mark.parametrize("n,k", [(30000, 128), (9216, 2080)], ids=["N30000-K128", "N9216-K2080"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_cuda_gemm_w4a16_kslice_passes_same_bits(symmetric, n, k, m, monkeypatch):
    """The K-slice kernel's blocks add their tiles up in passes when their warps' sums do not fit
    at once (M = 9-16 on the issue's shapes). Shapes this small fit in one pass on an H100, so
    LLMACCEL_KS_PASS_TRIPS=1 forces a pass per trip of the ring (4-8 tiles per block here, over 1
    and 3 K chunks): right against the reference, the same bits as the plan's own passes (warps
    added in the same order), and the counters left at zero."""
    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("the K-slice kernel: sm_90")
    p, w = cuda_weight("gemm_w4a16", n, k, 128, symmetric, source="rtn", seed=k + m)
    x = make_x((m, k), torch.bfloat16, seed=m).cuda()
    monkeypatch.setenv("LLMACCEL_DECODE_KERNEL", "kslice")
    y_own = run_op("gemm_w4a16", x, w, None, n)
    monkeypatch.setenv("LLMACCEL_KS_PASS_TRIPS", "1")
    poison_cuda_cache()
    y_trips = run_op("gemm_w4a16", x, w, None, n)
    assert torch.equal(y_own, y_trips)
    check_against_reference("gemm_w4a16", y_trips, x, p, None, f"passes N={n} K={k} M={m}")
    torch.cuda.synchronize()
    from llmaccel.ops import cuda as cuda_ops
    counters, _ = cuda_ops._DECODE_WORKSPACES[(x.device.index,
                                               torch.cuda.current_stream().cuda_stream)]
    assert int(counters.abs().sum()) == 0, "tile counters not reset"
