"""eval: KL and agreement against their formulas, speed figures and byte counts on a tiny model,
and the report files (written atomically, all three formats)."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import llmaccel
from llmaccel.eval.quality import evaluate_quality
from llmaccel.eval.report import add_relative, markdown_table, write_report
from llmaccel.eval.speed import decode_speed, peak_rss, weight_bytes

from ..tiny_llama import random_ids, tiny_llama

pytest.importorskip("transformers")


def test_quality_matches_formulas():
    ref = tiny_llama(seed=0)
    model = tiny_llama(seed=3)
    ids = random_ids(1, 3 * 16 + 5, seed=4)[0]
    r = evaluate_quality(model, ids, window=16, reference=ref, progress=False)
    assert (r.windows, r.tokens) == (3, 45)  # the 5-token tail is dropped
    nll = kl = agree = 0.0
    with torch.inference_mode():
        for w in ids[:48].view(3, 16):
            lp = F.log_softmax(model(w[None]).logits[0, :-1], -1)
            lq = F.log_softmax(ref(w[None]).logits[0, :-1], -1)
            nll -= lp.gather(1, w[1:, None]).sum().item()
            kl += (lq.exp() * (lq - lp)).sum().item()
            agree += (lp.argmax(-1) == lq.argmax(-1)).sum().item()
    assert math.isclose(r.nll, nll / 45, rel_tol=1e-5)
    assert math.isclose(r.ppl, math.exp(nll / 45), rel_tol=1e-5)
    assert math.isclose(r.kl, kl / 45, rel_tol=1e-4, abs_tol=1e-7)
    assert r.top1_agreement == agree / 45
    same = evaluate_quality(ref, ids, window=16, reference=ref, progress=False)
    assert abs(same.kl) < 1e-6 and same.top1_agreement == 1.0


def test_quality_errors():
    with pytest.raises(ValueError, match="fewer than one window"):
        evaluate_quality(tiny_llama(), torch.arange(10), window=16, progress=False)


def test_weight_bytes_counts_tied_weights_once():
    tied, untied = tiny_llama(tie=True), tiny_llama(tie=False)
    emb = tied.model.embed_tokens.weight
    assert weight_bytes(untied) - weight_bytes(tied) == emb.numel() * emb.element_size()
    q = tiny_llama()
    llmaccel.quantize_(q, llmaccel.Int4WeightOnly(32))
    assert weight_bytes(q) < 0.6 * weight_bytes(tied)  # embedding-heavy tiny model


@pytest.mark.parametrize("runner", ["hf", "llmaccel"])
def test_decode_speed_runs(runner):
    r = decode_speed(tiny_llama(), random_ids(2, 6), new_tokens=4, runner=runner, repeats=1)
    assert r.batch == 2 and r.prompt_tokens == 6 and r.new_tokens == 4
    assert r.decode_tokens_per_s > 0 and r.prefill_tokens_per_s > 0
    with pytest.raises(ValueError, match="runner"):
        decode_speed(tiny_llama(), random_ids(1, 4), 4, runner="vllm")


def test_peak_rss_sees_an_allocation():
    with peak_rss() as mem:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del x
    assert mem["peak_bytes"] > 64 * 2**20


def test_report_files(tmp_path):
    rows = [{"scheme": "fp32", "ppl": 40.0, "hf_decode_b1": 20.0, "decode_b1": 22.0,
             "weight_mb": 538.0},
            {"scheme": "w4", "ppl": 46.0, "kl": 0.1, "decode_b1": 80.0, "weight_mb": 170.0}]
    add_relative(rows, "fp32")
    assert rows[1]["ppl_increase_pct"] == pytest.approx(15.0)
    assert rows[1]["speedup_b1"] == pytest.approx(4.0)
    assert rows[1]["size_pct"] == pytest.approx(100 * 170 / 538)
    table = markdown_table(rows)
    assert "| w4 | 46.00 | +15.00 |" in table and "–" in table  # fp32 has no KL
    paths = write_report(rows, {"threads": 2}, tmp_path, "demo", "title", ["a note"])
    assert json.loads(paths["json"].read_text())["rows"][1]["scheme"] == "w4"
    assert "a note" in paths["md"].read_text()
    if "png" in paths:
        assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())
    with pytest.raises(ValueError, match="no row"):
        add_relative(rows, "bf16")
