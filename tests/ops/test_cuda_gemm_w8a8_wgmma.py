"""The opt-in wgmma kernel of gemm_w8a8 (LLMACCEL_W8A8_WGMMA=1, sm_90a, off by default;
csrc/gemm/gemm_w8a8_wgmma.cuh) on a compute capability 9.0 GPU.

Its int32 sums are exact and its epilogue is the default tiled kernel's formula, so beyond the
reference twin (test_cuda_gemm.py's tolerance policy) the two paths must agree bit for bit. The
quantization kernel's tiled image is checked byte for byte against its Python twin
(test_w8a8_wgmma_layout.x_tile_image), zero padding included.
"""

import pytest
import torch

from llmaccel import _C, ops

from ..helpers import make_bias, make_x, poison_cuda_cache
from .test_cuda_gemm import DTYPE_IDS, DTYPES, W8_CASES, check_against_reference, cuda_weight
from .test_w8a8_wgmma_layout import x_tile_image

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.cuda.w8a8_wgmma_available()),
    reason="needs a compute capability 9.0 GPU and a build with sm_90a code")

# W8_CASES above the swapped range, plus: one weight block (N = 16) and a partial one (N = 200,
# 520: tiles past n are never copied), K with a partial last 128-column tile (96, 160, 1000) or
# several whole ones, M over one 256-row block, exactly one, and several with a partial last.
WGMMA_CASES = [c for c in W8_CASES if c[0] > 64] + [
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
    """Against the reference, bit-identical to the default tiled kernel, and on repeat."""
    m, k, n, source = case
    p, w = cuda_weight("gemm_w8a8", n, k, source=source, seed=m + k)
    bias = make_bias(n) if with_bias else None
    bias_cuda = None if bias is None else bias.cuda()
    x = make_x((m, k), dtype, seed=n).cuda()
    monkeypatch.delenv("LLMACCEL_W8A8_WGMMA", raising=False)
    assert ops.cuda_path("gemm_w8a8", m) == "quant + int8 tiled mma"
    y_tiled = ops.gemm_w8a8(x, *w, bias_cuda, n)
    monkeypatch.setenv("LLMACCEL_W8A8_WGMMA", "1")
    assert ops.cuda_path("gemm_w8a8", m) == "quant + int8 wgmma"
    poison_cuda_cache()
    y = ops.gemm_w8a8(x, *w, bias_cuda, n)
    check_against_reference("gemm_w8a8", y, x, p, bias, f"wgmma {_id(case)}")
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


def test_cuda_gemm_w8a8_wgmma_graph_capture(monkeypatch):
    """Captured and replayed on new x: the same bits as an eager call."""
    monkeypatch.setenv("LLMACCEL_W8A8_WGMMA", "1")
    m, k, n = 300, 264, 100
    _, w = cuda_weight("gemm_w8a8", n, k, seed=7)
    bias = make_bias(n).cuda()
    x_static = make_x((m, k), torch.bfloat16, seed=1).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            ops.gemm_w8a8(x_static, *w, bias, n)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y_static = ops.gemm_w8a8(x_static, *w, bias, n)
    x_new = make_x((m, k), torch.bfloat16, seed=2).cuda()
    x_static.copy_(x_new)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(y_static, ops.gemm_w8a8(x_new, *w, bias, n))


def test_cuda_gemm_w8a8_wgmma_bad_inputs():
    """The native entry point names a wrong k tile count and misaligned x tiles."""
    _, w = cuda_weight("gemm_w8a8", 16, 256)
    xt = torch.zeros(256 * 256, dtype=torch.int8, device="cuda")
    xs = torch.ones(65, device="cuda")
    out = torch.empty(65, 16, dtype=torch.bfloat16, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    nt, nk = w[0].shape[0], w[0].shape[1]
    args = (xs.data_ptr(), w[0].data_ptr(), nt, nk, w[1].data_ptr(), 16, 0, out.data_ptr(), 1,
            16, stream)
    with pytest.raises(ValueError, match="kt_count"):
        _C.cuda_gemm_w8a8_wgmma(xt.data_ptr(), 65, 3, *args)
    with pytest.raises(ValueError, match="aligned"):
        _C.cuda_gemm_w8a8_wgmma(xt.data_ptr() + 8, 65, 2, *args)
