"""SparseLinear on CUDA: no 2:4 CUDA kernel exists yet, so the layer moves as the dense weight it
represents (int4: QuantLinear's CUDA layout and gemm_w4a16 kernels; bf16: a dense bfloat16
weight and cuDNN/cuBLAS through torch), while state_dict keeps the 2:4 bytes.

Tolerance policy (as tests/nn/test_cuda_quant_linear.py): against the exact product of the
layer's weight and the activation values the GPU uses, elementwise within TOL * A,
A = |x| |W|^T + |b|, and within TOL in relative Frobenius norm. int4: the kernels round each
scaled weight and the output to x's dtype (float32 x is computed in bfloat16); bf16: x and the
output are rounded to bfloat16 whatever x's dtype.
"""

import copy
import importlib.util
import io

import pytest
import torch
from torch import nn

import llmaccel
from llmaccel import formats
from llmaccel.nn import QuantLinear, SparseLinear

from ..helpers import assert_within, make_x
from .test_sparse_linear import pruned_linear

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

TOL = {torch.bfloat16: 1e-2, torch.float16: 3e-3, torch.float32: 1e-2}
DTYPES = [torch.float16, torch.bfloat16, torch.float32]
DTYPE_IDS = ["fp16", "bf16", "f32"]
KINDS = ["int4-g32", "int4-g64", "int4-perchannel", "bf16"]
K, N = 200, 37  # K not a multiple of 32 (padded chunks), N not of 16 (padded rows)


def cpu_layer(kind: str, k: int = K, n: int = N, bias: bool = True, seed: int = 0):
    lin = pruned_linear(k, n, bias=bias, seed=seed)
    if kind == "bf16":
        return SparseLinear.from_linear(lin)
    group = {"int4-g32": 32, "int4-g64": 64, "int4-perchannel": -1}[kind]
    cfg = llmaccel.Int4WeightOnly(group, act_int8_min_m=None)
    return SparseLinear.from_quant_linear(QuantLinear.from_linear(lin, cfg))


def on_device_layout(layer: SparseLinear) -> bool:
    if layer.config.bits == 4:
        q = layer.qweight
        return q.is_cuda and q.dtype == torch.int32 and q.dim() == 4
    p = layer.packed
    return p.is_cuda and p.dtype == torch.bfloat16 and p.shape == (layer.out_features,
                                                                   layer.in_features)


def check_exact_product(y, layer_cpu, x, what):
    """y (the CUDA layer's output for x) against the float64 product of the activation values
    the GPU used and the layer's weight, under the policy above."""
    bits16 = layer_cpu.config.bits == 16
    used = x.bfloat16() if (bits16 or x.dtype == torch.float32) else x
    x2 = used.double().cpu().reshape(-1, x.shape[-1])
    w = layer_cpu.dequantize().double()
    ref = x2 @ w.t()
    a = x2.abs() @ w.abs().t()
    if layer_cpu.bias is not None:
        ref, a = ref + layer_cpu.bias.double(), a + layer_cpu.bias.double().abs()
    tol = TOL[torch.bfloat16 if bits16 else x.dtype]
    y2 = y.double().cpu().reshape(ref.shape)
    rel = ((y2 - ref).norm() / ref.norm()).item()
    assert rel <= tol, f"{what}: relative error {rel:.3g} > {tol}"
    assert_within(y2, ref, tol * a, what)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("lead", [(1,), (5,), (17,), (130,), (2, 9)],
                         ids=["M1", "M5", "M17", "M130", "B2xS9"])
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_forward(kind, lead, dtype):
    cpu = cpu_layer(kind)
    gpu = copy.deepcopy(cpu).to("cuda")
    assert on_device_layout(gpu)
    for seed in (1, 2):  # twice, different x: every output element written by its call
        x = make_x((*lead, K), dtype, seed=seed + lead[0])
        y = gpu(x.cuda())
        assert y.is_cuda and y.dtype == dtype and y.shape == (*lead, N)
        check_exact_product(y, cpu, x, f"{kind} {lead} {dtype}")


@pytest.mark.parametrize("move", ["to_str", "to_device", "cuda"])
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_move_and_back(kind, move):
    """To the GPU: the weight in its device form, scales and bias unchanged; back: the 2:4 bytes
    exactly, and the CPU kernels give the CPU layer's outputs."""
    cpu = cpu_layer(kind)
    saved = {k: v.clone() for k, v in cpu.state_dict().items()}
    gpu = {"to_str": lambda m: m.to("cuda"), "to_device": lambda m: m.to(torch.device("cuda")),
           "cuda": lambda m: m.cuda()}[move](copy.deepcopy(cpu))
    assert on_device_layout(gpu)
    if kind == "bf16":
        assert torch.equal(gpu.packed.float().cpu(), cpu.dequantize())
    else:
        assert torch.equal(gpu.qweight.cpu(), formats.to_cuda_int4_sp24(
            formats.PackedInt4Sp24.of(cpu.qweight, cpu.scales, N, K)))
        assert gpu.scales.is_cuda and torch.equal(gpu.scales.cpu(), saved["scales"])
    assert gpu.bias.is_cuda and torch.equal(gpu.bias.cpu(), saved["bias"])
    for back in (copy.deepcopy(gpu).to("cpu"), copy.deepcopy(gpu).cpu()):
        assert set(back.state_dict()) == set(saved)
        for k, v in back.state_dict().items():
            assert v.device.type == "cpu" and torch.equal(v, saved[k]), k
        x = make_x((3, K))
        assert torch.equal(back(x), cpu(x))


@pytest.mark.parametrize("kind", KINDS)
def test_cuda_state_dict_is_canonical(kind):
    """A CUDA layer's state_dict holds the 2:4 bytes (a checkpoint from it loads on the CPU), and
    a CPU checkpoint loads into a CUDA layer as moving the CPU layer would."""
    cpu = cpu_layer(kind, seed=1)
    gpu = copy.deepcopy(cpu).to("cuda")
    sd_cpu, sd_gpu = cpu.state_dict(), gpu.state_dict()
    assert set(sd_gpu) == set(sd_cpu)
    for k, v in sd_gpu.items():
        assert v.dtype == sd_cpu[k].dtype and torch.equal(v.cpu(), sd_cpu[k]), k
    assert on_device_layout(gpu)  # taking a state_dict leaves the layer as it was
    buf = io.BytesIO()
    torch.save(sd_gpu, buf)
    buf.seek(0)
    fresh_cpu = SparseLinear(K, N, True, cpu.config)
    fresh_cpu.load_state_dict(torch.load(buf, map_location="cpu", weights_only=True))
    x = make_x((2, K))
    assert torch.equal(fresh_cpu(x), cpu(x))
    fresh_gpu = SparseLinear(K, N, True, cpu.config).to("cuda")
    fresh_gpu.load_state_dict(sd_cpu)
    assert on_device_layout(fresh_gpu)
    weight = "packed" if kind == "bf16" else "qweight"
    assert torch.equal(getattr(fresh_gpu, weight), getattr(gpu, weight))
    xg = make_x((5, K), torch.bfloat16).cuda()
    assert torch.equal(fresh_gpu(xg), gpu(xg))


@pytest.mark.parametrize("kind", KINDS)
def test_cuda_dequantize(kind):
    cpu = cpu_layer(kind)
    w = copy.deepcopy(cpu).to("cuda").dequantize()
    assert w.is_cuda and w.dtype == torch.float32 and w.shape == (N, K)
    assert torch.equal(w.cpu(), cpu.dequantize())


def test_cuda_half_keeps_the_buffers():
    """model.half() / .to(torch.bfloat16) on a GPU model must not round the float32 scales and
    bias, nor turn the bf16 weight into fp16."""
    for kind in ("int4-g32", "bf16"):
        cpu = cpu_layer(kind)
        gpu = copy.deepcopy(cpu).cuda().half()
        assert on_device_layout(gpu) and gpu.bias.dtype == torch.float32
        if kind != "bf16":
            assert gpu.scales.dtype == torch.float32
        x = make_x((3, K), torch.float16)
        check_exact_product(gpu(x.cuda()), cpu, x, f"{kind} after .half()")


def test_cuda_built_from_cuda_layers():
    """from_quant_linear of a CUDA QuantLinear and from_linear of a CUDA nn.Linear: CUDA layers
    holding what the CPU route gives."""
    lin = pruned_linear(K, N, seed=3)
    q = QuantLinear.from_linear(lin, llmaccel.Int4WeightOnly(64))
    for cpu, gpu in ((SparseLinear.from_quant_linear(q),
                      SparseLinear.from_quant_linear(copy.deepcopy(q).cuda())),
                     (SparseLinear.from_linear(lin), SparseLinear.from_linear(copy.deepcopy(lin).cuda()))):
        assert on_device_layout(gpu)
        for k, v in gpu.state_dict().items():
            assert torch.equal(v.cpu(), cpu.state_dict()[k]), k


@pytest.mark.parametrize("kind", ["int4-g32", "bf16"])
def test_cuda_concat_and_select_rows(kind):
    a, b = cpu_layer(kind, n=48, seed=4), cpu_layer(kind, n=N, seed=5)
    fused = SparseLinear.concat([copy.deepcopy(a).cuda(), copy.deepcopy(b).cuda()])
    assert on_device_layout(fused)
    want = SparseLinear.concat([a, b])
    for k, v in fused.state_dict().items():
        assert torch.equal(v.cpu(), want.state_dict()[k]), k
    index = torch.tensor([50, 3, 84, 0])
    rows = fused.select_rows(index)
    assert on_device_layout(rows)
    for k, v in rows.state_dict().items():
        assert torch.equal(v.cpu(), want.select_rows(index).state_dict()[k]), k


@pytest.mark.parametrize("m", [1, 17, 300])
@pytest.mark.parametrize("kind", ["int4-g32", "bf16"])
def test_cuda_backward(kind, m):
    """dx = dy · W (the frozen weight), in bfloat16 with fp32 accumulation."""
    cpu = cpu_layer(kind)
    gpu = copy.deepcopy(cpu).to("cuda")
    x = make_x((m, K), torch.bfloat16, seed=m).cuda().requires_grad_()
    dy = make_x((m, N), torch.bfloat16, seed=7)
    gpu(x).backward(dy.cuda())
    assert x.grad.is_cuda and x.grad.dtype == torch.bfloat16
    want = (dy.float() @ cpu.dequantize().bfloat16().float()).bfloat16()
    torch.testing.assert_close(x.grad.cpu(), want, rtol=2**-7, atol=1e-3)


@pytest.mark.parametrize("kind", ["int4-g32", "bf16"])
def test_cuda_compile_and_graph_capture(kind):
    """torch.compile(fullgraph=True) gives eager's outputs, and a CUDA graph of the layer replays
    on new x as eager runs it."""
    torch._dynamo.reset()
    gpu = copy.deepcopy(cpu_layer(kind)).to("cuda")
    backend = "inductor" if importlib.util.find_spec("triton") is not None else "aot_eager"
    compiled = torch.compile(gpu, fullgraph=True, backend=backend)
    with torch.no_grad():
        for m in (1, 130, 7):
            x = make_x((m, K), torch.bfloat16, seed=m).cuda()
            torch.testing.assert_close(compiled(x), gpu(x), rtol=2**-8, atol=1e-3)
        x_static = make_x((4, K), torch.bfloat16, seed=1).cuda()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                gpu(x_static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            y = gpu(x_static)
        for seed in (2, 3):
            x_static.copy_(make_x((4, K), torch.bfloat16, seed=seed).cuda())
            graph.replay()
            torch.cuda.synchronize()
            assert torch.equal(y, gpu(x_static))
    torch._dynamo.reset()


def test_cuda_x_on_another_device_than_the_layer():
    cpu = cpu_layer("int4-g32")
    with pytest.raises(RuntimeError, match=r"move the layer with \.to\('cuda:0'\)"):
        cpu(make_x((2, K), torch.bfloat16).cuda())
    with pytest.raises((RuntimeError, ValueError)):
        copy.deepcopy(cpu).cuda()(make_x((2, K), torch.bfloat16))
