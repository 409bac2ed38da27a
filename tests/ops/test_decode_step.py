"""ops.LlamaDecodeStep (the native decode step) against its reference, LlamaDecoder's Python
loop over the same modules and cache: same logits and same cache contents, every CPU path."""

import pytest
import torch

import llmaccel
from llmaccel.runtime import LlamaDecoder

from ..tiny_llama import random_ids, tiny_llama

pytest.importorskip("transformers")

# Float activations: the step and the loop run the same GEMMs on the same inputs; what differs is
# the order of float32 sums in norms and attention and the polynomial exp (a few ulps), so
# logits agree to ~1e-6 of their scale. Int8 activations (w8a8, w4a8 from act_int8_min_m rows)
# can move one activation code by one step on such a difference; a flip costs ~1e-3 of scale.
# gemm_w4a16_sp24 rounds x to bf16, and the same difference can move one element across a
# rounding boundary (a 2^-8 relative step): seen at 2.4e-4 and 4.3e-4 of scale (tiny_llama,
# batch 1 on avx2 and batch 2 on avx512, before and after 2026-11-24's changes alike).
# The dense GEMMs and the step's small kernels have AVX2 kernels: `isa` covers avx2 here.
AVX2_KERNELS = True
FLOAT_ACT_BOUND = 2e-5
BF16_X_BOUND = 2e-3
INT8_ACT_BOUND = 2e-2

CONFIGS = {
    "float": None,
    "w4": llmaccel.Int4WeightOnly(32),
    "w4asym": llmaccel.Int4WeightOnly(32, symmetric=False),
    "w8": llmaccel.Int8WeightOnly(),
    "w8a8": llmaccel.Int8Dynamic(),
}


def _model(config, lm_head, **kw):
    model = tiny_llama(**kw)
    if config is not None:
        overrides = {r"lm_head$": lm_head} if lm_head is not None else None
        llmaccel.quantize_(model, config, overrides=overrides)
    return model


def _compare(model, batch: int, steps: int = 10, prompt: int = 7, max_len: int = 32):
    """Largest relative logit difference over `steps` decode steps fed the same tokens."""
    native = LlamaDecoder(model, max_len=max_len, native=True)
    loop = LlamaDecoder(model, max_len=max_len, native=False)
    ids = random_ids(batch, prompt, seed=batch)
    native._alloc(batch)
    loop._alloc(batch)
    assert native.step is not None and loop.step is None
    la, lb = native.forward(ids, 0), loop.forward(ids, 0)
    worst = 0.0
    for i in range(steps):
        nxt = lb.argmax(-1)[:, None]
        la, lb = native.forward(nxt, prompt + i), loop.forward(nxt, prompt + i)
        worst = max(worst, ((la - lb).abs().max() / lb.abs().max()).item())
    cache_err = ((native.cache - loop.cache).abs().max() / loop.cache.abs().max()).item()
    return worst, cache_err


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_python_loop(name, batch, isa):
    model = _model(CONFIGS[name], None, layers=2, kv_heads=2)
    int8_act = name == "w8a8" or (name in ("w4", "w4asym", "w8") and batch >= 3)
    bound = INT8_ACT_BOUND if int8_act else FLOAT_ACT_BOUND
    logit_err, cache_err = _compare(model, batch)
    assert logit_err < bound and cache_err < bound


def test_widths_not_multiples_of_the_vector(isa):
    """hidden 72, head_dim 18, intermediate 100: every small kernel's row ends mid-vector (8 lanes
    on avx2, 16 on avx512), so the masked tails run; 17 cached positions end mid-vector too. Float
    weights: quantized projections this narrow (36 k/v rows) are not fused, which the native step
    refuses."""
    model = _model(None, None, layers=2, hidden=72, inter=100, heads=4, kv_heads=2)
    logit_err, cache_err = _compare(model, 2)
    assert logit_err < FLOAT_ACT_BOUND and cache_err < FLOAT_ACT_BOUND


@pytest.mark.parametrize("lm_head", [llmaccel.Int8WeightOnly(act_int8_min_m=None),
                                     llmaccel.Int4WeightOnly(32)], ids=["w8", "w4"])
def test_quantized_lm_head(lm_head):
    model = _model(llmaccel.Int4WeightOnly(32), lm_head, layers=1)
    assert _compare(model, 1)[0] < FLOAT_ACT_BOUND


@pytest.mark.parametrize("kv_heads", [1, 4])
def test_head_groupings(kv_heads):
    # Multi-query (one KV head for all) and plain multi-head attention.
    assert _compare(_model(None, None, layers=1, kv_heads=kv_heads), 2)[0] < FLOAT_ACT_BOUND


def test_qwen2_biases_and_hf_tokens():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # q/k/v biases are zero at init: make them count
        for layer in model.model.layers:
            for p in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                p.bias.normal_(0, 0.5)
    llmaccel.quantize_(model, llmaccel.Int4WeightOnly(32))
    assert _compare(model, 1)[0] < FLOAT_ACT_BOUND
    ids = random_ids(1, 5)
    with torch.inference_mode():
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                             min_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(LlamaDecoder(model, max_len=16, native=True).generate(ids, 8), ref)


def test_bad_inputs():
    model = _model(llmaccel.Int4WeightOnly(32), None, layers=1)
    dec = LlamaDecoder(model, max_len=8, native=True)
    dec._alloc(2)
    step = dec.step
    with pytest.raises(ValueError, match="outside the vocabulary"):
        step(torch.tensor([1, 96]), 0)
    with pytest.raises(ValueError, match="outside the cache"):
        step(torch.tensor([1, 2]), 8)
    with pytest.raises(ValueError, match="needs 2 token ids"):
        step(torch.tensor([1, 2, 3]), 0)
    lay = dec.layers[0]
    good = dict(embed=dec.embed.weight.detach(), rot=torch.view_as_real(dec.rot).contiguous(),
                norm=dec.norm, cache=dec.cache, lm_head=llmaccel.ops.DecodeLinear(
                    dec.lm_head.weight), heads=4, kv_heads=2, head_dim=16, inter=128,
                eps=1e-6, scale=0.25)
    proj = [llmaccel.ops.DecodeLinear(m.prepared(2)) for m in (lay.qkv, lay.o, lay.gate_up,
                                                               lay.down)]
    layers = [(lay.ln1, proj[0], proj[1], lay.ln2, proj[2], proj[3])]
    llmaccel.ops.LlamaDecodeStep(layers=layers, **good)  # the valid case builds
    with pytest.raises(ValueError, match="layer 0 o is 64 -> 128, expected 64 -> 64"):
        llmaccel.ops.LlamaDecodeStep(layers=[(lay.ln1, proj[0], proj[0], lay.ln2, proj[2],
                                              proj[3])], **good)
    with pytest.raises(ValueError, match="heads must be a positive multiple"):
        llmaccel.ops.LlamaDecodeStep(layers=layers, **{**good, "heads": 3})
    with pytest.raises(TypeError, match="cache must be float32"):
        llmaccel.ops.LlamaDecodeStep(layers=layers, **{**good, "cache": dec.cache.double()})
    with pytest.raises(ValueError, match="ln1 must have shape"):
        llmaccel.ops.LlamaDecodeStep(layers=[(lay.ln1[:5], *layers[0][1:])], **good)
    with pytest.raises(TypeError, match="PreparedGemm or a float32"):
        llmaccel.ops.DecodeLinear("weights")
    packed = torch.zeros(1, 576, dtype=torch.uint8)  # one bf16 2:4 block of 16 x 32
    with pytest.raises(ValueError, match="no int8-activation kernel"):
        llmaccel.ops.DecodeLinear.sparse(16, 32, None, packed=packed, int8_act=True)


def test_native_required_but_impossible():
    model = tiny_llama(layers=1).to(torch.bfloat16)
    with pytest.raises(TypeError, match="native decode step cannot run this model"):
        LlamaDecoder(model, max_len=8, native=True)
    dec = LlamaDecoder(model, max_len=8)  # auto: falls back to the Python loop
    assert dec.native is False


@pytest.mark.parametrize("batch", [1, 2, 3, 6])
@pytest.mark.parametrize("quantized", [True, False], ids=["sp24_w4", "sp24_bf16"])
def test_sparse_layers(quantized, batch, isa):
    """2:4 SparseLinear projections (gemm_w4a16_sp24, from 3 rows, 6 on the AVX-512 paths,
    gemm_w4a8_sp24 / gemm_sp24 inside the step), fused and row-permuted like the dense ones; tokens equal Hugging Face
    generate()."""
    model = tiny_llama(layers=2)
    ids = random_ids(4, 32)
    cfg = (llmaccel.SparseGPT(pattern="2:4", quantize=llmaccel.GPTQ(bits=4, group_size=32))
           if quantized else llmaccel.Wanda(pattern="2:4"))
    llmaccel.prune_(model, cfg, calibration=ids, progress=False)
    if not quantized:
        llmaccel.sparsify_(model)
    down = model.model.layers[0].mlp.down_proj
    assert isinstance(down, llmaccel.SparseLinear)
    floor = llmaccel.ops.w4a8_sp24_min_m()
    int8_act = quantized and floor is not None and batch >= max(3, floor)
    assert down.kernel_for(batch) == ("gemm_w4a8_sp24" if int8_act else
                                      "gemm_w4a16_sp24" if quantized else "gemm_sp24")
    bound = INT8_ACT_BOUND if int8_act else BF16_X_BOUND if quantized else FLOAT_ACT_BOUND
    assert _compare(model, batch)[0] < bound
    prompt = random_ids(batch, 6, seed=5)
    with torch.inference_mode():
        ref = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
                             min_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(LlamaDecoder(model, max_len=16, native=True).generate(prompt, 8), ref)


def test_time_linears_times_each_call_and_checks_its_inputs():
    from llmaccel import formats, ops, quantizers

    g = torch.Generator().manual_seed(0)
    w = torch.randn(48, 64, generator=g)
    codes, scales, _ = quantizers.quantize_int4(w, 32, True)
    packed = formats.pack_int4(codes, scales, None, 32)
    dense = ops.DecodeLinear(ops.PreparedGemm("gemm_w4a16", packed.qweight, packed.scales, None,
                                              None, 48, 64))
    f32 = ops.DecodeLinear(w)
    x = torch.randn(3, 64, generator=g)
    seconds = ops.time_linears([dense, dense], x, 7)
    assert len(seconds) == 7 and all(isinstance(s, float) and 0 < s < 1 for s in seconds)
    assert len(ops.time_linears([f32], x, 1)) == 1
    with pytest.raises(TypeError, match="non-empty list of DecodeLinear"):
        ops.time_linears([], x, 1)
    with pytest.raises(ValueError, match=r"x must be \(m >= 1, 64\)"):
        ops.time_linears([dense], x[:, :32].contiguous(), 1)
    with pytest.raises(TypeError, match="x must be float32"):
        ops.time_linears([dense], x.bfloat16(), 1)
    with pytest.raises(ValueError, match="calls must be an int >= 1"):
        ops.time_linears([dense], x, 0)
    other = ops.DecodeLinear(torch.randn(16, 64))
    with pytest.raises(ValueError, match="projection 1 is 64 -> 16, expected 64 -> 48"):
        ops.time_linears([dense, other], x, 1)
