"""GPU tests of the opt-in switches written without a GPU (bench/gpu/NOTES.md, 2026-11-23), until
a GPU session measures them: who issues the wgmma kernels' copies (LLMACCEL_WGMMA_WWARPS,
_XCOPY, _XPIECES) and x through a tensor map (_XTMA), gemm_w8a8's 4-stage ring
(LLMACCEL_W8A8_DEEP), the weights' evict-first L2 hint (LLMACCEL_EVICT_FIRST) and the K-slice
decode kernel on 3 blocks per SM at M = 9-16 (LLMACCEL_KS_VARIANT=4). Each must leave the
product as the default path computes it: the same bits where the sums are the same, else the
reference twin under test_cuda_gemm.py's policy.
"""

import pytest
import torch

from llmaccel import _C, ops

from ..helpers import make_bias, make_x, poison_cuda_cache
from .test_cuda_gemm import check_against_reference, cuda_weight, run_op
from .test_cuda_gemm_wgmma import CLUSTER_CASES

# every switch here drives sm_90 code (bulk copies, the sm_90a wgmma kernels)
pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.cuda.w8a8_wgmma_available()
         and ops.cuda.w4a16_wgmma_available() and ops.cuda.w8a16_wgmma_available()),
    reason="needs a compute capability 9.0 GPU and a build with sm_90a code")


# Copies from more producer warps and x in pieces (LLMACCEL_WGMMA_WWARPS=2,
# LLMACCEL_WGMMA_XCOPY=warp, LLMACCEL_WGMMA_XPIECES): 1- and 4-stage copy groups, a K split,
# clusters (pieces of a share).
X_COPY_RUNS = [(op, var, *c, w_warps, xcopy, pieces, cluster, xtma)
               for op, var in (("gemm_w8a8", "LLMACCEL_W8A8_WGMMA"),
                               ("gemm_w4a16", "LLMACCEL_W4_WGMMA"),
                               ("gemm_w8a16", "LLMACCEL_W8_WGMMA"))
               for c in CLUSTER_CASES if op != "gemm_w8a8" or c[0] > 64
               for w_warps, xcopy, pieces, cluster, xtma in (
                   (1, "warp", 4, 1, 0), (2, "", 4, 2, 0), (2, "warp", 1, 1, 0),
                   (1, "warp", 1, 1, 1), (2, "", 4, 1, 1))]


@pytest.mark.parametrize("op_name,var,m,k,n,w_warps,xcopy,pieces,cluster,xtma", X_COPY_RUNS,
                         ids=[f"{r[0]}-M{r[2]}-K{r[3]}-N{r[4]}-w{r[5]}-{r[6] or 'x0'}-p{r[7]}"
                              f"-c{r[8]}-t{r[9]}" for r in X_COPY_RUNS])
def test_cuda_gemm_wgmma_x_copies(op_name, var, m, k, n, w_warps, xcopy, pieces, cluster, xtma,
                                  monkeypatch):
    """Whichever warps and lanes issue the copies, 1D or through the x tensor map
    (LLMACCEL_WGMMA_XTMA=1): the reference, the same bits on repeat, and the same bits as one
    warp's 1D copies (the same sums in the same order)."""
    monkeypatch.setenv(var, "1" if op_name == "gemm_w8a8" else "all")
    monkeypatch.delenv("LLMACCEL_W4_TILED", raising=False)
    monkeypatch.setenv("LLMACCEL_WGMMA_CLUSTER", str(cluster))
    p, w = cuda_weight(op_name, n, k, seed=m + n)
    bias = make_bias(n)
    x = make_x((m, k), torch.bfloat16, seed=k).cuda()
    run = getattr(ops, op_name)
    for knob in ("LLMACCEL_WGMMA_WWARPS", "LLMACCEL_WGMMA_XCOPY", "LLMACCEL_WGMMA_XPIECES",
                 "LLMACCEL_WGMMA_XTMA"):
        monkeypatch.delenv(knob, raising=False)
    y_one = run(x, *w, bias.cuda(), n)
    monkeypatch.setenv("LLMACCEL_WGMMA_WWARPS", str(w_warps))
    monkeypatch.setenv("LLMACCEL_WGMMA_XCOPY", xcopy)
    monkeypatch.setenv("LLMACCEL_WGMMA_XPIECES", str(pieces))
    monkeypatch.setenv("LLMACCEL_WGMMA_XTMA", str(xtma))
    plan = _C.cuda_wgmma_plan(op_name != "gemm_w8a8", m, w[0].shape[0], w[0].shape[1])
    assert (plan["w_warps"], plan["x_warp"], plan["x_pieces"], plan["x_tma"]) == (
        w_warps, xcopy == "warp", pieces, bool(xtma)), plan
    poison_cuda_cache()
    y = run(x, *w, bias.cuda(), n)
    check_against_reference(op_name, y, x, p, bias, f"x copies M{m}-K{k}-N{n}")
    assert torch.equal(y, run(x, *w, bias.cuda(), n))
    assert torch.equal(y, y_one), "the x copies changed the sums"


@pytest.mark.parametrize("m,k,n", [(300, 1000, 264), (2053, 512, 4096), (1000, 4096, 1000)])
def test_cuda_gemm_w8a8_deep_ring(m, k, n, monkeypatch):
    """LLMACCEL_W8A8_DEEP=1 (256-row blocks, 4 ring stages, the epilogue in passes of 64 rows):
    the same bits as the 3-stage kernel (exact int32 sums, the same epilogue formula)."""
    monkeypatch.setenv("LLMACCEL_W8A8_WGMMA", "1")
    monkeypatch.setenv("LLMACCEL_WGMMA_N", "256")
    p, w = cuda_weight("gemm_w8a8", n, k, seed=m)
    bias = make_bias(n)
    x = make_x((m, k), torch.bfloat16, seed=k).cuda()
    monkeypatch.delenv("LLMACCEL_W8A8_DEEP", raising=False)
    y3 = ops.gemm_w8a8(x, *w, bias.cuda(), n)
    monkeypatch.setenv("LLMACCEL_W8A8_DEEP", "1")
    poison_cuda_cache()
    y4 = ops.gemm_w8a8(x, *w, bias.cuda(), n)
    check_against_reference("gemm_w8a8", y4, x, p, bias, f"deep ring M{m}-K{k}-N{n}")
    assert torch.equal(y4, y3)


@pytest.mark.parametrize("m", [9, 16])
def test_cuda_gemm_w4a16_kslice_three_blocks(m, monkeypatch):
    """LLMACCEL_KS_VARIANT=4 (M = 9-16 at 3 blocks per SM, bf16 g128 symmetric): the reference
    on a shape with several K chunks and a partial last range."""
    n, k = 1000, 8192
    p, w = cuda_weight("gemm_w4a16", n, k, 128, True, source="rtn", seed=m)
    x = make_x((m, k), torch.bfloat16, seed=m).cuda()
    monkeypatch.setenv("LLMACCEL_DECODE_KERNEL", "kslice")
    monkeypatch.setenv("LLMACCEL_KS_VARIANT", "4")
    y = run_op("gemm_w4a16", x, w, None, n)
    check_against_reference("gemm_w4a16", y, x, p, None, f"3 blocks M={m}")
    assert torch.equal(y, run_op("gemm_w4a16", x, w, None, n))


@pytest.mark.parametrize("op_name,m,wgmma", [
    ("gemm_w4a16", 1, "0"), ("gemm_w4a16", 9, "0"),        # the K-slice decode kernel
    ("gemm_w4a16", 5, "all"), ("gemm_w8a16", 40, "1"),     # wgmma, one x block
    ("gemm_w4a16", 300, "1"),                              # wgmma, two x blocks: no hint
])
def test_cuda_gemm_evict_first_same_bits(op_name, m, wgmma, monkeypatch):
    """LLMACCEL_EVICT_FIRST=1 (the weight copies marked evict-first in L2) changes where lines
    stay in L2, nothing else: the same bits, the reference."""
    n, k = 1000, 4096
    monkeypatch.setenv("LLMACCEL_W4_WGMMA" if op_name == "gemm_w4a16" else "LLMACCEL_W8_WGMMA",
                       wgmma)
    monkeypatch.delenv("LLMACCEL_W4_TILED", raising=False)
    p, w = cuda_weight(op_name, n, k, seed=m)
    x = make_x((m, k), torch.bfloat16, seed=m).cuda()
    monkeypatch.delenv("LLMACCEL_EVICT_FIRST", raising=False)
    y_plain = run_op(op_name, x, w, None, n)
    monkeypatch.setenv("LLMACCEL_EVICT_FIRST", "1")
    y = run_op(op_name, x, w, None, n)
    assert torch.equal(y, y_plain)
    check_against_reference(op_name, y, x, p, None, f"evict-first M={m}")
