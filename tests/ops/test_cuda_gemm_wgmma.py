"""The wgmma kernels (sm_90a; csrc/gemm/gemm_wgmma.cuh) on a compute capability 9.0 GPU, over
every M (LLMACCEL_W4_WGMMA / LLMACCEL_W8_WGMMA=all; by default they take M = 17-512, and
gemm_w8a8's M > 32), also in clusters of 2 (LLMACCEL_WGMMA_CLUSTER=2).

gemm_w8a8: its int32 sums are exact and its epilogue is the tiled kernel's formula (one fma), so
beyond the reference twin (test_cuda_gemm.py's tolerance policy) the two paths must agree bit for
bit. gemm_w4a16: against the reference under the same policy as the swapped kernel (each scaled
weight rounded to x's dtype, fp32 sums); gemm_w8a16 likewise. The x images are checked byte for
byte against their Python twins (test_wgmma_layout.py).
"""

import pytest
import torch

from llmaccel import _C, ops

from ..helpers import make_bias, make_x, poison_cuda_cache
from .test_cuda_gemm import DTYPE_IDS, DTYPES, W4_CASES, W8_CASES, _w4_id
from .test_cuda_gemm import check_against_reference, cuda_weight
from .test_wgmma_layout import x_tile_image, x_tile_image_16

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.cuda.w8a8_wgmma_available()
         and ops.cuda.w4a16_wgmma_available() and ops.cuda.w8a16_wgmma_available()),
    reason="needs a compute capability 9.0 GPU and a build with sm_90a code")

# W8_CASES (those up to M = 64 with LLMACCEL_W8A8_WGMMA=all), plus: one weight block (N = 16)
# and a partial one (N = 200, 520: tiles past n are never copied), K with a partial last
# 128-column tile (96, 160, 1000) or several whole ones, M over one 256-row block, exactly one,
# and several with a partial last.
WGMMA_CASES = list(W8_CASES) + [
    (65, 128, 16, "codes"), (256, 96, 200, "rtn"), (257, 4096, 520, "codes"),
    (600, 160, 1000, "rtn"), (1024, 1000, 136, "codes"), (2053, 512, 4096, "rtn"),
]


def _id(case):
    m, k, n, source = case
    return f"M{m}-K{k}-N{n}-{source}"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", WGMMA_CASES, ids=_id)
def test_cuda_gemm_w8a8_wgmma(case, with_bias, dtype, monkeypatch):
    """Against the reference, on repeat, and above M = 64 bit-identical to the tiled kernel it
    replaces (exact int32 sums, the same one-fma epilogue)."""
    m, k, n, source = case
    p, w = cuda_weight("gemm_w8a8", n, k, source=source, seed=m + k)
    bias = make_bias(n) if with_bias else None
    bias_cuda = None if bias is None else bias.cuda()
    x = make_x((m, k), dtype, seed=n).cuda()
    if m > 64:
        monkeypatch.setenv("LLMACCEL_W8A8_WGMMA", "0")
        assert ops.cuda_path("gemm_w8a8", m) == "quant + int8 tiled mma"
        y_tiled = ops.gemm_w8a8(x, *w, bias_cuda, n)
    # the default above M = 32; below, LLMACCEL_W8A8_WGMMA=all (64-row x blocks up to M = 64)
    monkeypatch.setenv("LLMACCEL_W8A8_WGMMA", "all")
    assert ops.cuda_path("gemm_w8a8", m) == "quant + int8 wgmma"
    poison_cuda_cache()
    y = ops.gemm_w8a8(x, *w, bias_cuda, n)
    check_against_reference("gemm_w8a8", y, x, p, bias, f"wgmma {_id(case)}")
    if m > 64:
        assert torch.equal(y, y_tiled), f"{_id(case)}: differs from the tiled kernel"
    assert torch.equal(y, ops.gemm_w8a8(x, *w, bias_cuda, n))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32],
                         ids=["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("m,k", [(1, 32), (255, 200), (256, 128), (300, 4100)])
def test_cuda_quant_act_int8_tiles(m, k, dtype):
    """The tiled image equals the row-major quantization re-laid out by the Python twin, with
    every padding byte zero, and the same scales."""
    x = make_x((m, k), dtype, seed=m).cuda()
    q, scale, _ = ops.quantize_act_int8(x, k)
    kt = -(-k // 128)
    rows = -(-m // 256) * 256
    poison_cuda_cache()
    image = torch.empty(rows * kt * 128, dtype=torch.int8, device="cuda")
    scale_t = torch.empty(m, dtype=torch.float32, device="cuda")
    dt = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2}[dtype]
    _C.cuda_quant_act_int8_tiles(x.data_ptr(), dt, m, k, x.stride(0), image.data_ptr(), kt,
                                 scale_t.data_ptr(), torch.cuda.current_stream().cuda_stream)
    assert torch.equal(image.cpu(), x_tile_image(q.cpu()[:, :k], kt))
    assert torch.equal(scale_t, scale.reshape(m))


def test_cuda_gemm_w8a8_wgmma_bad_inputs():
    """The native entry point names a wrong k tile count and misaligned x tiles."""
    _, w = cuda_weight("gemm_w8a8", 16, 256)
    xt = torch.zeros(256 * 256, dtype=torch.int8, device="cuda")
    xs = torch.ones(65, device="cuda")
    out = torch.empty(65, 16, dtype=torch.bfloat16, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    nt, nk = w[0].shape[0], w[0].shape[1]
    args = (xs.data_ptr(), w[0].data_ptr(), nt, nk, w[1].data_ptr(), 16, 0, out.data_ptr(), 1,
            16, 0, 0, False, stream)
    with pytest.raises(ValueError, match="kt_count"):
        _C.cuda_gemm_w8a8_wgmma(xt.data_ptr(), 65, 3, *args)
    with pytest.raises(ValueError, match="aligned"):
        _C.cuda_gemm_w8a8_wgmma(xt.data_ptr() + 8, 65, 2, *args)


# Every W4_CASES shape (LLMACCEL_W4_WGMMA=all: the decode range too, in 16- and 32-row x blocks;
# 64-row up to M = 64), plus one weight block (N = 16) and partial ones, K with a partial last
# 64-column stage or group padding (200 with g128: K padded to 256), M over one 256-row block
# and several.
W4_WGMMA_CASES = list(W4_CASES) + [
    (65, 64, 16, 32, "codes"), (256, 200, 520, 128, "rtn"), (300, 4096, 136, 128, "codes"),
    (600, 1000, 1000, 64, "rtn"), (2053, 512, 4096, -1, "codes"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("case", W4_WGMMA_CASES, ids=_w4_id)
def test_cuda_gemm_w4a16_wgmma(case, symmetric, dtype, monkeypatch):
    """Against the reference, with bias, and bit-identical on repeat."""
    monkeypatch.setenv("LLMACCEL_W4_WGMMA", "all")
    monkeypatch.delenv("LLMACCEL_W4_TILED", raising=False)
    m, k, n, group_size, source = case
    assert ops.cuda_path("gemm_w4a16", m) == "wgmma"
    p, w = cuda_weight("gemm_w4a16", n, k, group_size, symmetric, source, seed=m + k)
    bias = make_bias(n)
    x = make_x((m, k), dtype, seed=n).cuda()
    poison_cuda_cache()
    y = ops.gemm_w4a16(x, *w, bias.cuda(), n)
    check_against_reference("gemm_w4a16", y, x, p, bias, f"wgmma {_w4_id(case)}")
    assert torch.equal(y, ops.gemm_w4a16(x, *w, bias.cuda(), n))


# Every W8_CASES shape through gemm_w8a16's wgmma kernel (LLMACCEL_W8_WGMMA=all), plus M over
# several 256-row blocks and N over several weight blocks.
W8A16_WGMMA_CASES = list(W8_CASES) + [(300, 4096, 136, "codes"), (2053, 512, 1000, "rtn")]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", W8A16_WGMMA_CASES, ids=_id)
def test_cuda_gemm_w8a16_wgmma(case, dtype, monkeypatch):
    """Against the reference, with bias, and bit-identical on repeat."""
    monkeypatch.setenv("LLMACCEL_W8_WGMMA", "all")
    m, k, n, source = case
    assert ops.cuda_path("gemm_w8a16", m) == "wgmma"
    p, w = cuda_weight("gemm_w8a16", n, k, source=source, seed=m + k)
    bias = make_bias(n)
    x = make_x((m, k), dtype, seed=n).cuda()
    poison_cuda_cache()
    y = ops.gemm_w8a16(x, *w, bias.cuda(), n)
    check_against_reference("gemm_w8a16", y, x, p, bias, f"wgmma {_id(case)}")
    assert torch.equal(y, ops.gemm_w8a16(x, *w, bias.cuda(), n))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("m,k,kt", [(1, 8, 1), (255, 200, 4), (256, 64, 1), (300, 4096, 64)])
def test_cuda_x_tiles_16bit(m, k, kt, dtype):
    """The image equals its Python twin on x's rows, zero past k (kt may cover more columns
    than k: group padding); the padding rows are not written."""
    x = make_x((m, k), dtype, seed=m).cuda()
    rows = -(-m // 256) * 256
    poison_cuda_cache()
    image = torch.full((rows * kt * 128,), 0x5A, dtype=torch.int8, device="cuda")
    _C.cuda_x_tiles_16bit(x.data_ptr(), m, k, x.stride(0), image.data_ptr(), kt,
                          torch.cuda.current_stream().cuda_stream)
    got = image.cpu().view(torch.int16)
    mine = x_tile_image_16(torch.ones(m, kt * 64, dtype=torch.int16), kt) != 0  # x's rows
    assert torch.equal(got[mine], x_tile_image_16(x.cpu().view(torch.int16), kt)[mine])
    assert (got[~mine] == 0x5A5A).all()


# Shapes with two weight blocks or more (N > 128), so that LLMACCEL_WGMMA_CLUSTER=2 pairs them:
# an odd count (the last pair's second block only passes x on), a K split, 16- to 256-row blocks.
CLUSTER_CASES = [(300, 1000, 264), (5, 4096, 520), (40, 2048, 1000), (2053, 512, 4096)]


# (op, its opt-in variable, shape): gemm_w8a8 runs at M > 64 only (bit-identical to the tiled
# kernel there, where =1 keeps the default range).
CLUSTER_RUNS = [(op, var, *c) for op, var in (("gemm_w8a8", "LLMACCEL_W8A8_WGMMA"),
                                              ("gemm_w4a16", "LLMACCEL_W4_WGMMA"),
                                              ("gemm_w8a16", "LLMACCEL_W8_WGMMA"))
                for c in CLUSTER_CASES if op != "gemm_w8a8" or c[0] > 64]


@pytest.mark.parametrize("op_name,var,m,k,n", CLUSTER_RUNS,
                         ids=[f"{r[0]}-M{r[2]}-K{r[3]}-N{r[4]}" for r in CLUSTER_RUNS])
def test_cuda_gemm_wgmma_clusters(op_name, var, m, k, n, monkeypatch):
    """Clusters of 2 blocks sharing x (multicast): the reference, the same bits on repeat, and
    for int8 (exact int32 sums) the same bits as single blocks (int4's fp32 sums may be split
    differently: the K split counts clusters, not blocks)."""
    monkeypatch.setenv(var, "1" if op_name == "gemm_w8a8" else "all")
    monkeypatch.delenv("LLMACCEL_W4_TILED", raising=False)
    p, w = cuda_weight(op_name, n, k, seed=m + n)
    bias = make_bias(n)
    x = make_x((m, k), torch.bfloat16, seed=k).cuda()
    run = getattr(ops, op_name)
    monkeypatch.delenv("LLMACCEL_WGMMA_CLUSTER", raising=False)
    y_single = run(x, *w, bias.cuda(), n)
    monkeypatch.setenv("LLMACCEL_WGMMA_CLUSTER", "2")
    assert _C.cuda_wgmma_plan(op_name != "gemm_w8a8", m, w[0].shape[0], w[0].shape[1])[
        "cluster"] == 2, "the cluster path would not run"
    poison_cuda_cache()
    y = run(x, *w, bias.cuda(), n)
    check_against_reference(op_name, y, x, p, bias, f"clusters M{m}-K{k}-N{n}")
    assert torch.equal(y, run(x, *w, bias.cuda(), n))
    if op_name == "gemm_w8a8":
        assert torch.equal(y, y_single), "clusters differ from single blocks"


@pytest.mark.parametrize("op_name,var,value,m", [
    ("gemm_w8a8", "LLMACCEL_W8A8_WGMMA", "1", 300), ("gemm_w4a16", "LLMACCEL_W4_WGMMA", "1", 300),
    ("gemm_w4a16", "LLMACCEL_W4_WGMMA", "all", 5),  # a 16-row x block
    ("gemm_w8a16", "LLMACCEL_W8_WGMMA", "all", 1), ("gemm_w8a16", "LLMACCEL_W8_WGMMA", "1", 300),
])
def test_cuda_gemm_wgmma_graph_capture(op_name, var, value, m, monkeypatch):
    """Captured and replayed on new x: the same bits as an eager call."""
    monkeypatch.setenv(var, value)
    k, n = 264, 100
    _, w = cuda_weight(op_name, n, k, seed=7)
    bias = make_bias(n).cuda()
    run = getattr(ops, op_name)
    x_static = make_x((m, k), torch.bfloat16, seed=1).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            run(x_static, *w, bias, n)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y_static = run(x_static, *w, bias, n)
    x_new = make_x((m, k), torch.bfloat16, seed=2).cuda()
    x_static.copy_(x_new)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(y_static, run(x_new, *w, bias, n))
