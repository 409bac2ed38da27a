"""Small random-config Llama models for the pipeline tests (built in the test: no hub, fast)."""

from __future__ import annotations

import torch


def tiny_llama(layers: int = 2, hidden: int = 64, inter: int = 128, heads: int = 4,
               kv_heads: int = 2, vocab: int = 96, seed: int = 0, tie: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, max_position_embeddings=256,
                      tie_word_embeddings=tie)
    model = LlamaForCausalLM(cfg).eval()
    # Default init is N(0, 0.02): activations so small that every method looks perfect. Give
    # the norms some spread and a few loud channels, as trained LLMs have.
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in model.model.layers:
            for norm in (layer.input_layernorm, layer.post_attention_layernorm):
                w = torch.exp(0.5 * torch.randn(hidden, generator=g))
                w[torch.randperm(hidden, generator=g)[:3]] *= 8
                norm.weight.copy_(w)
    return model


def random_ids(n: int, seq: int, vocab: int = 96, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (n, seq), generator=torch.Generator().manual_seed(seed))


def logits(m, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return m(ids).logits.float()


def logit_error(m, ref, ids: torch.Tensor) -> float:
    """Mean squared logit difference of model m against ref on ids."""
    return (logits(m, ids) - logits(ref, ids)).pow(2).mean().item()
