"""The CLI's method names map to the configs they promise; contradictory flags are refused;
`llmaccel prune` writes a checkpoint that loads back (tiny random model, no hub, no text)."""

import pytest
import torch
from torch import nn

import llmaccel
from llmaccel.cli import _parser, main, make_config, make_prune_config

from .tiny_llama import random_ids, tiny_llama


def test_make_config():
    assert make_config("rtn") == llmaccel.Int4WeightOnly(128, True)
    assert make_config("rtn", bits=8) == llmaccel.Int8WeightOnly()
    assert make_config("gptq", group_size=64, symmetric=False) == llmaccel.GPTQ(4, 64, False)
    assert make_config("awq") == llmaccel.AWQ(4, 128, symmetric=False)
    assert make_config("smoothquant", alpha=0.8) == llmaccel.SmoothQuant(0.8)
    assert make_config("gptq", bits=3, symmetric=False) == llmaccel.GPTQ(3, 128, False)


def test_make_config_refuses_bad_combinations():
    with pytest.raises(ValueError, match="symmetric"):
        make_config("rtn", bits=8, symmetric=False)
    with pytest.raises(ValueError, match="symmetric"):
        make_config("gptq", bits=8, symmetric=False)
    with pytest.raises(ValueError, match="group_size"):
        make_config("rtn", group_size=48)
    with pytest.raises(ValueError, match="method"):
        make_config("hqq")
    for method in ("rtn", "awq"):
        with pytest.raises(ValueError, match="3-bit weights come from --method gptq"):
            make_config(method, bits=3)


def test_every_command_has_help(capsys):
    for cmd in ("fetch-defaults", "quantize", "prune", "eval", "bench", "perplexity"):
        with pytest.raises(SystemExit) as e:
            _parser().parse_args([cmd, "--help"])
        assert e.value.code == 0
    assert "--method" in capsys.readouterr().out


def test_make_prune_config():
    assert make_prune_config("magnitude") == llmaccel.Magnitude(0.5)
    assert make_prune_config("wanda", 0.6) == llmaccel.Wanda(0.6)
    assert make_prune_config("sparsegpt", pattern="2:4") == llmaccel.SparseGPT(pattern="2:4")
    assert make_prune_config("sparsegpt", 0.5, "2:4", quantize_bits=4) == llmaccel.SparseGPT(
        pattern="2:4", quantize=llmaccel.GPTQ(4, 128, True))
    assert make_prune_config("sparsegpt", pattern="4:8", quantize_bits=4, group_size=32) == \
        llmaccel.SparseGPT(pattern="4:8", quantize=llmaccel.GPTQ(4, 32, True))
    assert make_prune_config("structured") == llmaccel.Structured(0.3)
    assert make_prune_config("structured", 0.2, attention_sparsity=0.0) == \
        llmaccel.Structured(0.2, 0.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "obs"}, "method"),
    ({"method": "wanda", "quantize_bits": 4}, "--quantize-bits"),
    ({"method": "structured", "quantize_bits": 4}, "--quantize-bits"),
    ({"method": "sparsegpt", "group_size": 64}, "--group-size"),
    ({"method": "wanda", "attention_sparsity": 0.5}, "--attention-sparsity"),
    ({"method": "structured", "pattern": "2:4"}, "no weight pattern"),
    ({"method": "magnitude", "sparsity": 0.3, "pattern": "2:4"}, "contradicts"),
    ({"method": "magnitude", "pattern": "3:2"}, "pattern"),
    ({"method": "wanda", "sparsity": 1.0}, "sparsity"),
])
def test_make_prune_config_refuses_bad_combinations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_prune_config(**kwargs)


class _Tokenizer:
    def save_pretrained(self, path):
        pass


@pytest.fixture
def tiny_sources(monkeypatch):
    """`llmaccel prune --model tiny` loads a tiny random Llama and calibrates on random ids."""
    import llmaccel.data
    import llmaccel.models

    model = tiny_llama()
    monkeypatch.setattr(llmaccel.models, "load_model", lambda path: (model, _Tokenizer()))
    monkeypatch.setattr(llmaccel.data, "calibration_ids",
                        lambda tok, n, seq_len, seed: random_ids(n, 32, seed=seed))
    return model


def _linears(model, cls):
    return [n for n, m in model.model.layers.named_modules() if type(m) is cls]


@pytest.mark.parametrize("flags, cls", [
    (["--method", "sparsegpt", "--pattern", "2:4"], llmaccel.SparseLinear),
    (["--method", "wanda", "--pattern", "2:4", "--no-pack"], nn.Linear),
    (["--method", "sparsegpt", "--pattern", "2:4", "--quantize-bits", "4", "--group-size", "32"],
     llmaccel.SparseLinear),
    (["--method", "magnitude", "--sparsity", "0.6"], nn.Linear),
], ids=["sparsegpt-2:4", "wanda-2:4-no-pack", "sparsegpt-2:4-w4", "magnitude-60"])
def test_prune_command_writes_a_checkpoint(tiny_sources, tmp_path, flags, cls):
    out = tmp_path / "ck"
    assert main(["prune", "--model", "tiny", "--samples", "4", "--out", str(out), *flags]) == 0
    loaded = llmaccel.load_quantized(out)
    assert len(_linears(loaded, cls)) == 14  # 2 layers x 7 projections, all pruned
    weights = [m.dequantize() if isinstance(m, llmaccel.SparseLinear) else m.weight
               for m in loaded.model.layers.modules()
               if isinstance(m, (nn.Linear, llmaccel.SparseLinear))]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros >= (0.6 if "0.6" in flags else 0.5) - 1e-3
    ids = random_ids(1, 8, seed=5)
    with torch.inference_mode():
        assert torch.isfinite(loaded(ids).logits).all()
    assert llmaccel.checkpoint.read_description(out)["run"]["method"] == flags[1]


def test_prune_command_structured(tiny_sources, tmp_path):
    out = tmp_path / "ck"
    assert main(["prune", "--model", "tiny", "--method", "structured", "--sparsity", "0.5",
                 "--samples", "4", "--out", str(out)]) == 0
    loaded = llmaccel.load_quantized(out)
    assert loaded.config.intermediate_size == 64 and loaded.config.num_key_value_heads == 1
    assert loaded.model.layers[0].mlp.up_proj.weight.shape == (64, 64)


@pytest.mark.parametrize("flags, match", [
    (["--method", "magnitude", "--no-pack"], "--no-pack only applies"),
    (["--method", "sparsegpt", "--pattern", "2:4", "--quantize-bits", "4", "--no-pack"],
     "--no-pack applies to float"),
    (["--method", "structured", "--keep", "q_proj"], "--keep"),
    (["--method", "magnitude", "--keep", "no_such_layer"], "match no linear"),
    (["--method", "wanda", "--quantize-bits", "4"], "--quantize-bits"),
])
def test_prune_command_refuses_contradictions(tiny_sources, tmp_path, capsys, flags, match):
    assert main(["prune", "--model", "tiny", "--out", str(tmp_path / "ck"), *flags]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()
