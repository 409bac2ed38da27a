"""quantize_ with calibration (GPTQ, AWQ, SmoothQuant) on small random-config Llama models:
each method beats round-to-nearest where it should, scale folding keeps the float function,
overrides pick per-layer configs, and bad arguments fail clearly."""

import copy

import pytest
import torch

import llmaccel
from llmaccel.nn import QuantLinear
from llmaccel.quantization import plan
from llmaccel.quantization.scaling import fold_scales, scale_groups

from ..tiny_llama import logit_error, logits, random_ids, tiny_llama

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


@pytest.fixture(scope="module")
def calib():
    return random_ids(16, 32, seed=1)


@pytest.fixture(scope="module")
def held_out():
    return random_ids(4, 32, seed=2)


def quantized(model, config, **kw):
    q = copy.deepcopy(model)
    llmaccel.quantize_(q, config, progress=False, **kw)
    return q


def test_gptq_beats_rtn(model, calib, held_out):
    rtn = logit_error(quantized(model, llmaccel.Int4WeightOnly(32)), model, held_out)
    for cfg in (llmaccel.GPTQ(group_size=32), llmaccel.GPTQ(group_size=32, act_order=False)):
        err = logit_error(quantized(model, cfg, calibration=calib), model, held_out)
        assert err < 0.8 * rtn, (cfg, err, rtn)


def test_gptq_int8(model, calib, held_out):
    rtn = logit_error(quantized(model, llmaccel.Int8WeightOnly(act_int8_min_m=None)), model,
                      held_out)
    q = quantized(model, llmaccel.GPTQ(bits=8, act_int8_min_m=None), calibration=calib)
    assert isinstance(q.model.layers[0].mlp.down_proj, QuantLinear)
    assert q.model.layers[0].mlp.down_proj.config == llmaccel.Int8WeightOnly(None)
    assert logit_error(q, model, held_out) < rtn


def test_gptq_3bit(model, calib, held_out):
    """bits=3: int4-format layers whose codes sit on the 3-bit grid; coarser than 4 bits."""
    q3 = quantized(model, llmaccel.GPTQ(bits=3, group_size=32), calibration=calib)
    down = q3.model.layers[0].mlp.down_proj
    assert isinstance(down, QuantLinear) and down.config == llmaccel.Int4WeightOnly(32)
    assert llmaccel.GPTQ(bits=3, group_size=32).scheme() == llmaccel.Int4WeightOnly(32)
    codes = down.codes()[0]
    assert 4 <= int(codes.min()) and int(codes.max()) <= 11
    q4 = quantized(model, llmaccel.GPTQ(bits=4, group_size=32), calibration=calib)
    assert logit_error(q4, model, held_out) < logit_error(q3, model, held_out)


def test_awq_beats_rtn(model, calib, held_out):
    rtn = logit_error(quantized(model, llmaccel.Int4WeightOnly(32, symmetric=False)), model,
                      held_out)
    q = quantized(model, llmaccel.AWQ(group_size=32), calibration=calib)
    assert logit_error(q, model, held_out) < rtn


def test_awq_without_clip_never_worse_than_rtn_on_its_objective(model, calib):
    from llmaccel.quantization import awq, calibration as cal

    m = copy.deepcopy(model)
    layer = m.model.layers[0]
    inputs = cal.catch_first_layer_inputs(m, layer, calib, 8)
    linears = {n: mod for n, mod in layer.named_modules() if type(mod) is torch.nn.Linear}
    stats = cal.collect_input_stats(layer, inputs, linears, hessian=False, sample_rows=256)
    for group in scale_groups(layer):
        st = stats[group.names[0]]
        schemes = [llmaccel.Int4WeightOnly(32, False)] * len(group.names)
        s, best, rtn = awq.search_scale(group, st.sample, st.absmean, schemes, grid=10)
        assert best <= rtn and s.shape == (group.linears[0].in_features,)
        assert torch.isfinite(s).all() and (s > 0).all()


def test_smoothquant_beats_plain_w8a8(model, calib, held_out):
    plain = logit_error(quantized(model, llmaccel.Int8Dynamic()), model, held_out)
    q = quantized(model, llmaccel.SmoothQuant(alpha=0.5), calibration=calib)
    assert all(isinstance(q.get_submodule(n), QuantLinear) for n in plan(model, llmaccel.Int8Dynamic()))
    assert logit_error(q, model, held_out) < plain


def test_scale_folding_keeps_the_float_function(model, held_out):
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(5)
    groups = [grp for layer in m.model.layers for grp in scale_groups(layer)]
    # GQA (kv_heads < heads): v → o cannot fold, so per layer: qkv, gate/up, down.
    assert len(groups) == 3 * len(m.model.layers)
    for grp in groups:
        fold_scales(grp, torch.exp(torch.randn(grp.linears[0].in_features, generator=g)))
    torch.testing.assert_close(logits(m, held_out), logits(model, held_out), rtol=1e-4, atol=1e-4)


def test_scale_groups_include_v_to_o_without_gqa():
    m = tiny_llama(layers=1, kv_heads=4)
    names = [grp.names for grp in scale_groups(m.model.layers[0])]
    assert ("self_attn.o_proj",) in names


def test_lm_head_kept_by_default_and_overrides(model):
    p = plan(model, llmaccel.Int4WeightOnly(32))
    assert "lm_head" not in p and len(p) == 7 * len(model.model.layers)
    p = plan(model, llmaccel.Int4WeightOnly(32),
             overrides={r"down_proj$": llmaccel.Int8WeightOnly(), r"layers\.0\.self_attn": None,
                        r"^lm_head$": llmaccel.Int8WeightOnly()})
    assert p["lm_head"] == llmaccel.Int8WeightOnly()
    assert p["model.layers.1.mlp.down_proj"] == llmaccel.Int8WeightOnly()
    assert not any(n.startswith("model.layers.0.self_attn") for n in p)
    assert p["model.layers.1.self_attn.q_proj"] == llmaccel.Int4WeightOnly(32)


def test_mixed_methods_per_layer(model, calib, held_out):
    q = quantized(model, llmaccel.GPTQ(group_size=32), calibration=calib,
                  overrides={r"mlp\.down_proj$": llmaccel.Int8WeightOnly(),
                             r"layers\.1\.self_attn\.[qk]_proj$": None})
    assert q.model.layers[0].mlp.down_proj.config == llmaccel.Int8WeightOnly()
    assert type(q.model.layers[1].self_attn.q_proj) is torch.nn.Linear
    assert isinstance(q.model.layers[1].self_attn.v_proj, QuantLinear)
    assert torch.isfinite(logits(q, held_out)).all()


def test_errors(model, calib):
    m = copy.deepcopy(model)
    with pytest.raises(ValueError, match="needs calibration"):
        llmaccel.quantize_(m, llmaccel.GPTQ())
    with pytest.raises(ValueError, match="LongTensor"):
        llmaccel.quantize_(m, llmaccel.GPTQ(), calibration=calib.float())
    with pytest.raises(ValueError, match="match no linear"):
        llmaccel.quantize_(m, llmaccel.Int4WeightOnly(32), overrides={"nonexistent": None})
    with pytest.raises(TypeError, match="quantization config"):
        llmaccel.quantize_(m, llmaccel.Int4WeightOnly(32), overrides={"q_proj": "int4"})
    with pytest.raises(ValueError, match="batch_size"):
        llmaccel.quantize_(m, llmaccel.GPTQ(), calibration=calib, batch_size=0)
    with pytest.raises(ValueError, match="bits"):
        llmaccel.GPTQ(bits=5)
    with pytest.raises(ValueError, match="symmetric"):
        llmaccel.GPTQ(bits=8, symmetric=False)
    with pytest.raises(ValueError, match="alpha"):
        llmaccel.SmoothQuant(alpha=1.5)
    with pytest.raises(TypeError, match="decoder layers"):
        llmaccel.quantize_(torch.nn.Sequential(torch.nn.Linear(64, 64)), llmaccel.GPTQ(),
                           calibration=calib)
    # Nothing was swapped by the failing calls.
    assert not any(isinstance(mod, QuantLinear) for mod in m.modules())


def test_quantized_model_generates(model, calib):
    q = quantized(model, llmaccel.AWQ(group_size=32), calibration=calib)
    with torch.inference_mode():
        out = q.generate(calib[:2, :8], max_new_tokens=5, do_sample=False)
    assert out.shape == (2, 13)
