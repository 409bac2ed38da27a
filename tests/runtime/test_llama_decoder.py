"""LlamaDecoder: greedy tokens identical to Hugging Face generate(), float and quantized."""

import copy

import pytest
import torch

import llmaccel
from llmaccel.nn import QuantLinear
from llmaccel.runtime import LlamaDecoder

from ..tiny_llama import random_ids, tiny_llama

pytest.importorskip("transformers")


def hf_greedy(model, ids, n):
    with torch.inference_mode():
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                              min_new_tokens=n, do_sample=False, pad_token_id=0)


@pytest.mark.parametrize("config", [None, llmaccel.Int4WeightOnly(32), llmaccel.Int8WeightOnly(),
                                    llmaccel.Int8Dynamic()],
                         ids=["float", "w4", "w8", "w8a8"])
@pytest.mark.parametrize("batch", [1, 3])
def test_matches_hf_generate(config, batch):
    model = tiny_llama(layers=2)
    if config is not None:
        llmaccel.quantize_(model, config)
    ids = random_ids(batch, 7, seed=batch)
    ref = hf_greedy(model, ids, 12)
    out = LlamaDecoder(model, max_len=64).generate(ids, 12)
    assert torch.equal(out, ref)


def test_projections_are_fused():
    model = tiny_llama(layers=1, kv_heads=4, hidden=64)
    llmaccel.quantize_(model, llmaccel.Int4WeightOnly(32))
    d = LlamaDecoder(model, max_len=16)
    assert isinstance(d.layers[0].qkv, QuantLinear) and d.layers[0].qkv.out_features == 3 * 64
    assert isinstance(d.layers[0].gate_up, QuantLinear)


def test_errors():
    model = tiny_llama(layers=1)
    d = LlamaDecoder(model, max_len=8)
    with pytest.raises(ValueError, match="max_len"):
        d.generate(random_ids(1, 6), 4)
    with pytest.raises(ValueError, match="new_tokens >= 0"):
        d.generate(random_ids(1, 2), -1)
    with pytest.raises(ValueError, match="tokens >= 1"):
        d.generate(random_ids(1, 2)[0], 2)
    gpt2 = copy.deepcopy(model)
    gpt2.config.model_type = "gpt2"
    with pytest.raises(TypeError, match="llama"):
        LlamaDecoder(gpt2)


@pytest.mark.parametrize("config", [llmaccel.Int4WeightOnly(32), llmaccel.Int4WeightOnly(32, False),
                                    llmaccel.Int8WeightOnly()], ids=["w4", "w4asym", "w8"])
def test_quant_linear_concat(config):
    layers = [QuantLinear.from_linear(torch.nn.Linear(64, n), config) for n in (32, 16, 20)]
    cat = QuantLinear.concat(layers)
    x = torch.randn(3, 64)
    torch.testing.assert_close(cat(x), torch.cat([q(x) for q in layers], dim=-1))
    with pytest.raises(ValueError, match="multiples"):
        QuantLinear.concat([layers[2], layers[0]])
