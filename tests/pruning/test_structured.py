"""Structured pruning on small random-config Llama models: a smaller dense model whose config
matches its modules, that Hugging Face runs, saves and reloads; the channels and KV groups it
keeps are the ones that matter."""

import copy

import pytest
import torch

import llmaccel
from llmaccel.pruning import structured

from ..tiny_llama import random_ids, tiny_llama

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model():
    return tiny_llama(heads=4, kv_heads=2, inter=128)


@pytest.fixture(scope="module")
def calib():
    return random_ids(16, 32, seed=1)


def logits(m, ids):
    with torch.inference_mode():
        return m(ids).logits.float()


def shrunk(model, calib, cfg):
    m = copy.deepcopy(model)
    llmaccel.prune_(m, cfg, calibration=calib, progress=False)
    return m


def test_smaller_model_with_matching_config(model, calib, tmp_path):
    m = shrunk(model, calib, llmaccel.Structured(0.25, attention_sparsity=0.5, multiple_of=32))
    c = m.config
    assert (c.intermediate_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim) == \
        (96, 2, 1, 16)
    for layer in m.model.layers:
        a, mlp = layer.self_attn, layer.mlp
        assert tuple(a.q_proj.weight.shape) == (2 * 16, 64)
        assert tuple(a.o_proj.weight.shape) == (64, 2 * 16)
        assert tuple(a.k_proj.weight.shape) == tuple(a.v_proj.weight.shape) == (16, 64)
        assert tuple(mlp.gate_proj.weight.shape) == tuple(mlp.up_proj.weight.shape) == (96, 64)
        assert tuple(mlp.down_proj.weight.shape) == (64, 96)
    n_params = sum(p.numel() for p in m.parameters())
    assert n_params < sum(p.numel() for p in model.parameters())
    ids = calib[:2, :8]
    with torch.inference_mode():
        out = m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                         do_sample=False)
    assert out.shape == (2, 13)
    # Any runtime reads it: a plain Hugging Face save and load gives the same model.
    from transformers import AutoModelForCausalLM

    m.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert sum(p.numel() for p in again.parameters()) == n_params
    torch.testing.assert_close(logits(again, ids), logits(m, ids))


def test_keeps_the_channels_that_matter(model, calib):
    """The MLP channels and the KV group made loud (scaled weights) are the ones kept."""
    m = copy.deepcopy(model)
    loud = torch.tensor([3, 40, 77, 100, 120])
    with torch.no_grad():
        for layer in m.model.layers:
            layer.mlp.up_proj.weight[loud] *= 10
            layer.self_attn.o_proj.weight[:, 32:64] *= 10  # query heads 2, 3: KV group 1
    kept_rows = {layer: layer.mlp.up_proj.weight[loud].clone() for layer in m.model.layers}
    kept_k = {layer: layer.self_attn.k_proj.weight[16:32].clone() for layer in m.model.layers}
    llmaccel.prune_(m, llmaccel.Structured(0.5, attention_sparsity=0.5), calibration=calib,
                    progress=False)
    for layer in m.model.layers:
        up = layer.mlp.up_proj.weight
        assert up.shape[0] == 64
        for row in kept_rows[layer]:
            assert (up == row).all(dim=1).any()
        assert torch.equal(layer.self_attn.k_proj.weight, kept_k[layer])


def test_sizes_round_and_never_remove_everything(model):
    sizes = structured.structured_sizes
    assert sizes(model.config, llmaccel.Structured(0.3, multiple_of=32)) == (1, 96)  # 89.6 → 96
    assert sizes(model.config, llmaccel.Structured(0.3, multiple_of=1)) == (1, 90)
    assert sizes(model.config, llmaccel.Structured(0.0)) == (2, 128)
    assert sizes(model.config, llmaccel.Structured(0.2, attention_sparsity=0.2)) == (2, 96)
    with pytest.raises(ValueError, match="at least one must stay"):
        sizes(model.config, llmaccel.Structured(0.3, attention_sparsity=0.9))


def test_needs_float_llama_layers(model, calib):
    q = copy.deepcopy(model)
    llmaccel.quantize_(q, llmaccel.Int8WeightOnly(), progress=False)
    with pytest.raises(TypeError, match="float nn.Linear"):
        llmaccel.prune_(q, llmaccel.Structured(), calibration=calib)
