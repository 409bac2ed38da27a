"""gemm_w4a16, gemm_w8a16 and gemm_w8a8 on CUDA against their CPU reference twins.

Weights are packed on the CPU in the canonical formats; qweight is repacked with
formats.to_cuda_int4 / to_cuda_int8 and moved to the GPU, scales, zeros and bias move as they are.
The reference twin runs on the CPU in float32, on x.float() and the canonical tensors.

Tolerance policy. The CUDA kernels take float16/bfloat16 x (used exactly), round each scaled
weight (q - z) * s to x's dtype (or keep it in float32), accumulate in float32 and round the
result to x's dtype. Against the float32 reference an element is then off by at most one rounding
of every weight, u |x| |W|^T, and one of the output, u |y| <= u (|x| |W|^T + |b|), with u = 2^-8
(bfloat16) or 2^-11 (float16), plus float32 summation noise (k u32, negligible). Both checks:

* relative Frobenius error ||y - y_ref|| / ||y_ref|| <= TOL (the rounding errors are independent,
  about u / sqrt(3) each in the norm, far below TOL);
* every element: |y - y_ref| <= TOL * A, A = |x| |W|^T + |b| (float64), which one wrong or unwritten
  element fails even where the norm would hide it. TOL >= 2u for both dtypes (bf16: 2u = 7.8e-3;
  fp16: 2u = 9.8e-4, with room for a cuBLAS reduction in float16).

gemm_w8a8: the kernel quantizes x per token over all of K exactly as the reference does
(quantize_act_int8 is bit-exact on CUDA, test_cuda_dequant_quant.py) and the int32 dots are exact,
so only the float epilogue and the output rounding differ: the same tolerances hold.

Internal paths by M: gemm_w4a16 at M <= 16 runs a decode kernel (on sm_90 the K-slice kernel, else
the stream-K one; both apply scales to float32 group sums, which only removes the per-weight
rounding; bf16 in the K-slice kernel also takes (128 + zero) * sum(x) off each group sum, a
cancellation that costs ~2^-16 relative, far inside the tolerance); up to M = 64 the swap-AB
tensor-core kernel runs, larger M dequantizes and calls cuBLAS (weight-only) or runs the int8
tensor-core GEMM (w8a8); the cases cover both sides of 8, 16 and 64.
Outputs are allocated after poison_cuda_cache(), so an element no kernel writes reads as NaN.
"""

import importlib.util
import re

import pytest
import torch

from llmaccel import formats, ops, reference

from ..helpers import assert_within, float_gemm_exact, make_bias, make_w4, make_w8, make_x
from ..helpers import poison_cuda_cache, w4_exact, w8_exact

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

TOL_BF16 = 1e-2
TOL_FP16 = 3e-3
TOL = {torch.bfloat16: TOL_BF16, torch.float16: TOL_FP16}
DTYPES = [torch.float16, torch.bfloat16]
DTYPE_IDS = ["fp16", "bf16"]
SLEEP_CYCLES = 100_000_000  # torch.cuda._sleep: about 50 ms of GPU time at 2 GHz

OPS = ["gemm_w4a16", "gemm_w8a16", "gemm_w8a8"]
W8_OPS = ["gemm_w8a16", "gemm_w8a8"]

# (M, K, N, group_size, weight source). M on both sides of the small-M path (<= 64); K a multiple
# of 8 (32, 200, 264, 1000) or not (33, 100, 999) and padded to the group or not; N = 16 (one
# tile), 72 and 100 (a partial last tile of 16 rows) and larger; every group size.
W4_CASES = [
    (1, 32, 16, -1, "codes"),
    (1, 1000, 100, 128, "rtn"),
    (3, 200, 72, 64, "codes"),
    (8, 264, 100, 32, "rtn"),
    (17, 1000, 72, 32, "codes"),
    (33, 264, 16, 128, "rtn"),
    (64, 200, 100, -1, "codes"),
    (65, 1000, 16, 64, "rtn"),
    (130, 264, 72, -1, "codes"),
    (257, 200, 100, 32, "rtn"),
    (257, 1000, 72, 128, "codes"),
    (5, 33, 100, 32, "codes"),
    (40, 100, 72, 64, "rtn"),
    (130, 999, 16, 128, "codes"),
    (1, 4096, 256, 128, "rtn"),
    (64, 512, 1000, 128, "rtn"),
    (65, 512, 1000, 64, "codes"),
    (9, 264, 100, 64, "rtn"),
    (16, 1000, 72, 32, "codes"),
    (12, 999, 16, -1, "rtn"),
]
# (M, K, N, weight source): K a multiple of 32 or not (33, 101, 200, 264, 1000: the CUDA layout
# pads K to 32), and K % 8 != 0 (33, 101).
W8_CASES = [
    (1, 32, 16, "codes"),
    (1, 1000, 100, "rtn"),
    (3, 200, 72, "codes"),
    (8, 264, 100, "rtn"),
    (17, 33, 72, "codes"),
    (33, 101, 16, "rtn"),
    (64, 1000, 72, "codes"),
    (65, 200, 100, "rtn"),
    (130, 264, 16, "codes"),
    (257, 1000, 100, "rtn"),
    (300, 101, 72, "codes"),
    (1, 4096, 256, "rtn"),
    (96, 2048, 48, "codes"),
    (64, 512, 1000, "rtn"),
    (65, 512, 1000, "codes"),
    (9, 200, 72, "rtn"),
    (16, 1000, 100, "codes"),
]


def cuda_weight(op_name, n, k, group_size=64, symmetric=False, source="codes", seed=0):
    """(canonical packed weight on the CPU, the op's weight arguments on CUDA)."""
    if op_name == "gemm_w4a16":
        p = make_w4(n, k, group_size, symmetric, seed=seed, source=source)
        return p, (formats.to_cuda_int4(p.qweight).cuda(), p.scales.cuda(),
                   None if p.zeros is None else p.zeros.cuda())
    p = make_w8(n, k, seed=seed, source=source)
    return p, (formats.to_cuda_int8(p.qweight).cuda(), p.scales.cuda())


def run_op(op_name, x, w, bias, n):
    """The op on x with weight arguments w (cuda_weight's second value)."""
    return getattr(ops, op_name)(x, *w, bias, n)


def check_against_reference(op_name, y, x, p, bias, what):
    """y = op(x) on CUDA against the reference twin on the CPU, under the policy above.
    bias is the CPU float32 bias (or None)."""
    dtype = x.dtype
    assert y.is_cuda and y.dtype == dtype, f"{what}: got {y.dtype} on {y.device}"
    n = p.n
    assert y.shape == (*x.shape[:-1], n), f"{what}: shape {tuple(y.shape)}"
    xf = x.float().cpu()
    if op_name == "gemm_w4a16":
        y_ref = reference.gemm_w4a16(xf, p.qweight, p.scales, p.zeros, bias, n)
        _, a = float_gemm_exact(xf, w4_exact(p), bias)
    else:
        y_ref = getattr(reference, op_name)(xf, p.qweight, p.scales, bias, n)
        _, a = float_gemm_exact(xf, w8_exact(p), bias)
    tol = TOL[dtype]
    y2 = y.float().cpu().reshape(a.shape)
    r2 = y_ref.reshape(a.shape)
    rel = ((y2.double() - r2.double()).norm() / r2.double().norm()).item()
    assert rel <= tol, f"{what}: relative error {rel:.3g} > {tol}"
    assert_within(y2, r2, tol * a, what)


def _w4_id(c):
    return "M{}-K{}-N{}-g{}-{}".format(*c)


WGMMA_VARS = ("LLMACCEL_W4_WGMMA", "LLMACCEL_W8_WGMMA", "LLMACCEL_W8A8_WGMMA")


@pytest.fixture(params=["default", "no-wgmma"])
def kernels(request, monkeypatch):
    """Each case on the default paths, then with the sm_90a wgmma kernels off, so that on a
    compute capability 9.0 GPU the kernels they replace over their M ranges (swapped, dequantize
    + cuBLAS, tiled int8) keep running too (elsewhere both runs take the same path)."""
    for var in WGMMA_VARS:
        if request.param == "default":
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, "0")
    return request.param


def _w8_id(c):
    return "M{}-K{}-N{}-{}".format(*c)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("case", W4_CASES, ids=_w4_id)
def test_cuda_gemm_w4a16_matches_reference(case, symmetric, with_bias, dtype, kernels):
    """Two calls with different x (never zeros), each against the reference: every element of the
    output is written by the call that returns it."""
    m, k, n, group_size, source = case
    p, w = cuda_weight("gemm_w4a16", n, k, group_size, symmetric, source, seed=m + k)
    bias = make_bias(n) if with_bias else None
    bias_cuda = None if bias is None else bias.cuda()
    for seed in (n, n + 1):
        x = make_x((m, k), dtype, seed=seed).cuda()
        poison_cuda_cache()
        y = ops.gemm_w4a16(x, *w, bias_cuda, n)
        check_against_reference("gemm_w4a16", y, x, p, bias, f"gemm_w4a16 {_w4_id(case)} x{seed}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", W8_CASES, ids=_w8_id)
@pytest.mark.parametrize("op_name", W8_OPS)
def test_cuda_gemm_w8_matches_reference(op_name, case, with_bias, dtype, kernels):
    m, k, n, source = case
    p, w = cuda_weight(op_name, n, k, source=source, seed=m + k)
    bias = make_bias(n) if with_bias else None
    bias_cuda = None if bias is None else bias.cuda()
    for seed in (n, n + 1):
        x = make_x((m, k), dtype, seed=seed).cuda()
        poison_cuda_cache()
        y = run_op(op_name, x, w, bias_cuda, n)
        check_against_reference(op_name, y, x, p, bias, f"{op_name} {_w8_id(case)} x{seed}")


def cuda_x_like(layout, m, k, dtype, seed=0):
    """x with m rows in a given memory layout on CUDA (as helpers.x_like, plus 'misaligned': a
    contiguous (m, k) view whose data pointer is one element past an aligned one)."""
    if layout == "2d":
        return make_x((m, k), dtype, seed).cuda()
    if layout == "1d":
        return make_x((k,), dtype, seed).cuda()
    if layout == "3d":
        return make_x((2, m, k), dtype, seed).cuda()
    if layout == "3d_slice":
        return make_x((2, m, k + 5), dtype, seed).cuda()[..., :k]
    if layout == "col_slice":
        return make_x((m, k + 7), dtype, seed).cuda()[:, 3:3 + k]
    if layout == "transposed":
        return make_x((k, m), dtype, seed).cuda().t()
    if layout == "misaligned":
        return make_x((m * k + 1,), dtype, seed).cuda()[1:].view(m, k)
    raise ValueError(layout)


LAYOUTS = ["1d", "3d", "3d_slice", "col_slice", "transposed", "misaligned"]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("m,k", [(5, 200), (100, 100)], ids=["M5-K200", "M100-K100"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op_name", OPS)
def test_cuda_gemm_x_layouts(op_name, layout, m, k, dtype):
    """Leading batch dims (output (..., n)), strided and misaligned x: the op copies or pads x as
    it needs; the result is the reference's on the same values."""
    n = 37
    p, w = cuda_weight(op_name, n, k, seed=k)
    bias = make_bias(n)
    x = cuda_x_like(layout, m, k, dtype, seed=m)
    poison_cuda_cache()
    y = run_op(op_name, x, w, bias.cuda(), n)
    check_against_reference(op_name, y, x, p, bias, f"{op_name} {layout} M={m}")


@pytest.mark.parametrize("op_name", OPS)
def test_cuda_gemm_inputs_not_modified(op_name):
    n, k = 37, 100
    _, w = cuda_weight(op_name, n, k)
    bias = make_bias(n).cuda()
    for m in (3, 130):
        x = make_x((m, k), torch.bfloat16, seed=m).cuda()
        saved = [t.clone() for t in (x, bias, *w) if t is not None]
        run_op(op_name, x, w, bias, n)
        torch.cuda.synchronize()
        after = [t for t in (x, bias, *w) if t is not None]
        assert all(torch.equal(a, b) for a, b in zip(saved, after)), f"M={m}"


# ---- CUDA graphs, streams, torch.compile -------------------------------------------------------

GRAPH_CASES = [("gemm_w4a16", 1), ("gemm_w4a16", 130), ("gemm_w8a16", 1), ("gemm_w8a8", 1),
               ("gemm_w8a8", 300)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op_name,m", GRAPH_CASES, ids=[f"{o}-M{m}" for o, m in GRAPH_CASES])
def test_cuda_gemm_graph_capture(op_name, m, dtype):
    """Captured once, replayed on new x: the same bits as an eager call (the kernels are
    deterministic) and the reference's result; nothing in the op may sync or allocate with
    cudaMalloc during capture."""
    k, n = 264, 100
    p, w = cuda_weight(op_name, n, k, seed=m)
    bias = make_bias(n)
    bias_cuda = bias.cuda()
    x_static = make_x((m, k), dtype, seed=1).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            run_op(op_name, x_static, w, bias_cuda, n)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = run_op(op_name, x_static, w, bias_cuda, n)
    previous = None
    for seed in (2, 3):
        x_static.copy_(make_x((m, k), dtype, seed=seed).cuda())
        graph.replay()
        torch.cuda.synchronize()
        y_eager = run_op(op_name, x_static, w, bias_cuda, n)
        diff = (y.float() - y_eager.float()).abs().max().item()
        assert torch.equal(y, y_eager), f"replay differs from eager, max |diff| {diff:.3g}"
        check_against_reference(op_name, y, x_static, p, bias, f"{op_name} graph M={m}")
        assert previous is None or not torch.equal(y, previous), "replay did not see the new x"
        previous = y.clone()


def _sleep_current_stream():
    if hasattr(torch.cuda, "_sleep"):
        torch.cuda._sleep(SLEEP_CYCLES)


@pytest.mark.parametrize("op_name,m", GRAPH_CASES, ids=[f"{o}-M{m}" for o, m in GRAPH_CASES])
def test_cuda_gemm_runs_on_the_current_stream(op_name, m):
    """Everything the op launches goes to the current stream (a side stream here):
    1. the side stream is kept busy (torch.cuda._sleep) until x is written: a kernel launched on
       a stream that does not wait for it would read the zeros x held before;
    2. the default stream is kept busy and then zeroes x: a kernel launched there (stream 0, the
       usual mistake) would run after that and read zeros, where the side stream reads x at once.
    A warm-up call on the side stream first, so that nothing inside the busy window allocates
    new memory or loads a module (which could synchronize the device); the caching allocator is
    poisoned, so a workspace (the dequantized weight of the large-M path) written on the wrong
    stream is read as NaN by the kernel that uses it."""
    k, n = 264, 100
    p, w = cuda_weight(op_name, n, k, seed=m)
    bias = make_bias(n)
    bias_cuda = bias.cuda()
    x_src = make_x((m, k), torch.bfloat16, seed=4).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        run_op(op_name, x_src, w, bias_cuda, n)  # warm-up
        poison_cuda_cache()  # a workspace written late (on another stream) reads as NaN
        x = torch.zeros_like(x_src)
        _sleep_current_stream()
        x.copy_(x_src)
        y1 = run_op(op_name, x, w, bias_cuda, n)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    check_against_reference(op_name, y1, x_src, p, bias, f"{op_name} M={m} busy side stream")

    x = x_src.clone()
    with torch.cuda.stream(side):
        poison_cuda_cache()
    side.wait_stream(torch.cuda.current_stream())  # x is ready for the side stream
    _sleep_current_stream()  # the default stream: busy, then
    x.zero_()  # it overwrites x
    with torch.cuda.stream(side):
        y2 = run_op(op_name, x, w, bias_cuda, n)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    check_against_reference(op_name, y2, x_src, p, bias, f"{op_name} M={m} busy default stream")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cuda_gemm_w4a16_torch_compile_fullgraph(dtype):
    """torch.compile(fullgraph=True) traces the op through its fake kernel and runs the CUDA one:
    the eager result, bit for bit, at an M on each path (the second compiles with a dynamic M)."""
    torch._dynamo.reset()
    k, n = 264, 100
    _, w = cuda_weight("gemm_w4a16", n, k)
    bias = make_bias(n).cuda()

    def f(x):
        return ops.gemm_w4a16(x, *w, bias, n)

    backend = "inductor" if importlib.util.find_spec("triton") is not None else "aot_eager"
    compiled = torch.compile(f, fullgraph=True, backend=backend)
    with torch.no_grad():
        for m in (1, 130, 7):
            x = make_x((m, k), dtype, seed=m).cuda()
            assert torch.equal(compiled(x), f(x)), f"M={m}"
    torch._dynamo.reset()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op_name", OPS)
def test_cuda_gemm_backward(op_name, dtype):
    """The backward (ops/autograd.py) on CUDA weights: dx = dy · W, W dequantized from the device
    layout and rounded to x's dtype, product with fp32 accumulation (the CPU float product of
    the same rounded values, rounded once more: TOL relative); db = Σ dy in float32. Then
    opcheck with inputs that require grad: the formula is registered for the CUDA kernels and
    traces (test_aot_dispatch_dynamic)."""
    k, n = 200, 72
    p, w = cuda_weight(op_name, n, k)
    x = make_x((2, 9, k), dtype, seed=1).cuda().requires_grad_()
    bias = make_bias(n).cuda().requires_grad_()
    y = run_op(op_name, x, w, bias, n)
    dy = make_x(y.shape, dtype, seed=2).cuda()
    dx, db = torch.autograd.grad(y, (x, bias), dy)
    wd = (reference.dequant_w4(p.qweight, p.scales, p.zeros, n, k) if op_name == "gemm_w4a16"
          else reference.dequant_w8(p.qweight, p.scales, n, k))
    want = dy.float().cpu().reshape(-1, n) @ wd.to(dtype).float()
    assert dx.dtype == dtype and dx.shape == x.shape
    torch.testing.assert_close(dx.float().cpu().reshape(want.shape), want,
                               rtol=TOL[dtype], atol=TOL[dtype])
    torch.testing.assert_close(db.cpu(), dy.float().cpu().reshape(-1, n).sum(0),
                               rtol=1e-5, atol=1e-5)
    result = torch.library.opcheck(getattr(ops, op_name),
                                   (x.detach().requires_grad_(), *w, bias, n))
    assert set(result.values()) == {"SUCCESS"}, result


@pytest.mark.parametrize("op_name", OPS)
def test_cuda_gemm_empty_batch(op_name):
    """M = 0 (as F.linear allows): an empty (0, n) result in x's dtype, no launch error."""
    _, w = cuda_weight(op_name, 37, 100)
    y = run_op(op_name, torch.zeros(0, 100, dtype=torch.bfloat16, device="cuda"), w, None, 37)
    torch.cuda.synchronize()
    assert y.shape == (0, 37) and y.dtype == torch.bfloat16 and y.is_cuda


# ---- bad inputs (last in the file: a check that is missing could fault the device) -------------

@pytest.mark.parametrize("op_name", OPS)
def test_cuda_gemm_float32_x_raises(op_name):
    _, w = cuda_weight(op_name, 37, 100)
    with pytest.raises(TypeError, match="bfloat16") as info:
        run_op(op_name, make_x((3, 100)).cuda(), w, None, 37)
    assert re.search(r"\bfloat16", str(info.value)), str(info.value)
    torch.cuda.synchronize()


@pytest.mark.parametrize("op_name", OPS)
def test_cuda_gemm_canonical_qweight_raises(op_name):
    """The canonical (CPU) qweight on CUDA is refused with a message naming the CUDA layout."""
    p, w = cuda_weight(op_name, 37, 100)
    x = make_x((3, 100), torch.bfloat16).cuda()
    with pytest.raises(ValueError, match="(?i)cuda"):
        run_op(op_name, x, (p.qweight.cuda(), *w[1:]), None, 37)
    torch.cuda.synchronize()


def test_cuda_gemm_w8a8_act_block_raises():
    _, w = cuda_weight("gemm_w8a8", 37, 256)
    x = make_x((3, 256), torch.bfloat16).cuda()
    for act_block in (32, 128):
        with pytest.raises(ValueError, match="act_block"):
            ops.gemm_w8a8(x, *w, None, 37, act_block)
    torch.cuda.synchronize()


@pytest.mark.parametrize("k", [1, 200])
@pytest.mark.parametrize("op_name", OPS)
def test_cuda_gemm_k_mismatch_raises(op_name, k):
    """x's K outside what the weight was packed for (K = 100): an error, as on the CPU, not a
    silent product with part of the weight. The CUDA int8 layout knows k_pad only to its chunks
    of 32 columns, so K must lie in (k_chunks - 32, k_chunks] = (96, 128] there (int4: in
    (k_pad - group, k_pad] = (64, 128]); K = 1 and K = 200 are outside both."""
    _, w = cuda_weight(op_name, 37, 100)
    with pytest.raises((ValueError, RuntimeError)):
        run_op(op_name, make_x((3, k), torch.bfloat16).cuda(), w, None, 37)
    torch.cuda.synchronize()


MIXED = [(op, a) for op in OPS for a in ("x", "qweight", "scales", "zeros", "bias")
         if a != "zeros" or op == "gemm_w4a16"]


@pytest.mark.parametrize("op_name,on_cpu", MIXED, ids=[f"{o}-{a}" for o, a in MIXED])
def test_cuda_gemm_mixed_devices_raise(op_name, on_cpu):
    """One argument left on the CPU, the others on CUDA: an error, never a kernel reading host
    memory."""
    _, w = cuda_weight(op_name, 37, 100, symmetric=False)
    args = {"x": make_x((3, 100), torch.bfloat16).cuda(), "qweight": w[0], "scales": w[1],
            "zeros": w[2] if op_name == "gemm_w4a16" else None, "bias": make_bias(37).cuda()}
    args[on_cpu] = args[on_cpu].cpu()
    weights = ((args["qweight"], args["scales"], args["zeros"]) if op_name == "gemm_w4a16"
               else (args["qweight"], args["scales"]))
    with pytest.raises((ValueError, RuntimeError)):
        run_op(op_name, args["x"], weights, args["bias"], 37)
    torch.cuda.synchronize()
