"""Perplexity (GPTQ convention) on a tiny model with known logits, and on a random Llama."""

import math

import pytest
import torch

from llmaccel.eval import perplexity


class FixedLogits(torch.nn.Module):
    """A 'model' whose next-token distribution is the same fixed softmax at every position."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, ids):
        out = self.logits.expand(ids.shape[0], ids.shape[1], -1)
        return type("Out", (), {"logits": out})()


def test_matches_the_definition():
    torch.manual_seed(0)
    logits = torch.randn(7)
    logp = torch.log_softmax(logits, 0)
    ids = torch.randint(0, 7, (25,))
    r = perplexity(FixedLogits(logits), ids, window=8, progress=False)
    # 3 windows of 8 (the 1-token tail is dropped); the first token of each window is context.
    used = torch.cat([ids[i * 8 + 1:(i + 1) * 8] for i in range(3)])
    nll = -logp[used].mean().item()
    assert r.windows == 3 and r.tokens == 21 and r.window == 8
    assert r.nll == pytest.approx(nll, rel=1e-6) and r.ppl == pytest.approx(math.exp(nll), rel=1e-6)


def test_uniform_model_has_vocab_perplexity():
    r = perplexity(FixedLogits(torch.zeros(50)), torch.randint(0, 50, (64,)), window=16,
                   progress=False)
    assert r.ppl == pytest.approx(50.0, rel=1e-5)


def test_max_windows_and_errors():
    m = FixedLogits(torch.zeros(5))
    assert perplexity(m, torch.zeros(100, dtype=torch.long), 10, max_windows=2,
                      progress=False).windows == 2
    with pytest.raises(ValueError, match="fewer than one window"):
        perplexity(m, torch.zeros(5, dtype=torch.long), 10, progress=False)
    with pytest.raises(ValueError, match="window must be"):
        perplexity(m, torch.zeros(5, dtype=torch.long), 1, progress=False)


def test_random_llama_and_quantized_copy():
    transformers = pytest.importorskip("transformers")
    import llmaccel

    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (130,))
    base = perplexity(model, ids, 32, progress=False)
    assert 30 < base.ppl < 130  # an untrained model is close to uniform over 64 tokens
    llmaccel.quantize_(model, llmaccel.Int8WeightOnly(act_int8_min_m=None),
                       filter_fn=lambda mod, fqn: "lm_head" not in fqn)
    q = perplexity(model, ids, 32, progress=False)
    assert abs(q.ppl / base.ppl - 1) < 0.01  # int8 weights barely move a random model
