"""QuantLinear on CUDA: moving to the GPU repacks qweight into the CUDA layout, moving back and
state_dict give the canonical bytes, checkpoints load across devices, and the forward matches the
CPU layer's.

Tolerance policy (see tests/ops/test_cuda_gemm.py): the CUDA kernels round each scaled weight and
the output to x's dtype (float32 x is computed in bfloat16 and returned as float32), so against
the CPU layer on the same activation values y is within TOL * A elementwise, A = |x| |W|^T + |b|,
and within TOL in relative Frobenius norm (TOL_BF16 = 1e-2, TOL_FP16 = 3e-3). Weight-only configs
are compared with act_int8_min_m=None, so the CPU layer keeps float activations at every M;
Int8Dynamic quantizes activations identically on both devices. With the default act_int8_min_m
the CPU layer quantizes activations from M = 3 on and only the looser INT8_ACT_REL_ERR (as in
test_quant_linear.py) is asserted there, whichever activations the CUDA layer uses.
"""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmaccel import Int4WeightOnly, Int8Dynamic, Int8WeightOnly, QuantLinear, formats

from ..helpers import assert_within, make_x

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

TOL_BF16 = 1e-2
TOL_FP16 = 3e-3
TOL = {torch.bfloat16: TOL_BF16, torch.float16: TOL_FP16, torch.float32: TOL_BF16}
INT8_ACT_REL_ERR = 0.02
DTYPES = [torch.float16, torch.bfloat16, torch.float32]
DTYPE_IDS = ["fp16", "bf16", "f32"]

# Weight-only configs with float activations at every M on both devices.
FLOAT_ACT_CONFIGS = [
    Int4WeightOnly(group_size=32, symmetric=True, act_int8_min_m=None),
    Int4WeightOnly(group_size=64, symmetric=False, act_int8_min_m=None),
    Int4WeightOnly(group_size=128, symmetric=True, act_int8_min_m=None),
    Int4WeightOnly(group_size=-1, symmetric=False, act_int8_min_m=None),
    Int8WeightOnly(act_int8_min_m=None),
    Int8Dynamic(),
]
DEFAULT_CONFIGS = [
    Int4WeightOnly(group_size=128),
    Int4WeightOnly(group_size=32, symmetric=False),
    Int8WeightOnly(),
    Int8Dynamic(),
]
# (in_features, out_features): K % 8 == 0 and N % 16 != 0; K % 8 != 0 and N % 16 == 8.
DIMS = [(200, 37), (100, 72)]


def _cfg_id(c):
    if isinstance(c, Int4WeightOnly):
        return (f"int4-g{c.group_size}-{'sym' if c.symmetric else 'asym'}"
                f"-min{c.act_int8_min_m}")
    if isinstance(c, Int8WeightOnly):
        return f"Int8WeightOnly-min{c.act_int8_min_m}"
    return type(c).__name__


def _cpu_layer(cfg, in_features=200, out_features=37, bias=True, seed=0):
    torch.manual_seed(seed)
    return QuantLinear.from_linear(nn.Linear(in_features, out_features, bias=bias), cfg)


def _is_cuda_layout(layer):
    q = layer.qweight
    return q.is_cuda and q.dtype == torch.int32 and q.dim() == 4


def check_against_cpu(y, layer_cpu, x_values, dtype, what):
    """y = cuda_layer(x) against layer_cpu(x_values) (x_values: float32 CPU, the activation
    values the CUDA kernels use) under the policy above."""
    y_ref = layer_cpu(x_values)
    w = layer_cpu.dequantize().double()
    x2 = x_values.reshape(-1, x_values.shape[-1]).double()
    a = x2.abs() @ w.abs().t()
    if layer_cpu.bias is not None:
        a = a + layer_cpu.bias.double().abs()
    tol = TOL[dtype]
    y2 = y.float().cpu().reshape(a.shape)
    r2 = y_ref.float().reshape(a.shape)
    rel = ((y2.double() - r2.double()).norm() / r2.double().norm()).item()
    assert rel <= tol, f"{what}: relative error {rel:.3g} > {tol}"
    assert_within(y2, r2, tol * a, what)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("lead", [(1,), (3,), (17,), (130,), (2, 9)],
                         ids=["M1", "M3", "M17", "M130", "B2xS9"])
@pytest.mark.parametrize("dims", DIMS, ids=[f"K{k}-N{n}" for k, n in DIMS])
@pytest.mark.parametrize("cfg", FLOAT_ACT_CONFIGS, ids=_cfg_id)
def test_cuda_forward_matches_cpu_layer(cfg, dims, lead, dtype):
    """float16/bfloat16 x: the output in x's dtype; float32 x: computed in bfloat16 and returned as
    float32, so the CPU layer sees x rounded to bfloat16."""
    in_features, out_features = dims
    cpu = _cpu_layer(cfg, in_features, out_features)
    gpu = copy.deepcopy(cpu).to("cuda")
    assert _is_cuda_layout(gpu)
    x = make_x((*lead, in_features), dtype, seed=len(lead) + lead[0])
    for attempt in range(2):  # twice, different x: every output element written by its call
        y = gpu(x.cuda())
        assert y.is_cuda and y.dtype == dtype and y.shape == (*lead, out_features)
        x_values = (x.bfloat16() if dtype == torch.float32 else x).float()
        check_against_cpu(y, cpu, x_values, dtype, f"{_cfg_id(cfg)} {lead} {dtype}")
        x = make_x((*lead, in_features), dtype, seed=100 + attempt)


@pytest.mark.parametrize("m", [1, 2, 17])
@pytest.mark.parametrize("cfg", DEFAULT_CONFIGS, ids=_cfg_id)
def test_cuda_forward_default_configs(cfg, m):
    """The default act_int8_min_m (3): below it both devices use float activations (and
    Int8Dynamic int8 ones at every M) and agree within the tolerance; from it on the CPU layer
    quantizes activations and the two agree within the int8 activation error."""
    cpu = _cpu_layer(cfg)
    gpu = copy.deepcopy(cpu).cuda()
    assert _is_cuda_layout(gpu)
    x = make_x((m, 200), torch.bfloat16, seed=m)
    y = gpu(x.cuda())
    assert y.dtype == torch.bfloat16 and y.shape == (m, 37)
    if m < 3 or isinstance(cfg, Int8Dynamic):
        check_against_cpu(y, cpu, x.float(), torch.bfloat16, f"{_cfg_id(cfg)} M={m}")
    else:
        y_f = F.linear(x.float(), cpu.dequantize(), cpu.bias)
        rel = ((y.float().cpu() - y_f).norm() / y_f.norm()).item()
        assert rel <= INT8_ACT_REL_ERR, f"{_cfg_id(cfg)} M={m}: relative error {rel:.4f}"


ALL_CONFIGS = FLOAT_ACT_CONFIGS + DEFAULT_CONFIGS


@pytest.mark.parametrize("move", ["to_str", "to_device", "cuda"])
@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=_cfg_id)
def test_cuda_move_repacks_and_back(cfg, move):
    """.to('cuda') / .to(torch.device('cuda')) / .cuda(): qweight becomes the CUDA layout of the
    canonical bytes, scales / zeros / bias move unchanged; .to('cpu') / .cpu() gives back the
    canonical bytes exactly."""
    cpu = _cpu_layer(cfg)
    saved = {k: v.clone() for k, v in cpu.state_dict().items()}
    gpu = copy.deepcopy(cpu)
    gpu = {"to_str": lambda m: m.to("cuda"), "to_device": lambda m: m.to(torch.device("cuda")),
           "cuda": lambda m: m.cuda()}[move](gpu)
    assert _is_cuda_layout(gpu)
    to_cuda = formats.to_cuda_int4 if isinstance(cfg, Int4WeightOnly) else formats.to_cuda_int8
    assert torch.equal(gpu.qweight.cpu(), to_cuda(saved["qweight"]))
    assert gpu.scales.is_cuda and torch.equal(gpu.scales.cpu(), saved["scales"])
    if "zeros" in saved:
        assert gpu.zeros.is_cuda and torch.equal(gpu.zeros.cpu(), saved["zeros"])
    assert gpu.bias.is_cuda and torch.equal(gpu.bias.cpu(), saved["bias"])
    back = copy.deepcopy(gpu).to("cpu")
    back2 = copy.deepcopy(gpu).cpu()
    for b in (back, back2):
        assert b.qweight.device.type == "cpu"
        assert b.qweight.dtype == saved["qweight"].dtype and b.qweight.dim() == 2
        assert set(b.state_dict()) == set(saved)
        for k, v in b.state_dict().items():
            assert v.device.type == "cpu" and v.dtype == saved[k].dtype, k
            assert torch.equal(v, saved[k]), k
    x = make_x((3, 200))
    assert torch.equal(back(x), cpu(x))  # the CPU kernels run on the restored layer


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=_cfg_id)
def test_cuda_state_dict_is_canonical(cfg):
    """A CUDA layer's state_dict holds the canonical layout (uint8 / int8 2-D qweight), equal to
    the CPU layer's, and a checkpoint saved from it loads into a CPU layer."""
    cpu = _cpu_layer(cfg)
    gpu = copy.deepcopy(cpu).to("cuda")
    sd_cpu, sd_gpu = cpu.state_dict(), gpu.state_dict()
    assert set(sd_gpu) == set(sd_cpu)
    for k, v in sd_gpu.items():
        assert v.dtype == sd_cpu[k].dtype and v.shape == sd_cpu[k].shape, k
        assert torch.equal(v.cpu(), sd_cpu[k]), k
    assert sd_gpu["qweight"].dim() == 2
    assert sd_gpu["qweight"].dtype == (torch.uint8 if isinstance(cfg, Int4WeightOnly)
                                       else torch.int8)
    assert _is_cuda_layout(gpu)  # taking a state_dict leaves the layer as it was
    buf = io.BytesIO()
    torch.save(sd_gpu, buf)
    buf.seek(0)
    fresh = QuantLinear(200, 37, True, cfg)
    fresh.load_state_dict(torch.load(buf, map_location="cpu", weights_only=True))
    x = make_x((2, 200))
    assert torch.equal(fresh(x), cpu(x))


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=_cfg_id)
def test_cuda_load_cpu_state_dict(cfg):
    """load_state_dict(CPU checkpoint) into a CUDA layer: the CUDA layout on the GPU and the same
    outputs, bit for bit, as the CPU layer moved to CUDA."""
    cpu = _cpu_layer(cfg, seed=1)
    reference_gpu = copy.deepcopy(cpu).to("cuda")
    buf = io.BytesIO()
    torch.save(cpu.state_dict(), buf)
    buf.seek(0)
    fresh = QuantLinear(200, 37, True, cfg).to("cuda")
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert _is_cuda_layout(fresh)
    assert torch.equal(fresh.qweight, reference_gpu.qweight)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v.cpu(), cpu.state_dict()[k]), k
    for m in (1, 130):
        x = make_x((m, 200), torch.bfloat16, seed=m).cuda()
        assert torch.equal(fresh(x), reference_gpu(x)), f"M={m}"


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=_cfg_id)
def test_cuda_dequantize(cfg):
    cpu = _cpu_layer(cfg)
    gpu = copy.deepcopy(cpu).to("cuda")
    w = gpu.dequantize()
    assert w.is_cuda and w.dtype == torch.float32 and w.shape == (37, 200)
    assert torch.equal(w.cpu(), cpu.dequantize())


@pytest.mark.parametrize("cfg", [Int4WeightOnly(group_size=64, symmetric=False),
                                 Int8WeightOnly(), Int8Dynamic()], ids=_cfg_id)
def test_cuda_from_linear_on_cuda(cfg):
    """from_linear of an nn.Linear on CUDA: a CUDA layer, the same bytes as quantizing on the CPU
    and moving."""
    torch.manual_seed(3)
    lin = nn.Linear(200, 37)
    cpu = QuantLinear.from_linear(lin, cfg)
    gpu = QuantLinear.from_linear(copy.deepcopy(lin).cuda(), cfg)
    assert _is_cuda_layout(gpu)
    for k, v in gpu.state_dict().items():
        assert torch.equal(v.cpu(), cpu.state_dict()[k]), k


def test_cuda_forward_no_bias_3d():
    cfg = Int4WeightOnly(group_size=32, act_int8_min_m=None)
    cpu = _cpu_layer(cfg, bias=False)
    assert cpu.bias is None
    gpu = copy.deepcopy(cpu).to("cuda")
    x = make_x((2, 5, 200), torch.bfloat16, seed=9)
    y = gpu(x.cuda())
    assert y.shape == (2, 5, 37) and y.dtype == torch.bfloat16
    check_against_cpu(y, cpu, x.float(), torch.bfloat16, "no bias, 3-D")


@pytest.mark.parametrize("m", [1, 17, 300])  # the small-M kernels and dequantize + cuBLAS
@pytest.mark.parametrize("cfg", DEFAULT_CONFIGS, ids=_cfg_id)
def test_cuda_backward_matches_cpu(cfg, m):
    """A gradient through a CUDA layer (ops/autograd.py): dx = dy · W, W from the CUDA dequant of
    the device layout (equal to the CPU one's, test above) rounded to bfloat16, multiplied by
    cuBLAS with fp32 accumulation: the CPU float product of the same bf16 values, rounded once
    to bfloat16 (2**-7 relative; atol for dx elements near 0 after cancellation)."""
    cpu = _cpu_layer(cfg)
    gpu = copy.deepcopy(cpu).to("cuda")
    x = make_x((m, 200), torch.bfloat16, seed=m).cuda().requires_grad_()
    dy = make_x((m, 37), torch.bfloat16, seed=7)
    gpu(x).backward(dy.cuda())
    assert x.grad.is_cuda and x.grad.dtype == torch.bfloat16
    want = (dy.float() @ cpu.dequantize().bfloat16().float()).bfloat16()
    torch.testing.assert_close(x.grad.cpu(), want, rtol=2**-7, atol=1e-3)
