"""prune_ on small random-config Llama models: exact sparsity in every pruned linear, the
calibrated methods beat magnitude, overrides pick per-layer configs, 2:4 + GPTQ keeps its zeros
through quantization, failures and interrupts leave the model untouched, bad arguments fail
clearly."""

import copy

import pytest
import torch

import llmaccel
from llmaccel.nn import QuantLinear
from llmaccel.pruning import plan

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


def pruned(model, config, **kw):
    p = copy.deepcopy(model)
    assert llmaccel.prune_(p, config, progress=False, **kw) is p
    return p


def zeros_of(m, name):
    return int((m.get_submodule(name).weight == 0).sum())


CONFIGS = [llmaccel.Magnitude(0.5), llmaccel.Wanda(0.5), llmaccel.SparseGPT(0.5),
           llmaccel.Magnitude(pattern="2:4"), llmaccel.Wanda(pattern="4:8"),
           llmaccel.SparseGPT(pattern="2:4")]


@pytest.mark.parametrize("config", CONFIGS, ids=repr)
def test_every_planned_linear_has_the_exact_sparsity(model, calib, config):
    p = pruned(model, config, calibration=calib)
    names = plan(model, config)
    assert len(names) == 7 * len(model.model.layers) and "lm_head" not in names
    for name in names:
        w = p.get_submodule(name).weight
        if config.nm is None:
            assert zeros_of(p, name) == w.numel() // 2, name
        else:
            n, m = config.nm
            assert torch.all(w.view(w.shape[0], -1, m).ne(0).sum(-1) == n), name
    # Embeddings (tied to lm_head here) and norms are untouched.
    assert torch.equal(p.model.embed_tokens.weight, model.model.embed_tokens.weight)
    assert torch.equal(p.model.norm.weight, model.model.norm.weight)


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_calibrated_methods_beat_magnitude(model, calib, held_out, pattern):
    mag = logit_error(pruned(model, llmaccel.Magnitude(pattern=pattern)), model, held_out)
    wanda = logit_error(pruned(model, llmaccel.Wanda(pattern=pattern), calibration=calib),
                        model, held_out)
    sgpt = logit_error(pruned(model, llmaccel.SparseGPT(pattern=pattern), calibration=calib),
                       model, held_out)
    assert wanda < mag and sgpt < wanda, (mag, wanda, sgpt)


def test_overrides_per_layer_ratios(model, calib):
    p = pruned(model, llmaccel.Wanda(0.5), calibration=calib,
               overrides={r"mlp\.down_proj$": llmaccel.SparseGPT(0.25),
                          r"layers\.0\.self_attn\.[qk]_proj$": None,
                          r"layers\.1\.self_attn": llmaccel.Magnitude(0.75)})
    down = p.model.layers[0].mlp.down_proj.weight
    assert zeros_of(p, "model.layers.0.mlp.down_proj") == down.numel() // 4
    assert zeros_of(p, "model.layers.0.self_attn.q_proj") == 0
    assert torch.equal(p.model.layers[0].self_attn.k_proj.weight,
                       model.model.layers[0].self_attn.k_proj.weight)
    v = p.model.layers[0].self_attn.v_proj.weight
    assert zeros_of(p, "model.layers.0.self_attn.v_proj") == v.numel() // 2
    o = p.model.layers[1].self_attn.o_proj.weight
    assert zeros_of(p, "model.layers.1.self_attn.o_proj") == o.numel() * 3 // 4


def test_lm_head_only_when_named(calib):
    m = tiny_llama(layers=1, tie=False)
    p = pruned(m, llmaccel.Magnitude(0.5), overrides={r"^lm_head$": llmaccel.Magnitude(0.25)})
    assert zeros_of(p, "lm_head") == p.lm_head.weight.numel() // 4
    with pytest.raises(ValueError, match="outside the decoder layers"):
        llmaccel.prune_(copy.deepcopy(m), llmaccel.Wanda(), calibration=calib,
                        overrides={r"^lm_head$": llmaccel.Wanda()})
    tied = tiny_llama(layers=1)
    with pytest.raises(ValueError, match="shared with another module"):
        llmaccel.prune_(tied, llmaccel.Magnitude(), overrides={r"^lm_head$": llmaccel.Magnitude()})


def test_2_4_then_gptq_w4_keeps_zeros_and_generates(model, calib, held_out):
    cfg = llmaccel.SparseGPT(pattern="2:4", quantize=llmaccel.GPTQ(bits=4, group_size=32))
    p = pruned(model, cfg, calibration=calib)
    for name in plan(model, cfg):
        q = p.get_submodule(name)  # packed as 2:4 int4 (same codes and scales as GPTQ's)
        assert isinstance(q, llmaccel.SparseLinear) and q.config == llmaccel.Sparse24(4, 32)
        w = q.dequantize()
        assert torch.all(w.view(w.shape[0], -1, 4).eq(0).sum(-1) >= 2), name
    # Better than quantizing the SparseGPT model afterwards by round-to-nearest.
    rtn = pruned(model, llmaccel.SparseGPT(pattern="2:4"), calibration=calib)
    llmaccel.quantize_(rtn, llmaccel.Int4WeightOnly(32), progress=False)
    assert logit_error(p, model, held_out) < logit_error(rtn, model, held_out)
    with torch.inference_mode():
        out = p.generate(calib[:2, :8], max_new_tokens=5, do_sample=False)
    assert out.shape == (2, 13)


class Interrupt(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("config", [llmaccel.SparseGPT(pattern="2:4",
                                                       quantize=llmaccel.GPTQ(group_size=32)),
                                    llmaccel.Structured(0.5)], ids=["sparsegpt+gptq", "structured"])
def test_an_interrupted_run_leaves_the_model_as_it_was(model, calib, config):
    m = copy.deepcopy(model)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    config_before = m.config.to_dict()
    calls = 0

    def stop_in_the_last_layer(*_):
        nonlocal calls
        calls += 1
        if calls > 2:  # layer 0 done and layer 1 on its way: a half-pruned model
            raise Interrupt

    handle = m.model.layers[-1].mlp.register_forward_pre_hook(stop_in_the_last_layer)
    with pytest.raises(Interrupt):
        llmaccel.prune_(m, config, calibration=calib, progress=False)
    handle.remove()
    assert m.config.to_dict() == config_before
    after = m.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert not any(isinstance(mod, QuantLinear) for mod in m.modules())
    torch.testing.assert_close(logits(m, calib[:2]), logits(model, calib[:2]))


def test_errors(model, calib):
    m = copy.deepcopy(model)
    with pytest.raises(ValueError, match="needs calibration"):
        llmaccel.prune_(m, llmaccel.Wanda())
    with pytest.raises(ValueError, match="needs calibration"):
        llmaccel.prune_(m, llmaccel.Structured())
    with pytest.raises(ValueError, match="LongTensor"):
        llmaccel.prune_(m, llmaccel.SparseGPT(), calibration=calib.float())
    with pytest.raises(ValueError, match="match no linear"):
        llmaccel.prune_(m, llmaccel.Magnitude(), overrides={"nonexistent": None})
    with pytest.raises(TypeError, match="Magnitude, Wanda or SparseGPT config"):
        llmaccel.prune_(m, llmaccel.Magnitude(), overrides={"q_proj": 0.5})
    with pytest.raises(TypeError, match="whole decoder layers"):
        llmaccel.prune_(m, llmaccel.Magnitude(), overrides={"q_proj": llmaccel.Structured()})
    with pytest.raises(ValueError, match="no overrides"):
        llmaccel.prune_(m, llmaccel.Structured(), calibration=calib, overrides={"q_proj": None})
    with pytest.raises(TypeError, match="unsupported config"):
        llmaccel.prune_(m, llmaccel.Int4WeightOnly())
    with pytest.raises(TypeError, match="in place"):
        llmaccel.prune_(torch.nn.Linear(8, 8), llmaccel.Magnitude())
    with pytest.raises(ValueError, match="batch_size"):
        llmaccel.prune_(m, llmaccel.Wanda(), calibration=calib, batch_size=0)
    with pytest.raises(TypeError, match="decoder layers"):
        llmaccel.prune_(torch.nn.Sequential(torch.nn.Linear(64, 64)), llmaccel.Wanda(),
                        calibration=calib)
    odd = tiny_llama(layers=1, inter=130)  # down_proj: 130 inputs, not a multiple of 4
    with pytest.raises(ValueError, match="not a multiple of M=4"):
        llmaccel.prune_(odd, llmaccel.Magnitude(pattern="2:4"))
    # Nothing was changed by the failing calls.
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                  model.state_dict().values()))
