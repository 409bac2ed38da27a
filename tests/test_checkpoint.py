"""save_quantized / load_quantized: identical logits after a round trip, atomic replacement,
and clear errors for every kind of damaged checkpoint."""

import json

import pytest
import torch
from torch import nn

import llmaccel
from llmaccel import checkpoint

transformers = pytest.importorskip("transformers")


def tiny_llama(seed=0):
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=96,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=64,
                                   tie_word_embeddings=True)
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(cfg).eval()


def quantized_llama():
    m = tiny_llama()
    llmaccel.quantize_(m, llmaccel.Int4WeightOnly(32, symmetric=False),
                       filter_fn=lambda mod, fqn: ".mlp." in fqn)
    llmaccel.quantize_(m, llmaccel.Int8WeightOnly(), filter_fn=lambda mod, fqn: "q_proj" in fqn)
    llmaccel.quantize_(m, llmaccel.Int8Dynamic(), filter_fn=lambda mod, fqn: "o_proj" in fqn)
    return m  # k_proj, v_proj and the tied lm_head stay float


IDS = torch.randint(0, 64, (2, 17), generator=torch.Generator().manual_seed(1))


def test_round_trip_identical_logits(tmp_path):
    m = quantized_llama()
    with torch.inference_mode():
        before = m(IDS).logits
    llmaccel.save_quantized(m, tmp_path / "ck")
    desc = json.loads((tmp_path / "ck" / "llmaccel.json").read_text())
    assert desc["layers"]["model.layers.0.mlp.up_proj"]["format"] == "int4_tile16x8"
    assert desc["layers"]["model.layers.1.self_attn.o_proj"]["config"]["type"] == "Int8Dynamic"
    loaded = llmaccel.load_quantized(tmp_path / "ck")
    assert isinstance(loaded.model.layers[1].mlp.down_proj, llmaccel.QuantLinear)
    assert type(loaded.model.layers[1].self_attn.k_proj) is nn.Linear
    with torch.inference_mode():
        assert torch.equal(loaded(IDS).logits, before)


def test_plain_module_with_explicit_model(tmp_path):
    torch.manual_seed(0)
    make = lambda: nn.Sequential(nn.Linear(40, 33), nn.ReLU(), nn.Linear(33, 7))  # noqa: E731
    m = make()
    llmaccel.quantize_(m, llmaccel.Int4WeightOnly(32))
    x = torch.randn(3, 40)
    llmaccel.save_quantized(m, tmp_path / "ck")
    assert torch.equal(llmaccel.load_quantized(tmp_path / "ck", make())(x), m(x))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        llmaccel.load_quantized(tmp_path / "ck")


def test_failed_save_keeps_the_earlier_checkpoint(tmp_path, monkeypatch):
    m = quantized_llama()
    llmaccel.save_quantized(m, tmp_path / "ck")
    good = (tmp_path / "ck" / "model.safetensors").read_bytes()

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_model", broken)
    with pytest.raises(OSError, match="disk full"):
        llmaccel.save_quantized(tiny_llama(seed=5), tmp_path / "ck")
    assert (tmp_path / "ck" / "model.safetensors").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporary left behind


def _edit(path, fn):
    f = path / "llmaccel.json"
    desc = json.loads(f.read_text())
    fn(desc)
    f.write_text(json.dumps(desc))


@pytest.fixture
def saved(tmp_path):
    llmaccel.save_quantized(quantized_llama(), tmp_path / "ck")
    return tmp_path / "ck"


def test_unknown_checkpoint_version(saved):
    _edit(saved, lambda d: d.update(version=99))
    with pytest.raises(ValueError, match="version 99 is not supported"):
        llmaccel.load_quantized(saved)


def test_unknown_format_version(saved):
    _edit(saved, lambda d: d["layers"]["model.layers.0.mlp.up_proj"].update(format_version=7))
    with pytest.raises(ValueError, match="format 'int4_tile16x8' version 7 is unknown"):
        llmaccel.load_quantized(saved)


def test_wrong_shapes(saved):
    _edit(saved, lambda d: d["layers"]["model.layers.0.mlp.up_proj"].update(out_features=128))
    with pytest.raises(ValueError, match="do not match"):
        llmaccel.load_quantized(saved)


def test_layer_not_in_model(saved):
    _edit(saved, lambda d: d["layers"].update(
        {"model.layers.9.mlp.up_proj": d["layers"]["model.layers.0.mlp.up_proj"]}))
    with pytest.raises(ValueError, match="does not exist in the model"):
        llmaccel.load_quantized(saved)


def test_truncated_weights(saved):
    f = saved / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        llmaccel.load_quantized(saved)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an llmaccel checkpoint"):
        llmaccel.load_quantized(tmp_path)
    (tmp_path / "llmaccel.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        checkpoint.load_quantized(tmp_path)
