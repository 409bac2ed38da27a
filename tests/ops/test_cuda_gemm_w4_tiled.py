"""The opt-in tiled int4 kernel of gemm_w4a16 on CUDA (LLMACCEL_W4_TILED=<max M>, off by default,
csrc/gemm/gemm_tiled_w4.cuh) against the reference twin, under test_cuda_gemm.py's tolerance
policy (it too rounds each scaled weight to x's dtype)."""

import pytest
import torch

from llmaccel import ops

from ..helpers import make_bias, make_x, poison_cuda_cache
from .test_cuda_gemm import DTYPE_IDS, DTYPES, W4_CASES, _w4_id, check_against_reference
from .test_cuda_gemm import cuda_weight

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

# The opt-in tiled int4 kernel (LLMACCEL_W4_TILED=<max M>, not yet measured, off by default):
# every W4_CASES shape above the decode range, plus shapes whose (N, M) grid is small enough that
# K is split over blocks (the partial sums then meet in a second kernel): N = 100 or 256 with
# K = 4096 (up to 8 splits), M over one and several 64-row blocks.
W4_TILED_SPLIT_CASES = [(17, 4096, 100, 128, "rtn"), (64, 4096, 256, 64, "codes"),
                        (65, 4096, 72, -1, "rtn"), (200, 2048, 100, 32, "codes")]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("case", [c for c in W4_CASES if c[0] > 16] + W4_TILED_SPLIT_CASES,
                         ids=_w4_id)
def test_cuda_gemm_w4a16_tiled(case, symmetric, dtype, monkeypatch):
    """Against the reference under the same policy as the default paths (the tiled kernel also
    rounds each scaled weight to x's dtype), with bias, and bit-identical on repeat."""
    monkeypatch.setenv("LLMACCEL_W4_TILED", "4096")
    m, k, n, group_size, source = case
    assert ops.cuda_path("gemm_w4a16", m) == "tiled mma"
    p, w = cuda_weight("gemm_w4a16", n, k, group_size, symmetric, source, seed=m + k)
    bias = make_bias(n)
    x = make_x((m, k), dtype, seed=n).cuda()
    poison_cuda_cache()
    y = ops.gemm_w4a16(x, *w, bias.cuda(), n)
    check_against_reference("gemm_w4a16", y, x, p, bias, f"tiled {_w4_id(case)}")
    assert torch.equal(y, ops.gemm_w4a16(x, *w, bias.cuda(), n))
