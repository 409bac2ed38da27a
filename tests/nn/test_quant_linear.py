"""QuantLinear: forward against F.linear with the dequantized weight, serialization, dtypes,
quantize_, and torch.compile.

Tolerance policy (the op-level tests in tests/ops check the kernels themselves bit for bit or
against exact values; here the question is what a user sees):

* Float-activation path (M below config.act_int8_min_m): the layer and F.linear(x, dequantize(),
  b) compute the same float32 sum in different orders, from the same float32 weight up to one
  rounding: within 2 * gamma(k_pad + 5) * A, A = |x| |W|^T + |b| (see tests/ops/test_gemm_w4.py).
* int8-activation path (M >= act_int8_min_m, and Int8Dynamic at every M): each activation moves by
  at most half of its block's quantization step sx (round to nearest, no clipping since
  |x| <= absmax), so |y - y_float| <= sum_k (sx(k) / 2) |W[n, k]| elementwise, plus the float
  bound above. As a plain statistical check too, for Gaussian x the relative error
  ||y - y_float|| / ||y_float|| stays below INT8_ACT_REL_ERR: uniform rounding error of
  step / sqrt(12) with step = absmax / 127 and absmax about 3 sigma gives about 0.7%.
"""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import llmaccel
from llmaccel import Int4WeightOnly, Int8Dynamic, Int8WeightOnly, QuantLinear, formats, reference
from llmaccel.nn.quant_linear import W8_ACT_BLOCK

from ..helpers import assert_within, bf16_ulp, gamma, make_x

INT8_ACT_REL_ERR = 0.02
# The dense GEMMs have AVX2 kernels: `isa` covers the avx2 path here (tests/conftest.py).
AVX2_KERNELS = True
STEP_SLACK = 1e-5  # float32 rounding of w / scale and of the scale itself, in steps

IN, OUT = 200, 37
CONFIGS = [
    Int4WeightOnly(group_size=32),
    Int4WeightOnly(group_size=128),
    Int4WeightOnly(group_size=-1),
    Int4WeightOnly(group_size=32, symmetric=False),
    Int4WeightOnly(group_size=128, symmetric=False),
    Int4WeightOnly(group_size=-1, symmetric=False),
    Int8WeightOnly(),
    Int8Dynamic(),
]


def _cfg_id(c):
    if isinstance(c, Int4WeightOnly):
        return f"int4-g{c.group_size}-{'sym' if c.symmetric else 'asym'}"
    return type(c).__name__


def _linear(bias=True, seed=0, in_features=IN, out_features=OUT):
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features, bias=bias)


def _uses_int8(cfg, m):
    if isinstance(cfg, Int8Dynamic):
        return True
    return cfg.act_int8_min_m is not None and m >= cfg.act_int8_min_m


def _act_block(layer):
    """Block size along K in which the int8 path quantizes activations."""
    if isinstance(layer.config, Int4WeightOnly):
        return layer.group_size
    if isinstance(layer.config, Int8WeightOnly):
        return W8_ACT_BLOCK
    return layer.qweight.shape[1] // 16  # Int8Dynamic: one block over k_pad


def _k_pad(layer):
    return layer.qweight.shape[1] // (8 if isinstance(layer.config, Int4WeightOnly) else 16)


def check_against_float(layer, x, what):
    """layer(x) against F.linear(x, layer.dequantize(), bias) under the policy above."""
    w = layer.dequantize()
    y = layer(x)
    assert y.shape == (*x.shape[:-1], layer.out_features) and y.dtype == x.dtype
    y_f = F.linear(x.float(), w, layer.bias)
    x2 = x.reshape(-1, x.shape[-1]).float()
    a = x2.double().abs() @ w.double().abs().t()
    if layer.bias is not None:
        a = a + layer.bias.double().abs()
    bound = 2 * gamma(_k_pad(layer) + 5) * a
    m = x2.shape[0]
    y2, y_f2 = y.reshape(m, -1), y_f.reshape(m, -1)
    if _uses_int8(layer.config, m):
        block = _act_block(layer)
        _, sx, _ = reference.quantize_act_int8(x2, block)
        half_step = (sx.double() / 2).repeat_interleave(block, 1)[:, :x2.shape[1]]
        bound = bound + (half_step @ w.double().abs().t()) * (1 + STEP_SLACK)
        rel = (y2.double() - y_f2.double()).norm() / y_f2.double().norm()
        assert rel <= INT8_ACT_REL_ERR, f"{what}: relative error {rel:.4f}"
    if y.dtype == torch.bfloat16:
        bound = bound + bf16_ulp(y_f2)
    assert_within(y2, y_f2, bound, what)


@pytest.mark.parametrize("m", [1, 3, 4, 17])
@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_forward_matches_dequantized_linear(isa, cfg, m):
    layer = QuantLinear.from_linear(_linear(), cfg)
    check_against_float(layer, make_x((m, IN), seed=m), f"{_cfg_id(cfg)} M={m} [{isa}]")


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_forward_3d_no_bias(cfg):
    layer = QuantLinear.from_linear(_linear(bias=False), cfg)
    assert layer.bias is None
    check_against_float(layer, make_x((2, 5, IN)), _cfg_id(cfg))
    check_against_float(layer, make_x((1, 1, IN)), _cfg_id(cfg))


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_dequantize_within_a_step(cfg):
    """dequantize() is within half a quantization step of the float weight (a full step for
    symmetric int4, whose grid -8..7 reaches only +7 steps on the side opposite the extreme)."""
    lin = _linear()
    layer = QuantLinear.from_linear(lin, cfg)
    w = layer.dequantize()
    assert w.dtype == torch.float32 and w.shape == (OUT, IN)
    if isinstance(cfg, Int4WeightOnly):
        p = formats.PackedInt4(layer.qweight, layer.scales, layer.zeros, OUT, IN, layer.group_size)
        _, s, _ = formats.unpack_int4(p)
        step = s.double().abs().repeat_interleave(layer.group_size, 1)[:, :IN]
        frac = 1.0 if cfg.symmetric else 0.5
    else:
        step = layer.scales[:OUT].double()[:, None]
        frac = 0.5
    err = (w.double() - lin.weight.double()).abs()
    assert torch.all(err <= step * (frac + STEP_SLACK))
    assert torch.equal(layer.bias, lin.bias.detach())


def test_buffers_and_repr():
    layer = QuantLinear.from_linear(_linear(), Int4WeightOnly(group_size=64, symmetric=False))
    sd = layer.state_dict()
    assert set(sd) == {"qweight", "scales", "zeros", "bias"}
    assert sd["qweight"].dtype == torch.uint8 and sd["zeros"].dtype == torch.uint8
    assert layer.format == formats.INT4_TILE16X8
    assert "int4_tile16x8/v1" in repr(layer)
    sym = QuantLinear.from_linear(_linear(bias=False), Int4WeightOnly())
    assert set(sym.state_dict()) == {"qweight", "scales"}
    i8 = QuantLinear.from_linear(_linear(), Int8Dynamic())
    assert set(i8.state_dict()) == {"qweight", "scales", "bias"}
    assert i8.format == formats.INT8_TILE16X4 and i8.qweight.dtype == torch.int8


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_state_dict_round_trip(cfg):
    src = QuantLinear.from_linear(_linear(seed=1), cfg)
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    buf.seek(0)
    fresh = QuantLinear(IN, OUT, True, cfg)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    for m in (2, 9):
        x = make_x((m, IN), seed=m)
        assert torch.equal(fresh(x), src(x))


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_device_form_glue(cfg, monkeypatch):
    """The moves a GPU makes (nn/device_layout.py), run on the CPU by declaring the CPU a device
    that holds the CUDA form: .to() repacks qweight into it and back to the same bytes,
    state_dict keeps the canonical bytes, load_state_dict repacks them, .half() keeps the
    buffers. The forward on a GPU is tests/nn/test_cuda_quant_linear.py's."""
    from llmaccel.nn import device_layout

    src = QuantLinear.from_linear(_linear(seed=1), cfg)
    want = {k: v.clone() for k, v in src.state_dict().items()}
    to_cuda = formats.to_cuda_int4 if isinstance(cfg, Int4WeightOnly) else formats.to_cuda_int8
    monkeypatch.setattr(device_layout, "holds_device_form", lambda device: True)
    moved = copy.deepcopy(src).to("cpu").half()
    assert torch.equal(moved.qweight, to_cuda(want["qweight"]))
    for k, v in moved.state_dict().items():
        assert v.dtype == want[k].dtype and torch.equal(v, want[k]), k
    fresh = QuantLinear(IN, OUT, True, cfg).to("cpu")
    fresh.load_state_dict(want)
    assert torch.equal(fresh.qweight, moved.qweight)
    monkeypatch.setattr(device_layout, "holds_device_form", lambda device: False)
    back = moved.to("cpu")
    for k, v in back._buffers.items():
        if v is not None:
            assert torch.equal(v, want[k]), k
    x = make_x((3, IN))
    assert torch.equal(back(x), src(x))


@pytest.mark.parametrize("cfg", [Int4WeightOnly(group_size=32, symmetric=False), Int8WeightOnly()],
                         ids=_cfg_id)
def test_state_dict_into_quantize_of_a_fresh_model(cfg):
    """A checkpoint of a quantized model loads into quantize_(fresh float model, same config)."""
    src = _Model(seed=2)
    llmaccel.quantize_(src, cfg)
    dst = _Model(seed=3)  # different float weights, replaced by the load
    llmaccel.quantize_(dst, cfg)
    dst.load_state_dict(src.state_dict())
    for m in (2, 9):
        x = make_x((m, 64), seed=m)
        assert torch.equal(dst(x), src(x))


def test_safetensors_round_trip(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    src = _Model(seed=4)
    llmaccel.quantize_(src, Int4WeightOnly(group_size=32, symmetric=False),
                       filter_fn=lambda mod, fqn: fqn != "lm_head")
    llmaccel.quantize_(src, Int8WeightOnly())  # lm_head: the remaining nn.Linear
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(src.state_dict(), str(path))
    dst = _Model(seed=5)
    llmaccel.quantize_(dst, Int4WeightOnly(group_size=32, symmetric=False),
                       filter_fn=lambda mod, fqn: fqn != "lm_head")
    llmaccel.quantize_(dst, Int8WeightOnly())
    dst.load_state_dict(safetensors_torch.load_file(str(path)))
    x = make_x((9, 64))
    assert torch.equal(dst(x), src(x))


@pytest.mark.parametrize("m", [2, 9])
@pytest.mark.parametrize("cfg", [Int4WeightOnly(group_size=32), Int8WeightOnly(), Int8Dynamic()],
                         ids=_cfg_id)
def test_low_precision_inputs(cfg, m):
    """bfloat16 runs in the kernels (float32 math, one rounding of the output); float16 is
    computed in float32 and cast back."""
    layer = QuantLinear.from_linear(_linear(), cfg)
    x = make_x((m, IN), seed=m)
    xb = x.bfloat16()
    check_against_float(layer, xb, f"{_cfg_id(cfg)} bf16 M={m}")
    xh = x.half()
    yh = layer(xh)
    assert yh.dtype == torch.float16
    assert torch.equal(yh, layer(xh.float()).half())


def test_act_int8_min_m_none_keeps_float_activations():
    cfg = Int4WeightOnly(group_size=32, act_int8_min_m=None)
    layer = QuantLinear.from_linear(_linear(), cfg)
    x = make_x((64, IN))
    assert not _uses_int8(cfg, 64)
    assert torch.equal(layer(x), llmaccel.ops.gemm_w4a16(x, layer.qweight, layer.scales, None,
                                                        layer.bias, OUT))
    check_against_float(layer, x, "act_int8_min_m=None")


def test_act_int8_min_m_switches_kernel():
    layer = QuantLinear.from_linear(_linear(), Int8WeightOnly(act_int8_min_m=8))
    args = (layer.qweight, layer.scales, layer.bias, OUT)
    x7, x8 = make_x((7, IN)), make_x((8, IN))
    assert torch.equal(layer(x7), llmaccel.ops.gemm_w8a16(x7, *args))
    assert torch.equal(layer(x8), llmaccel.ops.gemm_w8a8(x8, *args, W8_ACT_BLOCK))


def test_wrong_in_features_raises():
    layer = QuantLinear.from_linear(_linear(), Int4WeightOnly(group_size=128))
    with pytest.raises((ValueError, RuntimeError)):
        layer(make_x((3, IN + 1)))


def test_bad_construction():
    with pytest.raises(TypeError, match="unsupported config"):
        QuantLinear(IN, OUT, True, "int4")
    with pytest.raises(TypeError, match="expected nn.Linear"):
        QuantLinear.from_linear(nn.Conv1d(4, 4, 1), Int8WeightOnly())
    layer = QuantLinear(IN, OUT, True, Int8WeightOnly())
    with pytest.raises(ValueError, match="does not match"):
        layer.load_weight(torch.randn(OUT, IN + 1))
    with pytest.raises(ValueError, match="group_size"):
        Int4WeightOnly(group_size=48)
    with pytest.raises(ValueError, match="act_int8_min_m"):
        Int8WeightOnly(act_int8_min_m=0)
    with pytest.raises(ValueError, match="act_int8_min_m"):
        Int4WeightOnly(act_int8_min_m=2.5)


# ---- quantize_ ---------------------------------------------------------------------------------

class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(64, 96)
        self.down = nn.Linear(96, 64, bias=False)

    def forward(self, x):
        return x + self.down(torch.relu(self.up(x)))


class _Model(nn.Module):
    """Two residual blocks and an lm_head, the usual shape of what quantize_ meets."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.ModuleList([_Block(), _Block()])
        self.norm = nn.LayerNorm(64)
        self.lm_head = nn.Linear(64, 50)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


def test_quantize_swaps_every_linear_but_lm_head():
    model = _Model()
    ref = copy.deepcopy(model)
    assert llmaccel.quantize_(model, Int8WeightOnly()) is model
    names = [n for n, m in model.named_modules() if isinstance(m, QuantLinear)]
    assert names == ["layers.0.up", "layers.0.down", "layers.1.up", "layers.1.down"]
    assert type(model.lm_head) is nn.Linear  # kept unless an override names it
    assert isinstance(model.norm, nn.LayerNorm)
    x = make_x((2, 64))
    y, y_ref = model(x), ref(x)
    rel = (y - y_ref).norm() / y_ref.norm()
    assert rel < INT8_ACT_REL_ERR  # int8 weights of a small random model: a sanity level only


def test_quantize_filter_fn():
    model = _Model()
    seen = []

    def keep_head(mod, fqn):
        seen.append((type(mod), fqn))
        return fqn != "lm_head"

    llmaccel.quantize_(model, Int4WeightOnly(group_size=32), filter_fn=keep_head)
    assert type(model.lm_head) is nn.Linear
    assert all(isinstance(b.up, QuantLinear) and isinstance(b.down, QuantLinear)
               for b in model.layers)
    assert (nn.Linear, "lm_head") in seen and all(t is nn.Linear for t, _ in seen)


def test_quantize_leaves_linear_subclasses_alone():
    """Only exact nn.Linear is swapped (e.g. MultiheadAttention's out_proj subclass stays)."""
    model = nn.Sequential(nn.MultiheadAttention(32, 4), nn.Linear(32, 32))
    llmaccel.quantize_(model, Int8WeightOnly())
    assert isinstance(model[1], QuantLinear)
    assert not isinstance(model[0].out_proj, QuantLinear)


def test_quantize_bare_linear_raises():
    with pytest.raises(TypeError, match="from_linear"):
        llmaccel.quantize_(nn.Linear(8, 8), Int8WeightOnly())


# ---- torch.compile -----------------------------------------------------------------------------

# Raised inside torch's own compile stack, not by llmaccel.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_fullgraph():
    """An int4 and an int8 QuantLinear compiled with fullgraph=True match eager bit for bit, for an
    M on the float path and an M on the int8-activation path (a guard on M must pick the kernel)."""
    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 40)).eval()
    model[0] = QuantLinear.from_linear(model[0], Int4WeightOnly(group_size=32))
    model[2] = QuantLinear.from_linear(model[2], Int8WeightOnly())
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        for m in (2, 8):
            assert _uses_int8(Int8WeightOnly(), m) == (m >= 4)
            x = make_x((m, 64), seed=m)
            assert torch.equal(compiled(x), model(x)), f"M={m}"


@pytest.mark.parametrize("config", [Int4WeightOnly(32), Int8WeightOnly(), Int8Dynamic()],
                         ids=["w4", "w8", "w8a8"])
def test_prepared_fast_path_matches_the_op(config):
    q = QuantLinear.from_linear(nn.Linear(72, 40), config)
    w = "gemm_w4" if isinstance(config, Int4WeightOnly) else "gemm_w8"
    for shape in [(1, 72), (2, 3, 72), (17, 72)]:
        x = make_x(shape)
        int8 = isinstance(config, Int8Dynamic) or x.numel() // 72 >= 3  # act_int8_min_m = 3
        assert torch.equal(q(x), q._op(w + ("a8" if int8 else "a16"), x))
    xt = make_x((72, 5)).t()  # non-contiguous: falls back to the op, same result
    assert torch.equal(q(xt), q(xt.contiguous()))


def test_prepared_kernel_follows_replaced_buffers():
    lin = nn.Linear(64, 32)
    q = QuantLinear.from_linear(lin, Int4WeightOnly(32))
    x = make_x((1, 64))
    before = q(x)
    q.load_weight(2 * lin.weight, lin.bias)  # new buffers: prepared again, not stale
    assert torch.allclose(q(x) - q.bias, 2 * (before - q.bias), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("config", [Int4WeightOnly(32), Int4WeightOnly(-1, False), Int8WeightOnly()],
                         ids=["w4", "w4asym_pc", "w8"])
def test_select_rows_is_exact(config):
    q = QuantLinear.from_linear(nn.Linear(48, 40), config)
    idx = torch.randperm(40, generator=torch.Generator().manual_seed(0))[:33]
    sub = q.select_rows(idx)
    x = make_x((3, 48))
    assert torch.equal(sub(x), q(x)[:, idx])
