"""SparseLinear: 2:4 layers packed from pruned QuantLinear (exact) or nn.Linear (bf16 values),
their forward against the dense weight they represent, fusion helpers, compile, checkpoints."""

import copy

import pytest
import torch
from torch import nn

import llmaccel
from llmaccel import formats, ops
from llmaccel.nn import QuantLinear, SparseLinear
from llmaccel.pruning.pack import packable, sparsify_

from ..helpers import make_x

AVX2_KERNELS = True  # the isa fixture covers avx2 here: it is where the 2:4 int8 path runs


def pruned_linear(k=96, n=40, bias=True, seed=0) -> nn.Linear:
    torch.manual_seed(seed)
    lin = nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        g = lin.weight.view(n, k // 4, 4)
        keep = torch.zeros_like(g, dtype=torch.bool).scatter_(2, g.abs().topk(2, dim=2).indices, True)
        lin.weight.mul_(keep.view(n, k))
    return lin.requires_grad_(False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_from_quant_linear_is_exact(dtype):
    q = QuantLinear.from_linear(pruned_linear(), llmaccel.Int4WeightOnly(32))
    s = SparseLinear.from_quant_linear(q)
    assert torch.equal(s.dequantize(), q.dequantize())
    assert s.config == llmaccel.Sparse24(4, 32, q.config.act_int8_min_m)
    tol = 2e-5 if dtype == torch.float32 else 1e-2
    # Below act_int8_min_m the 2:4 int4 kernel consumes x rounded to bf16; from there on both
    # layers quantize x to int8 per token and group the same way (gemm_w4a8 / gemm_w4a8_sp24).
    x = make_x((2, 96), dtype)
    ref = x.bfloat16().float() @ q.dequantize().t() + q.bias
    torch.testing.assert_close(s(x).float(), ref, rtol=tol, atol=tol)
    x = make_x((6, 96), dtype)
    if llmaccel.ops.w4a8_sp24_min_m() is not None:  # 6 rows: at or above every path's floor
        assert s.kernel_for(6) == "gemm_w4a8_sp24" and q.kernel_for(6) == "gemm_w4a8"
        torch.testing.assert_close(s(x).float(), q(x).float(), rtol=tol, atol=tol)
    else:
        ref = x.bfloat16().float() @ q.dequantize().t() + q.bias
        torch.testing.assert_close(s(x).float(), ref, rtol=tol, atol=tol)
    assert s.qweight.numel() + 4 * s.scales.numel() < q.qweight.numel() + 4 * q.scales.numel()


@pytest.mark.parametrize("vbmi_off", [False, True], ids=["", "no-vbmi"])
@pytest.mark.parametrize("min_m", [None, 1, 3, 8])
def test_act_int8_min_m_picks_the_kernel(min_m, isa, vbmi_off, request):
    if vbmi_off:  # as on an AVX-512 CPU without VBMI (Skylake-SP, Cascade Lake)
        request.getfixturevalue("no_vbmi")
    q = QuantLinear.from_linear(pruned_linear(),
                                llmaccel.Int4WeightOnly(32, act_int8_min_m=min_m))
    s = SparseLinear.from_quant_linear(q)
    assert s.config.act_int8_min_m == min_m
    # The AVX-512 paths take int8 activations from 6 rows on (with VBMI; never without).
    vbmi = llmaccel.cpu_info()["vbmi"]
    floor = 1 if isa in ("scalar", "avx2") else (6 if vbmi else None)
    assert llmaccel.ops.w4a8_sp24_min_m() == floor
    for m in (1, 2, 3, 5, 6, 7, 8, 64):
        int8 = min_m is not None and floor is not None and m >= max(min_m, floor)
        assert s.kernel_for(m) == ("gemm_w4a8_sp24" if int8 else "gemm_w4a16_sp24")
        x = make_x((m, 96), seed=m)
        op = llmaccel.ops.gemm_w4a8_sp24 if int8 else llmaccel.ops.gemm_w4a16_sp24
        assert torch.equal(s(x), op(x, s.qweight, s.scales, s.bias, 40))
    # bf16 values have no int8-activation kernel: the setting is stored as None.
    assert llmaccel.Sparse24(16, act_int8_min_m=3).act_int8_min_m is None
    assert SparseLinear.from_linear(pruned_linear()).kernel_for(64) == "gemm_sp24"
    with pytest.raises(ValueError, match="act_int8_min_m"):
        llmaccel.Sparse24(4, act_int8_min_m=0)


def test_from_linear_rounds_to_bf16():
    lin = pruned_linear()
    s = SparseLinear.from_linear(lin)
    assert torch.equal(s.dequantize(), lin.weight.bfloat16().float())
    x = make_x((3, 96))
    ref = x @ s.dequantize().t() + lin.bias
    torch.testing.assert_close(s(x), ref, rtol=1e-5, atol=1e-5)


def test_rejects_dense_and_asymmetric():
    with pytest.raises(ValueError, match="not 2:4"):
        SparseLinear.from_linear(nn.Linear(32, 16))
    q = QuantLinear.from_linear(pruned_linear(), llmaccel.Int4WeightOnly(32, symmetric=False))
    with pytest.raises(ValueError, match="symmetric int4"):
        SparseLinear.from_quant_linear(q)
    with pytest.raises(TypeError, match="Sparse24"):
        SparseLinear(32, 16, False, llmaccel.Int4WeightOnly())
    with pytest.raises(ValueError, match="bits must be 4"):
        llmaccel.Sparse24(bits=8)


@pytest.mark.parametrize("bits", [4, 16])
def test_concat_and_select_rows(bits):
    def make(n, seed):
        lin = pruned_linear(n=n, seed=seed)
        if bits == 16:
            return SparseLinear.from_linear(lin)
        return SparseLinear.from_quant_linear(QuantLinear.from_linear(lin, llmaccel.Int4WeightOnly(32)))

    layers = [make(32, 1), make(16, 2), make(20, 3)]
    cat = SparseLinear.concat(layers)
    x = make_x((3, 96))
    torch.testing.assert_close(cat(x), torch.cat([s(x) for s in layers], dim=-1))
    idx = torch.randperm(20)
    torch.testing.assert_close(layers[2].select_rows(idx)(x), layers[2](x)[:, idx])
    with pytest.raises(ValueError, match="multiples"):
        SparseLinear.concat([layers[2], layers[0]])


@pytest.mark.parametrize("bits", [4, 16])
def test_float_dtype_moves_keep_the_buffers(bits):
    """model.half() / .to(torch.bfloat16) / .double() (a whole-model cast, as for bf16
    inference) leave the packed weight and the float32 scales and bias as they are: the kernels
    read them as stored. Before, the scales became float16 and every forward raised."""
    lin = pruned_linear()
    s = (SparseLinear.from_linear(lin) if bits == 16 else
         SparseLinear.from_quant_linear(QuantLinear.from_linear(lin, llmaccel.Int4WeightOnly(32))))
    before = {k: v.clone() for k, v in s.state_dict().items()}
    x = make_x((3, 96), torch.bfloat16)
    y = s(x)
    for cast in (lambda m: m.half(), lambda m: m.to(torch.bfloat16), lambda m: m.double()):
        cast(s)
        for k, v in s.state_dict().items():
            assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k
        assert torch.equal(s(x), y)


@pytest.mark.parametrize("bits", [4, 16])
def test_dense_device_form_glue(bits, monkeypatch):
    """The moves a GPU makes (nn/sparse_linear.py: no 2:4 CUDA kernel, so the weight is held
    dense there), run on the CPU by declaring the CPU such a device: .to() converts the weight
    into its dense form and back to the same 2:4 bytes, state_dict keeps the 2:4 bytes,
    load_state_dict converts them, and dequantize, concat and select_rows agree with the 2:4
    layer's. The forward on a GPU is tests/nn/test_cuda_sparse_linear.py's."""
    from llmaccel.nn import device_layout

    def make(n, seed):
        lin = pruned_linear(k=200, n=n, seed=seed)
        if bits == 16:
            return SparseLinear.from_linear(lin)
        cfg = llmaccel.Int4WeightOnly(64)
        return SparseLinear.from_quant_linear(QuantLinear.from_linear(lin, cfg))

    sparse = [make(48, 1), make(37, 2)]
    want = {k: v.clone() for k, v in sparse[1].state_dict().items()}
    monkeypatch.setattr(device_layout, "holds_device_form", lambda device: True)
    dense = [copy.deepcopy(s).to("cpu") for s in sparse]
    d = dense[1]
    if bits == 4:
        assert d.qweight.dtype == torch.int32 and d.qweight.dim() == 4
        assert torch.equal(ops.dequant_w4(formats.from_cuda_int4(d.qweight), d.scales, None, 37,
                                          200), sparse[1].dequantize())
    else:
        assert d.packed.dtype == torch.bfloat16 and d.packed.shape == (37, 200)
        assert torch.equal(d.packed.float(), sparse[1].dequantize())
    for k, v in d.state_dict().items():
        assert torch.equal(v, want[k]), k
    fresh = SparseLinear(200, 37, True, d.config).to("cpu")
    fresh.load_state_dict(want)
    weight = "qweight" if bits == 4 else "packed"
    assert torch.equal(getattr(fresh, weight), getattr(d, weight))
    assert d.half().bias.dtype == torch.float32 and getattr(d, weight).dtype != torch.uint8
    cat, want_cat = SparseLinear.concat(dense), SparseLinear.concat(sparse)
    index = torch.tensor([50, 3, 84, 0])
    for got, ref in ((cat, want_cat), (cat.select_rows(index), want_cat.select_rows(index))):
        assert getattr(got, weight).dtype != torch.uint8
        for k, v in got.state_dict().items():
            assert torch.equal(v, ref.state_dict()[k]), k
    monkeypatch.setattr(device_layout, "holds_device_form", lambda device: False)
    back = d.to("cpu")
    for k, v in back._buffers.items():
        assert torch.equal(v, want[k]), k
    x = make_x((3, 200))
    assert torch.equal(back(x), sparse[1](x))


def test_x_on_another_device_names_the_move():
    s = SparseLinear.from_linear(pruned_linear())
    with pytest.raises(RuntimeError, match=r"holds its 2:4 weight on cpu.*\.to\('meta'\)"):
        s(torch.empty(2, 96, device="meta"))


def test_compile_fullgraph():
    s = SparseLinear.from_quant_linear(QuantLinear.from_linear(pruned_linear(),
                                                               llmaccel.Int4WeightOnly(32)))
    x = make_x((4, 96))
    assert torch.equal(torch.compile(s, fullgraph=True)(x), s(x))


def test_sparsify_converts_only_2_4_layers():
    model = nn.Sequential(pruned_linear(), nn.Linear(40, 40),
                          QuantLinear.from_linear(pruned_linear(k=40, n=24, seed=1),
                                                  llmaccel.Int4WeightOnly(32)),
                          QuantLinear.from_linear(nn.Linear(24, 8), llmaccel.Int8WeightOnly()))
    x = make_x((2, 96))
    before = model(x)
    assert not packable(model[1]) and not packable(model[3])
    assert sparsify_(model) == ["0", "2"]
    assert isinstance(model[0], SparseLinear) and model[0].config.bits == 16
    assert isinstance(model[2], SparseLinear) and model[2].config.bits == 4
    assert type(model[1]) is nn.Linear and isinstance(model[3], QuantLinear)
    torch.testing.assert_close(model(x), before, rtol=2e-2, atol=2e-2)  # bf16 values in layer 0
    assert sparsify_(model) == []


def test_checkpoint_round_trip(tmp_path):
    model = nn.Sequential(pruned_linear(),
                          QuantLinear.from_linear(pruned_linear(k=40, n=24, seed=1),
                                                  llmaccel.Int4WeightOnly(32)))
    sparsify_(model)
    x = make_x((2, 96))
    llmaccel.save_quantized(model, tmp_path / "ck")
    fresh = nn.Sequential(nn.Linear(96, 40), nn.Linear(40, 24))
    loaded = llmaccel.load_quantized(tmp_path / "ck", fresh)
    assert all(isinstance(m, SparseLinear) for m in loaded)
    assert torch.equal(loaded(x), model(x))
    desc = llmaccel.checkpoint.read_description(tmp_path / "ck")
    assert {s["format"] for s in desc["layers"].values()} == {"int4_sp24_tile16x32",
                                                              "bf16_sp24_tile16x32"}


@pytest.mark.parametrize("bits", [4, 16])
def test_prepared_fast_path_matches_the_op(bits):
    lin = pruned_linear(k=100, n=40)
    s = (SparseLinear.from_linear(lin) if bits == 16 else
         SparseLinear.from_quant_linear(QuantLinear.from_linear(lin, llmaccel.Int4WeightOnly(32))))
    weights = (s.packed,) if bits == 16 else (s.qweight, s.scales)
    for shape in [(1, 100), (2, 3, 100), (17, 100)]:
        for dtype in (torch.float32, torch.bfloat16):
            x = make_x(shape, dtype)
            op = getattr(llmaccel.ops, s.kernel_for(x.numel() // 100))
            assert torch.equal(s(x), op(x, *weights, s.bias, 40))
    xt = make_x((100, 5)).t()  # non-contiguous: falls back to the op, same result
    assert torch.equal(s(xt), s(xt.contiguous()))
    with torch.enable_grad():  # autograd input: through the registered op (it records a node)
        assert s(make_x((2, 100)).requires_grad_()).grad_fn is not None
    before = s(make_x((1, 100)))
    s.bias = 2 * s.bias  # replaced buffer: prepared again, not stale
    assert torch.allclose(s(make_x((1, 100))) - before, s.bias / 2, atol=1e-5)


def test_prepared_sparse_rejects_bad_arguments():
    s = SparseLinear.from_quant_linear(QuantLinear.from_linear(pruned_linear(),
                                                               llmaccel.Int4WeightOnly(32)))
    with pytest.raises(ValueError, match="unknown 2:4 op"):
        llmaccel.ops.PreparedSparse("gemm_w4a16", (s.qweight, s.scales), None, 40, 96)
    with pytest.raises(ValueError, match=r"takes \(qweight, scales\)"):
        llmaccel.ops.PreparedSparse("gemm_w4a8_sp24", (s.qweight,), None, 40, 96)
    with pytest.raises(ValueError, match="K=100 columns"):
        llmaccel.ops.PreparedSparse("gemm_w4a16_sp24", (s.qweight, s.scales), None, 40, 100)
    with pytest.raises(ValueError, match="n=50 does not match"):
        llmaccel.ops.PreparedSparse("gemm_w4a16_sp24", (s.qweight, s.scales), None, 50, 96)


def test_set_act_int8_min_m_changes_the_layers_that_have_the_choice(isa):
    model = nn.Sequential(
        SparseLinear.from_quant_linear(QuantLinear.from_linear(pruned_linear(),
                                                               llmaccel.Int4WeightOnly(32))),
        QuantLinear.from_linear(nn.Linear(40, 24), llmaccel.Int4WeightOnly(32)),
        QuantLinear.from_linear(nn.Linear(24, 24), llmaccel.Int8Dynamic()),
        SparseLinear.from_linear(pruned_linear(k=24, n=8)))
    x = make_x((5, 96))
    assert llmaccel.nn.set_act_int8_min_m(model, None) == ["0", "1"]
    assert model[0].config.act_int8_min_m is None and model[1].config.act_int8_min_m is None
    assert model[0].kernel_for(64) == "gemm_w4a16_sp24" and model[1].kernel_for(64) == "gemm_w4a16"
    assert model[2].kernel_for(1) == "gemm_w8a8" and model[3].config.act_int8_min_m is None
    float_y = model(x)
    assert llmaccel.nn.set_act_int8_min_m(model, 2) == ["0", "1"]
    assert model[1].kernel_for(2) == "gemm_w4a8"
    assert model[0].kernel_for(2) == ("gemm_w4a8_sp24" if isa in ("scalar", "avx2")
                                      else "gemm_w4a16_sp24")  # AVX-512: from 6 rows
    torch.testing.assert_close(model(x), float_y, rtol=0.05, atol=0.05)  # int8 activations
