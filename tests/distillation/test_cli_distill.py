"""`llmaccel distill` end to end on a tiny random Llama saved as a Hugging Face directory with a
character-level tokenizer (no hub) and short stand-in texts for the Shakespeare splits."""

import json
import random

import pytest
import torch
from torch import nn

import llmaccel
from llmaccel.cli import _parser, main
from llmaccel.models import load_model_or_checkpoint

from ..tiny_llama import random_ids, tiny_llama

FAST = ["--steps", "3", "--batch-size", "2", "--seq-len", "32", "--eval-every", "2",
        "--eval-windows", "2", "--lr", "1e-3"]


def _char_tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{chr(c): c - 31 for c in range(32, 127)}}  # 96 ids
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab, [],
                                                                         unk_token="<unk>")),
                                   unk_token="<unk>")


def _text(seed: int) -> str:
    rng = random.Random(seed)
    words = ["thou", "art", "the", "king", "of", "night", "and", "love", "my", "lord", "doth"]
    return " ".join(rng.choice(words) for _ in range(600))


@pytest.fixture
def teacher_dir(tmp_path_factory, monkeypatch):
    import llmaccel.data

    texts = {"calibration": _text(1), "evaluation": _text(2)}
    monkeypatch.setattr(llmaccel.data, "shakespeare_text", lambda split, root=None: texts[split])
    path = tmp_path_factory.mktemp("teacher")
    tiny_llama(layers=3).save_pretrained(path, safe_serialization=True)
    _char_tokenizer().save_pretrained(path)
    return path


def _layers(model, cls):
    return [n for n, m in model.model.layers.named_modules() if type(m) is cls]


def _history(out):
    return llmaccel.checkpoint.read_description(out)["run"]["history"]


def test_help_lists_distill(capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["distill", "--help"])
    assert e.value.code == 0
    assert "--drop-layers" in capsys.readouterr().out


def test_distill_pruned_student_keeps_zeros(teacher_dir, tmp_path, capsys):
    pruned = tmp_path / "pruned"
    assert main(["prune", "--model", str(teacher_dir), "--method", "magnitude",
                 "--out", str(pruned)]) == 0
    out = tmp_path / "kd"
    assert main(["distill", "--teacher", str(teacher_dir), "--student", str(pruned),
                 "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "student ppl" in printed and "KL" in printed and "teacher ppl" in printed
    model, tok = load_model_or_checkpoint(out)
    before = llmaccel.load_quantized(pruned)
    for name in _layers(model, nn.Linear):
        w, w0 = model.model.layers.get_submodule(name).weight, \
            before.model.layers.get_submodule(name).weight
        assert torch.equal(w == 0, w0 == 0), name  # same zeros
    changed = any(not torch.equal(p, q) for p, q in zip(model.parameters(), before.parameters()))
    assert changed
    hist = _history(out)
    assert [h["step"] for h in hist] == [0, 2, 3]
    assert all(torch.isfinite(torch.tensor(h["eval_kl"])) for h in hist)
    desc = llmaccel.checkpoint.read_description(out)["run"]
    assert desc["pinned_zeros"] and desc["source_model"] == str(teacher_dir)
    with torch.inference_mode():
        assert torch.isfinite(model(random_ids(1, 8)).logits).all()


def test_distill_2_4_student_is_packed_again(teacher_dir, tmp_path):
    pruned = tmp_path / "sp24"
    assert main(["prune", "--model", str(teacher_dir), "--method", "magnitude", "--pattern",
                 "2:4", "--out", str(pruned)]) == 0
    out = tmp_path / "kd"
    assert main(["distill", "--teacher", str(teacher_dir), "--student", str(pruned),
                 "--out", str(out), *FAST]) == 0
    model, _ = load_model_or_checkpoint(out)
    assert len(_layers(model, llmaccel.SparseLinear)) == 21
    with torch.inference_mode():
        assert torch.isfinite(model(random_ids(1, 8)).logits).all()


def test_distill_layer_dropped_student(teacher_dir, tmp_path):
    out = tmp_path / "kd"
    assert main(["distill", "--teacher", str(teacher_dir), "--drop-layers", "2",
                 "--out", str(out), *FAST]) == 0
    model, _ = load_model_or_checkpoint(out)
    assert len(model.model.layers) == 2 and model.config.num_hidden_layers == 2
    assert len(_history(out)) == 3
    with torch.inference_mode():
        assert torch.isfinite(model(random_ids(1, 8)).logits).all()


def test_distill_fake_quant_student_packs_quant_linear(teacher_dir, tmp_path):
    quant = tmp_path / "rtn"
    assert main(["quantize", "--model", str(teacher_dir), "--method", "rtn", "--group-size",
                 "32", "--out", str(quant)]) == 0
    out = tmp_path / "qat"
    assert main(["distill", "--teacher", str(teacher_dir), "--student", str(quant),
                 "--fake-quant-bits", "4", "--group-size", "32", "--out", str(out), *FAST]) == 0
    model, _ = load_model_or_checkpoint(out)
    assert len(_layers(model, llmaccel.QuantLinear)) == 21  # 3 layers x 7 projections
    assert not _layers(model, nn.Linear)
    hist = _history(out)
    assert len(hist) == 3 and hist[-1]["step"] == 3
    with torch.inference_mode():
        assert torch.isfinite(model(random_ids(1, 8)).logits).all()


def test_distill_dense_student_trains_every_weight(teacher_dir, tmp_path):
    # A float student without zeros (e.g. after structured pruning) trains unconstrained.
    out = tmp_path / "kd"
    assert main(["distill", "--teacher", str(teacher_dir), "--student", str(teacher_dir),
                 "--out", str(out), *FAST]) == 0
    assert not llmaccel.checkpoint.read_description(out)["run"]["pinned_zeros"]
    model, _ = load_model_or_checkpoint(out)
    assert len(model.model.layers) == 3



def test_distill_speed_options_reach_the_config(teacher_dir, tmp_path):
    def config(out, *extra):
        assert main(["distill", "--teacher", str(teacher_dir), "--drop-layers", "2",
                     "--out", str(out), *FAST, *extra]) == 0
        return llmaccel.checkpoint.read_description(out)["run"]["config"]

    # Defaults: the teacher's full distribution, steps // 10 warm-up, fp32.
    c = config(tmp_path / "a")
    assert (c["topk"], c["warmup_steps"], c["autocast_bf16"]) == (None, 0, False)
    c = config(tmp_path / "b", "--topk", "8", "--bf16", "--warmup-steps", "2")
    assert (c["topk"], c["warmup_steps"], c["autocast_bf16"]) == (8, 2, True)

def test_distill_resume_from_checkpoint_dir(teacher_dir, tmp_path):
    ck = tmp_path / "ck"
    args = ["distill", "--teacher", str(teacher_dir), "--drop-layers", "1",
            "--checkpoint-dir", str(ck), *FAST]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert any(ck.iterdir())
    # Same checkpoint dir without --resume: refused; with it: continues (nothing left to do).
    assert main([*args, "--out", str(tmp_path / "b")]) == 2
    assert main([*args, "--resume", "--out", str(tmp_path / "b")]) == 0


@pytest.mark.parametrize("flags, match", [
    (["--student", "STUDENT", "--drop-layers", "1"], "exactly one of --student"),
    ([], "exactly one of --student"),
    (["--drop-layers", "1", "--fake-quant-bits", "4"], "--fake-quant-bits"),
    (["--drop-layers", "1", "--group-size", "32"], "--group-size"),
    (["--drop-layers", "9"], "n_layers"),
    (["--student", "TEACHER", "--fake-quant-bits", "4"], "needs a quantized --student"),
    (["--drop-layers", "1", "--loss", "jsd", "--alpha", "2"], "alpha"),
])
def test_distill_refuses_bad_arguments(teacher_dir, tmp_path, capsys, flags, match):
    flags = [str(teacher_dir) if f in ("STUDENT", "TEACHER") else f for f in flags]
    out = tmp_path / "kd"
    assert main(["distill", "--teacher", str(teacher_dir), "--out", str(out), *FAST,
                 *flags]) == 2
    err = capsys.readouterr().err
    assert "llmaccel distill: " in err and match in err
    assert not out.exists()


def test_distill_quantized_student_needs_fake_quant(teacher_dir, tmp_path, capsys):
    quant = tmp_path / "rtn"
    assert main(["quantize", "--model", str(teacher_dir), "--method", "rtn", "--group-size",
                 "32", "--out", str(quant)]) == 0
    assert main(["distill", "--teacher", str(teacher_dir), "--student", str(quant),
                 "--out", str(tmp_path / "kd"), *FAST]) == 2
    assert "--fake-quant-bits" in capsys.readouterr().err
    json.loads((quant / "llmaccel.json").read_text())  # the source checkpoint is untouched
